"""`warmfleet status`: what the fleet is doing, read from each process's /metrics.

One snapshot, or live with ``--watch``. The same view is the live panel of `warmfleet run`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from tiers._metrics import OUTCOMES, summarize_reads

HELP = "show the fleet's phase, throughput, hit rates, freshness and errors"

#: process -> default metrics URL (see the deploy files and `warmfleet run`)
ENDPOINTS: dict[str, str] = {
    "poller": "http://127.0.0.1:9101/metrics",
    "worker": "http://127.0.0.1:9102/metrics",
    "clock": "http://127.0.0.1:9103/metrics",
    "reader": "http://127.0.0.1:8080/metrics",
}
TIERS = ("memory", "memcached", "redis")

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def total(samples: Samples, name: str, **match: str) -> float:
    return sum(
        value
        for (sample, labels), value in samples.items()
        if sample == name and all(dict(labels).get(k) == v for k, v in match.items())
    )


def by_label(samples: Samples, name: str, label: str) -> dict[str, float]:
    out: dict[str, float] = defaultdict(float)
    for (sample, labels), value in samples.items():
        if sample == name:
            out[dict(labels).get(label, "")] += value
    return dict(out)


def _buckets(samples: Samples, name: str, **match: str) -> dict[float, float]:
    """A histogram's cumulative buckets (``le`` -> count), summed over other labels."""
    out: dict[float, float] = defaultdict(float)
    for (sample, labels), value in samples.items():
        named = dict(labels)
        if sample == name and all(named.get(k) == v for k, v in match.items()):
            out[float(named["le"])] += value
    return dict(out)


def _minus(now: dict[Any, float], before: dict[Any, float]) -> dict[Any, float]:
    return {k: v - before.get(k, 0.0) for k, v in now.items()}


def read_shares(now: Samples, before: Samples | None) -> dict[str, Any]:
    """The seed's table: the share of all reads answered by L1, L2, L3, stale and missed
    (summing to 100 %), read latency p50/p95/p99 and the read error rate — over the window
    since ``before`` when it has reads, else since the process started."""

    def rows(samples: Samples) -> tuple[dict[str, float], dict[float, float], float]:
        counts = by_label(samples, "warmfleet_cache_reads_total", "outcome")
        buckets = _buckets(samples, "warmfleet_cache_read_seconds_bucket")
        return counts, buckets, total(samples, "warmfleet_cache_read_errors_total")

    counts, buckets, errors = rows(now)
    window = False
    if before is not None:
        then = rows(before)
        d_counts = _minus(counts, then[0])
        if sum(d_counts.get(o, 0.0) for o in OUTCOMES) > 0:
            counts, buckets, errors = d_counts, _minus(buckets, then[1]), errors - then[2]
            window = True
    summary = summarize_reads(counts, sorted(buckets.items()), errors)
    summary["window"] = window
    return summary


def served_ages(now: Samples, before: Samples | None) -> dict[str, dict[str, float | None]]:
    """Per data type: the age of what the reader served, p50/p99 seconds — of the data
    types answered in the window since ``before``, else (no answers in it) since start."""
    name = "warmfleet_reader_served_age_seconds_bucket"
    since_start = {dt: _buckets(now, name, data_type=dt) for dt in by_label(now, name, "data_type")}
    chosen = since_start
    if before is not None:
        window = {
            dt: delta
            for dt, buckets in since_start.items()
            if max((delta := _minus(buckets, _buckets(before, name, data_type=dt))).values()) > 0
        }
        chosen = window or since_start
    out: dict[str, dict[str, float | None]] = {}
    for data_type, buckets in sorted(chosen.items()):
        # summarize_reads' quantiles are Prometheus' histogram_quantile (in ms)
        figures = summarize_reads({}, sorted(buckets.items()), 0)
        out[data_type] = {
            q: None if figures[f"{q}_ms"] is None else figures[f"{q}_ms"] / 1000
            for q in ("p50", "p99")
        }
    return out


@dataclass
class Snapshot:
    at: float
    up: dict[str, bool] = field(default_factory=dict)
    samples: dict[str, Samples] = field(default_factory=dict)


async def scrape(endpoints: dict[str, str], timeout_s: float = 1.0) -> Snapshot:
    snap = Snapshot(at=time.monotonic())
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    async with aiohttp.ClientSession(timeout=timeout) as session:

        async def one(name: str, url: str) -> None:
            try:
                async with session.get(url) as resp:
                    snap.samples[name] = parse(await resp.text())
                    snap.up[name] = resp.status == 200
            except (aiohttp.ClientError, TimeoutError, ValueError):
                snap.up[name] = False

        await asyncio.gather(*(one(n, u) for n, u in endpoints.items()))
    return snap


def summarise(now: Snapshot, before: Snapshot | None) -> dict[str, Any]:
    """Figures a person wants: phase, intervals, rates, hit rate per tier, freshness, errors."""
    s = now.samples
    dt = (now.at - before.at) if before else 0.0

    def rate(process: str, name: str, **match: str) -> float | None:
        if before is None or dt <= 0 or process not in before.samples or process not in s:
            return None
        return (
            total(s[process], name, **match) - total(before.samples[process], name, **match)
        ) / dt

    clock = s.get("clock", {})
    phase = next(
        (p for p, v in by_label(clock, "warmfleet_phase", "phase").items() if v == 1), None
    )
    intervals = by_label(clock, "warmfleet_phase_interval_seconds", "data_type")
    tiers: dict[str, dict[str, float | None]] = {}
    reader = s.get("reader", {})
    # hit rates over the window since ``before`` (what the fleet does now), else since start
    earlier = before.samples.get("reader", {}) if before is not None else {}
    for tier in TIERS:
        hits = total(reader, "warmfleet_cache_hits_total", tier=tier)
        misses = total(reader, "warmfleet_cache_misses_total", tier=tier)
        d_hits = hits - total(earlier, "warmfleet_cache_hits_total", tier=tier)
        d_misses = misses - total(earlier, "warmfleet_cache_misses_total", tier=tier)
        tiers[tier] = {
            "hits": hits,
            "misses": misses,
            "hit_rate": d_hits / (d_hits + d_misses) if d_hits + d_misses > 0 else None,
            "hit_rate_since_start": hits / (hits + misses) if hits + misses else None,
            "errors": total(reader, "warmfleet_cache_errors_total", tier=tier),
            "window_hits": d_hits,
            "window_misses": d_misses,
        }
    served = sum(t["window_hits"] or 0.0 for t in tiers.values())
    lookups = served + (tiers["redis"]["window_misses"] or 0.0)
    worker = s.get("worker", {})
    fresh = {
        (dict(labels).get("data_type", ""), dict(labels).get("which", "")): value
        for (name, labels), value in worker.items()
        if name == "warmfleet_freshness_seconds"
    }
    poller = s.get("poller", {})
    return {
        "window_s": round(dt, 1),
        "up": now.up,
        "phase": phase,
        "intervals_s": intervals,
        "events_published_per_s": rate("poller", "warmfleet_poller_events_published_total"),
        "events_processed_per_s": rate("worker", "warmfleet_agent_events_processed_total"),
        "reads_per_s": rate("reader", "warmfleet_reader_requests_total"),
        "tiers": tiers,
        "overall_hit_rate": served / lookups if lookups else None,
        "reads": read_shares(reader, earlier if before is not None else None),
        "served_age_s": served_ages(reader, earlier if before is not None else None),
        "freshness_s": {f"{dt_}/{which}": v for (dt_, which), v in sorted(fresh.items())},
        "errors": {
            "poller": total(poller, "warmfleet_poller_errors_total"),
            "rejected_payloads": total(poller, "warmfleet_poller_payloads_rejected_total"),
            "jobs_dropped": total(poller, "warmfleet_poller_jobs_dropped_total"),
            "dead_letters": total(worker, "warmfleet_agent_deadletter_total"),
            "cache": sum(t["errors"] or 0.0 for t in tiers.values()),
        },
    }


WINDOW_S = 15.0  # one warm interval in market hours: rates see at least one poll


class Window:
    """Keeps recent snapshots; ``oldest()`` is the one about ``WINDOW_S`` ago."""

    def __init__(self, span_s: float = WINDOW_S) -> None:
        self.span_s = span_s
        self.snaps: list[Snapshot] = []

    def push(self, snap: Snapshot) -> Snapshot:
        self.snaps.append(snap)
        while len(self.snaps) > 2 and snap.at - self.snaps[1].at >= self.span_s:
            self.snaps.pop(0)
        return self.snaps[0]


def _fmt(value: float | None, unit: str = "", digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}{unit}"


def render(summary: dict[str, Any]) -> Group:
    head = Table.grid(padding=(0, 2))
    head.add_row("phase", f"[bold]{summary['phase'] or 'unknown'}[/]")
    intervals = ", ".join(f"{k} {v:g}s" for k, v in sorted(summary["intervals_s"].items()))
    head.add_row("intervals", intervals or "-")
    head.add_row(
        "processes",
        "  ".join(
            f"[green]{n}[/]" if ok else f"[red]{n} down[/]" for n, ok in summary["up"].items()
        ),
    )
    head.add_row(
        "events/s",
        f"published {_fmt(summary['events_published_per_s'])}   "
        f"processed {_fmt(summary['events_processed_per_s'])}   "
        f"reads {_fmt(summary['reads_per_s'])}",
    )
    window = summary.get("window_s") or 0
    tiers = Table(title=f"hit rate per tier (reader, last {window:g} s)", expand=False)
    for col in ("tier", "hits", "misses", "hit rate", "since start", "errors"):
        tiers.add_column(col, justify="right")
    for name, t in summary["tiers"].items():
        rate = None if t["hit_rate"] is None else t["hit_rate"] * 100
        start = t["hit_rate_since_start"]
        tiers.add_row(
            name,
            _fmt(t["window_hits"], digits=0),
            _fmt(t["window_misses"], digits=0),
            _fmt(rate, "%"),
            _fmt(None if start is None else start * 100, "%"),
            _fmt(t["errors"], digits=0),
        )
    overall = summary["overall_hit_rate"]
    tiers.caption = f"overall {_fmt(None if overall is None else overall * 100, '%', 2)} (window)"
    reads = summary["reads"]
    shares = Table(
        title="reads by what answered them (reader, "
        + (f"last {window:g} s)" if reads["window"] else "since start)")
    )
    for col in ("L1", "L2", "L3", "stale", "missed", "p50", "P95", "p99", "errors"):
        shares.add_column(col, justify="right")
    share = reads["shares"]
    shares.add_row(
        *(_fmt(None if share[o] is None else share[o] * 100, "%") for o in OUTCOMES),
        *(_fmt(reads[q], " ms", 2) for q in ("p50_ms", "p95_ms", "p99_ms")),
        _fmt(None if reads["error_rate"] is None else reads["error_rate"] * 100, "%", 2),
    )
    shares.caption = f"{reads['reads']:,} reads; shares sum to 100 %"
    ages = Table(title="served age per data type (reader, s)")
    for col in ("data type", "p50", "p99"):
        ages.add_column(col, justify="right")
    for data_type, age in summary["served_age_s"].items():
        ages.add_row(data_type, _fmt(age["p50"]), _fmt(age["p99"]))
    fresh = Table(title="freshness of warmed keys (age, s)")
    fresh.add_column("data type / which")
    fresh.add_column("age", justify="right")
    for k, v in summary["freshness_s"].items():
        fresh.add_row(k, _fmt(v))
    errors = "  ".join(f"{k} {v:g}" for k, v in summary["errors"].items())
    return Group(head, tiers, shares, ages, fresh, f"errors: {errors}")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--watch", action="store_true", help="refresh every --every seconds")
    parser.add_argument("--every", type=float, default=1.0, metavar="S")
    parser.add_argument("--json", action="store_true", help="one machine-readable snapshot")
    for name, url in ENDPOINTS.items():
        parser.add_argument(f"--{name}-metrics", default=url, metavar="URL", dest=f"{name}_url")


async def _main(args: argparse.Namespace) -> int:
    endpoints = {name: getattr(args, f"{name}_url") for name in ENDPOINTS}
    before = await scrape(endpoints)
    await asyncio.sleep(min(args.every, 1.0))
    now = await scrape(endpoints)
    if args.json:
        print(json.dumps(summarise(now, before), indent=2, default=str))
        return 0 if any(now.up.values()) else 1
    if not args.watch:
        Console().print(render(summarise(now, before)))
        return 0 if any(now.up.values()) else 1
    window = Window()
    window.push(before)
    with Live(render(summarise(now, window.push(now))), refresh_per_second=4) as live:
        while True:
            await asyncio.sleep(args.every)
            now = await scrape(endpoints)
            live.update(render(summarise(now, window.push(now))))


def run(args: argparse.Namespace) -> int:
    return asyncio.run(_main(args))
