"""One scenario, measured: start the fleet on its own namespace, wait until the reader is
warm, put the reader under load, break something, restore it, watch, then drain the
pipeline and balance the ledger of ticker events. The goals are checked here."""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
import socket
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import redis.asyncio as aioredis

from chaos._fleet import Fleet, FleetConfig
from chaos._load import ReaderLoad, WindowStats, window
from chaos._measure import (
    PROBES,
    Ledger,
    Timeline,
    breaker_back_s,
    expected_observations,
    fresh_again_s,
    job_times_ms,
    longest_gap_s,
    max_served_age_s,
    observed_observations,
)
from chaos._scenarios import Ctx, Say, Scenario
from stack import StackConfig, StackError, up
from stack._toxiproxy import Toxiproxy
from topics.kafka import drop_namespace
from workers.cli._status import total

#: a read waits at most one L2 and one L3 deadline (tiers' timeout_s=0.1 each) plus the
#: reader's own work on a loaded 2-core machine
P99_BOUND_MS = 250.0
BREAKER_BACK_S = 5.0
FRESH_AFTER_S = 30.0
LEADER_TAKEOVER_S = 10.0  # lease TTL 5 s + one renewal + a scrape
REFILL_S = 30.0


@dataclass(frozen=True, slots=True)
class Goal:
    name: str
    ok: bool
    detail: str
    #: a goal of issue 14's list (asserted by the tests); False: watched and reported only
    required: bool = True


@dataclass
class Result:
    scenario: str
    what: str
    namespace: str
    before: WindowStats | None = None
    during: WindowStats | None = None
    after: WindowStats | None = None
    breaker_opened: bool = False
    breaker_back_s: float | None = None
    fresh_after_s: float | None = None
    max_age_during_s: dict[str, float | None] = field(default_factory=dict)
    leader_after_s: float | None = None
    longest_warm_gap_s: float | None = None
    refill_s: float | None = None
    #: at that moment, how many of Redis's keys still carried a write from before the
    #: restart (the refill keeps each value's first ``written_at``; a warm writes anew)
    refilled_old_keys: int | None = None
    phase_before: str | None = None
    phase_after: str | None = None
    ledger: Ledger | None = None
    goals: list[Goal] = field(default_factory=list)
    error: str | None = None
    took_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None and all(g.ok for g in self.goals if g.required)


@dataclass(frozen=True, slots=True)
class Options:
    stack: StackConfig
    log_dir: Path
    connections: int = 16
    rate: float = 200.0
    before_s: float = 6.0
    warm_timeout_s: float = 150.0


def fleet_ports(stack: StackConfig) -> tuple[int, int]:
    """(metrics base, reader port): the block after the faults stack's own (base+20 ..
    base+24), below Linux's ephemeral range, where the reader load's closed connections
    (TIME_WAIT) would make a free-port probe fail."""
    base = stack.ports.toxiproxy + 10
    for port in range(base, base + 5):
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", port))
            except OSError as exc:
                raise RuntimeError(
                    f"port {port} for the fleet (metrics {base}-{base + 3}, reader {base + 4}) "
                    "is taken: is another `warmfleet chaos` running? Choose --base-port"
                ) from exc
    return base, base + 4


async def _paths(sim_port: int, deadline: float) -> list[str]:
    """The load's paths: the hottest symbols of both venues and their analyses (not the
    overview: it is computed once a minute, so it may be cold when a scenario starts)."""
    url = f"http://127.0.0.1:{sim_port}/api/v3/exchangeInfo"
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
        while True:
            try:
                async with session.get(url) as resp:
                    info = await resp.json()
                break
            except (aiohttp.ClientError, TimeoutError, ValueError):
                if time.monotonic() > deadline:
                    raise RuntimeError("the simulator never answered") from None
                await asyncio.sleep(0.5)
    symbols = [f"{s['baseAsset']}-{s['quoteAsset']}" for s in info.get("symbols", [])][:6]
    paths = [f"/v2/tickers/{ex}/{s}" for s in symbols for ex in ("binance", "okx")]
    paths += [f"/v2/analysis/binance/{s}" for s in symbols[:3]]
    return list(dict.fromkeys([*PROBES.values(), *paths]))


async def _wait_warm(base: str, paths: list[str], deadline: float) -> None:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
        cold = list(paths)
        while cold:
            still = []
            for path in cold:
                try:
                    async with session.get(base + path) as resp:
                        if resp.status != 200:
                            still.append(path)
                except (aiohttp.ClientError, TimeoutError):
                    still.append(path)
            cold = still
            if cold and time.monotonic() > deadline:
                raise RuntimeError(f"the reader never became warm; still cold: {cold[:4]}")
            if cold:
                await asyncio.sleep(1.0)


async def _drain(fleet: Fleet, say: Say, bound_s: float = 45.0) -> None:
    """Stop the clocks (no new warm jobs), then wait until the pollers stop publishing and
    the worker has read everything (lag 0, processed count steady for 3 s)."""
    await fleet.stop("clock-a")
    await fleet.stop("clock-b")
    deadline = time.monotonic() + bound_s
    last: tuple[float, float] | None = None
    steady_since = time.monotonic()
    while time.monotonic() < deadline:
        scraped = await fleet.scrape()
        poller, worker = scraped.get("poller", {}), scraped.get("worker", {})
        now = (
            total(poller, "warmfleet_poller_events_published_total"),
            total(worker, "warmfleet_agent_events_processed_total"),
        )
        lag = total(worker, "warmfleet_agent_consumer_lag")
        if now != last or lag > 0 or "worker" not in scraped:
            last, steady_since = now, time.monotonic()
        elif time.monotonic() - steady_since >= 3.0:
            return
        await asyncio.sleep(0.5)
    say(f"drain: the pipeline did not settle within {bound_s:.0f}s; ledger taken anyway")


async def _redis_keys(direct_url: str, prefix: str, before_ms: float) -> tuple[int, int]:
    """Redis's keys of the fleet (envelopes under ``prefix``), and how many of them were
    first written before ``before_ms``."""
    client = aioredis.from_url(direct_url, socket_timeout=1.0)
    try:
        keys = [k async for k in client.scan_iter(match=f"{prefix}:v2:*", count=1000)]
        old = 0
        for i in range(0, len(keys), 500):
            for raw in await client.mget(keys[i : i + 500]):
                m = _WRITTEN_AT.search(raw if isinstance(raw, bytes) else b"")
                old += m is not None and int(m.group(1)) < before_ms
        return len(keys), old
    except (aioredis.RedisError, OSError):
        return 0, 0
    finally:
        await client.aclose()


_WRITTEN_AT = re.compile(rb'"w":(\d+)')


async def run_scenario(sc: Scenario, opts: Options, say: Say) -> Result:
    started = time.monotonic()
    ns = f"chaos{uuid.uuid4().hex[:8]}."
    result = Result(sc.name, sc.what, ns)
    try:
        # whatever an earlier scenario left down (a broker that did not come back) is up again
        info = await asyncio.to_thread(up, opts.stack, lambda m: None)
        if not info["running"]:
            raise StackError(f"the faults stack is not running: {sorted(info['processes'])}")
        metrics_base, reader_port = fleet_ports(opts.stack)
    except (StackError, RuntimeError) as exc:
        result.error = f"{type(exc).__name__}: {exc}"
        say(f"[{sc.name}] failed: {result.error}")
        return result
    cfg = FleetConfig(
        namespace=ns,
        kafka=info["kafka"],
        redis_url=info["redis"],
        memcached=info["memcached"],
        exchange_urls=info["exchange_urls"],
        sim_port=opts.stack.ports.sim,
        reader_port=reader_port,
        metrics_base=metrics_base,
        log_dir=opts.log_dir / sc.name,
    )
    fleet = Fleet(cfg)
    base = f"http://127.0.0.1:{reader_port}"
    toxiproxy = Toxiproxy(info["toxiproxy"])
    ctx = Ctx(opts.stack, toxiproxy, fleet, lambda m: say(f"[{sc.name}] {m}"))
    stop = asyncio.Event()
    tasks: list[asyncio.Task[None]] = []
    try:
        await toxiproxy.reset()
        await fleet.start_all()
        ctx.say(f"fleet started on namespace {ns} (logs {cfg.log_dir})")
        deadline = time.monotonic() + opts.warm_timeout_s
        paths = await _paths(cfg.sim_port, deadline)
        await _wait_warm(base, paths, deadline)
        ctx.say(f"warm after {time.monotonic() - started:.1f}s; reader load starts")
        if sc.phase != cfg.phase:
            # warmed at market hours (15 s), then held at the scenario's phase: a fleet started
            # at weekend would first warm only after a whole 600 s interval
            await fleet.hold_phase(sc.phase)
            ctx.say(f"phase held at {sc.phase}")
        cold = [f"/v2/keys/{cfg.key_prefix}:v2:misc:value:1m:chaos:cold{i}" for i in range(64)]
        load = ReaderLoad(base, paths, cold, connections=opts.connections, rate=opts.rate)
        timeline = Timeline(fleet, base)
        tasks = [asyncio.create_task(load.run(stop)), asyncio.create_task(timeline.run(stop))]
        refill: list[tuple[float, int, int]] = []
        marks: dict[str, float] = {"fault_ms": math.inf}
        if sc.name == "redis-empty-restart":
            tasks.append(
                asyncio.create_task(_watch_keys(info, cfg.key_prefix, refill, marks, stop))
            )
        t0, t0_wall_ms = time.monotonic(), time.time() * 1000
        await asyncio.sleep(opts.before_s)
        fault_at = time.monotonic()
        marks["fault_ms"] = time.time() * 1000
        await sc.inject(ctx)
        await asyncio.sleep(sc.fault_s)
        await sc.restore(ctx)
        restored_at = time.monotonic()
        ctx.say(f"restored {restored_at - fault_at:.1f}s after the fault; watching")
        await _watch(sc, timeline, restored_at, ctx)
        end, end_wall_ms = time.monotonic(), time.time() * 1000
        stop.set()
        await asyncio.gather(*tasks)
        result.before = window(load.samples, t0, fault_at)
        result.during = window(load.samples, fault_at, restored_at)
        result.after = window(load.samples, restored_at, end)
        if sc.tier:
            result.breaker_opened, result.breaker_back_s = breaker_back_s(
                timeline, sc.tier, fault_at, restored_at
            )
        venues = ("binance",) if sc.kind == "exchange" else tuple(PROBES)
        result.fresh_after_s = fresh_again_s(timeline, restored_at, venues)
        result.max_age_during_s = {
            v: max_served_age_s(timeline, fault_at, restored_at + 1.0, v) for v in PROBES
        }
        if sc.kind == "clock":
            killed = str(ctx.notes["killed_clock"])
            result.leader_after_s = _leader_after(timeline, fault_at, killed)
        phases = [p.phase for p in timeline.between(t0, fault_at) if p.phase]
        result.phase_before = phases[-1] if phases else None
        later = [p.phase for p in timeline.points if p.phase]
        result.phase_after = later[-1] if later else None
        if refill:
            result.refill_s, result.refilled_old_keys = _refill_s(refill, restored_at)
        ctx.say("draining the pipeline to balance the ledger")
        await _drain(fleet, ctx.say)
        result.ledger = await _ledger(fleet, cfg, info["direct"])
        issued = await job_times_ms(cfg.kafka, f"{cfg.namespace}warm.jobs")
        result.longest_warm_gap_s = longest_gap_s(issued, t0_wall_ms, end_wall_ms)
    except Exception as exc:  # a scenario that breaks is reported, the next one still runs
        result.error = f"{type(exc).__name__}: {exc}"
        ctx.say(f"failed: {result.error}")
    finally:
        stop.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await fleet.stop_all()
        await _drop_topics(cfg.kafka, ns)
        with contextlib.suppress(Exception):
            await toxiproxy.reset()
        await toxiproxy.close()
        if "frozen" in ctx.notes:  # never leave a server stopped
            with contextlib.suppress(Exception):
                import os
                import signal

                os.kill(int(str(ctx.notes["frozen"])), signal.SIGCONT)
    result.took_s = round(time.monotonic() - started, 1)
    if result.error is None:
        result.goals = goals(sc, result)
    return result


async def _drop_topics(bootstrap: str, namespace: str) -> None:
    """Delete the scenario's topics: a broker that keeps every run's partitions takes ever
    longer to come back in kafka-kill."""
    try:
        await asyncio.wait_for(drop_namespace(bootstrap, [namespace]), 60)
    except Exception:  # cleanup only: the results stand without it
        return


async def _watch(sc: Scenario, timeline: Timeline, restored_at: float, ctx: Ctx) -> None:
    """Sleep through the after window, saying what recovers as it recovers."""
    end = restored_at + sc.after_s
    told_breaker = sc.tier is None
    while time.monotonic() < end:
        await asyncio.sleep(1.0)
        if not told_breaker and sc.tier:
            opened, back = breaker_back_s(timeline, sc.tier, restored_at - sc.fault_s, restored_at)
            if not opened or back is not None:
                ctx.say(f"{sc.tier} breaker: " + (f"closed {back:.1f}s after restore"
                                                  if opened else "never opened"))  # fmt: skip
                told_breaker = True


async def _watch_keys(
    info: dict[str, object],
    prefix: str,
    into: list[tuple[float, int, int]],
    marks: dict[str, float],
    stop: asyncio.Event,
) -> None:
    direct = str(dict(info["direct"])["redis"])  # type: ignore[call-overload]
    while not stop.is_set():
        at = time.monotonic()
        into.append((at, *await _redis_keys(direct, prefix, marks["fault_ms"])))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.5)


def _refill_s(
    points: list[tuple[float, int, int]], restored_at: float
) -> tuple[float | None, int | None]:
    """Seconds from the restore until Redis holds 90 % of the keys it held before, and how
    many of its keys then were first written before the fault (refilled, not re-warmed)."""
    before = [n for at, n, _ in points if at < restored_at]
    target = 0.9 * max(before) if before else 1
    for at, n, old in points:
        if at >= restored_at and n >= target and n > 0:
            return round(at - restored_at, 1), old
    return None, None


def _leader_after(timeline: Timeline, fault_at: float, killed: str) -> float | None:
    """Seconds from the kill until another clock reports itself leader."""
    for p in timeline.points:
        if p.at >= fault_at and any(v == 1.0 for c, v in p.leaders.items() if c != killed):
            return round(p.at - fault_at, 1)
    return None


async def _ledger(fleet: Fleet, cfg: FleetConfig, direct: dict[str, str]) -> Ledger:
    topic = f"{cfg.namespace}market.tickers"
    produced, expected = await expected_observations(cfg.kafka, topic)
    tier_urls = [f"memcached://{direct['memcached']}", direct["redis"]]
    observed, _ = await observed_observations(tier_urls, cfg.key_prefix, sorted(expected))
    processed = fleet.counter_over_incarnations(
        "worker", "warmfleet_agent_events_processed_total", topic=topic
    )
    off = {k: observed.get(k, 0) - n for k, n in expected.items() if observed.get(k, 0) != n}
    return Ledger(
        produced=produced,
        expected=sum(expected.values()),
        processed=int(processed),
        observed=sum(observed.values()),
        keys=len(expected),
        keys_missing=len(set(expected) - set(observed)),
        off_by_key=dict(sorted(off.items())[:10]),
    )


def goals(sc: Scenario, r: Result) -> list[Goal]:
    out: list[Goal] = []
    windows = [w for w in (r.before, r.during, r.after) if w is not None]
    errors = sum(w.server_errors + w.no_answer for w in windows)
    out.append(Goal("0 reader 5xx", errors == 0, f"{errors} 5xx or unanswered requests"))
    if sc.kind == "tier" and r.during is not None:
        p99 = r.during.p99_ms
        out.append(Goal(f"p99 <= {P99_BOUND_MS:.0f} ms during", p99 is not None
                        and p99 <= P99_BOUND_MS, f"p99 {p99} ms"))  # fmt: skip
    if sc.tier and r.breaker_opened:
        back = r.breaker_back_s
        out.append(Goal(f"breaker back <= {BREAKER_BACK_S:.0f} s", back is not None
                        and back <= BREAKER_BACK_S, f"closed after {back} s"))  # fmt: skip
    if r.ledger is not None:
        ok = r.ledger.lost == 0 and r.ledger.doubled == 0 and r.ledger.keys_missing == 0
        out.append(Goal("0 lost, 0 doubled", ok,
                        f"lost {r.ledger.lost}, doubled {r.ledger.doubled}, "
                        f"keys missing {r.ledger.keys_missing}",
                        required=sc.kind in ("kafka", "worker")))  # fmt: skip
    fresh = r.fresh_after_s
    out.append(Goal(f"fresh <= {FRESH_AFTER_S:.0f} s after restore",
                    fresh is not None and fresh <= FRESH_AFTER_S, f"fresh after {fresh} s",
                    required=sc.kind in ("kafka", "exchange", "clock", "worker")))  # fmt: skip
    if sc.kind == "exchange":
        age = r.max_age_during_s.get("okx")
        out.append(Goal("other venue fresh during", age is not None and age <= 35.0,
                        f"okx max served age {age} s"))  # fmt: skip
    if sc.kind == "clock":
        lead = r.leader_after_s
        out.append(Goal(f"standby leads <= {LEADER_TAKEOVER_S:.0f} s", lead is not None
                        and lead <= LEADER_TAKEOVER_S, f"after {lead} s"))  # fmt: skip
    if sc.name == "redis-empty-restart":
        out.append(Goal(f"redis refilled <= {REFILL_S:.0f} s", r.refill_s is not None
                        and r.refill_s <= REFILL_S,
                        f"refilled after {r.refill_s} s ({r.refilled_old_keys} keys as "
                        "written before the restart)"))  # fmt: skip
    out.append(Goal("phase held", r.phase_after == sc.phase,
                    f"{r.phase_before} -> {r.phase_after}", required=False))  # fmt: skip
    return out
