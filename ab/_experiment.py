"""One A/B run end to end: the fleet (started or attached), both arms, the workload, the
resource sampler, and the results dict the report is written from."""

from __future__ import annotations

import asyncio
import dataclasses
import time
import urllib.request
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog
from prometheus_client.parser import text_string_to_metric_families

from ab import _fleet
from ab._arms import Arm
from ab._isolated import ArmProcesses, ArmSpec, make_arm
from ab._runner import Load, Reads, Runner
from ab._stats import compare, summarise_arm
from ab._verdict import claimed_vs_measured, goals, verdict
from ab._workload import Item, Zipf, universe
from tiers import MultiTierCache
from topics.settings import at_least, check_fields, not_negative, positive
from topics.tasks import cancel_and_wait

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Config:
    load: Load = field(default_factory=Load)
    zipf_s: float = not_negative(1.1)
    symbols: int = at_least(1, 60)
    latency_s: float = not_negative(0.050)
    jitter_s: float = not_negative(0.0)
    direct_ttl_s: float = positive(300.0)
    direct_l1_entries: int = at_least(0, 10_000)  # 0: no L1
    memory_url: str = "memory://?max_entries=50000"
    attach: bool = False
    sim_url: str = "http://127.0.0.1:8899"
    warm_timeout_s: float = positive(180.0)
    #: both arms refuse a copy older than its data type's freshness class (origin instead)
    strict_freshness: bool = False
    resamples: int = at_least(1, 2000)
    #: both arms in this process and event loop (default: one spawned process per arm)
    same_process: bool = False
    log_dir: Path = field(default_factory=_fleet.log_dir_default)

    def __post_init__(self) -> None:
        check_fields(self, "ab")


def _sim_requests(url: str) -> dict[str, float]:
    """The simulator's answered venue requests by endpoint (its /metrics)."""
    with urllib.request.urlopen(url.rstrip("/") + "/metrics", timeout=5) as response:
        text = response.read().decode()
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name != "warmfleet_sim_requests":
            continue
        for sample in family.samples:
            if sample.name.endswith("_total"):
                endpoint = sample.labels.get("endpoint", "other")
                out[endpoint] = out.get(endpoint, 0.0) + sample.value
    return out


async def wait_warm(
    cache: MultiTierCache, items: list[Item], prefix: str, timeout_s: float
) -> float:
    """Waits until the fleet has written every item's key (or ``timeout_s``); returns the
    share (%) of keys present when the load starts."""
    keys = [item.key(prefix) for item in items]
    deadline = time.monotonic() + timeout_s
    share = 0.0
    while True:
        hits = await cache.get_many(keys)
        share = 100.0 * sum(h is not None for h in hits) / len(keys)
        if share >= 100.0 or time.monotonic() >= deadline:
            return share
        await asyncio.sleep(1.0)


async def run(
    cfg: Config, progress: Callable[[Runner], None] | None = None,
    status: Callable[[str], None] = lambda _: None,
    counts: Callable[[float, dict[str, tuple[int, int, int]]], None] | None = None,
) -> tuple[dict[str, Any], Reads]:  # fmt: skip
    """One run; ``progress`` (both arms in this process) or ``counts`` (one process per
    arm: seconds into the measurement, per arm reads / hits / origin reads) report live."""
    stack = _fleet.StackURLs.from_env()
    missing = await asyncio.to_thread(stack.unreachable)
    if missing:
        raise _fleet.FleetError(
            f"{'; '.join(missing)}: start the local stack (`warmfleet stack up`) or point "
            "WARMFLEET_*_URL at yours"
        )
    hold_s = cfg.load.warmup_s + cfg.load.duration_s + cfg.warm_timeout_s + 120
    if cfg.attach:
        fleet = _fleet.attach(stack, cfg.sim_url)
        status(f"attached to namespace {fleet.namespace!r}, origin {cfg.sim_url}")
    else:
        status("starting the fleet: sim, clock, poller, worker ...")
        fleet = await _fleet.start(
            stack, seed=cfg.load.seed, symbols=cfg.symbols, latency_s=cfg.latency_s,
            jitter_s=cfg.jitter_s, log_dir=cfg.log_dir, hold_for_s=hold_s,
        )  # fmt: skip
        status(f"fleet up in namespace {fleet.namespace!r} (logs in {cfg.log_dir})")
    try:
        state = await asyncio.to_thread(_fleet.sim_state, fleet.sim_url)
        items = universe(state["symbols"])
        workload = Zipf(items, cfg.zipf_s)
        base = ArmSpec(
            "direct", tuple(items), cfg.zipf_s, cfg.load, fleet.sim_url, stack.memcached,
            stack.redis, f"ab{uuid.uuid4().hex[:8]}direct", cfg.direct_ttl_s,
            cfg.direct_l1_entries, cfg.memory_url, cfg.strict_freshness,
        )  # fmt: skip
        specs = [base, dataclasses.replace(base, name="multitier", prefix=fleet.prefix)]
        probe = MultiTierCache.from_urls(stack.memcached, stack.redis)
        status(f"waiting for the fleet to warm {len(items)} keys ...")
        try:
            warm = await wait_warm(probe, items, fleet.prefix, cfg.warm_timeout_s)
        finally:
            await probe.close()
        where = "both arms in this process" if cfg.same_process else "one process per arm"
        status(f"{warm:.1f} % of the keys warm; load for {cfg.load.warmup_s:g} s warm-up + "
               f"{cfg.load.duration_s:g} s measured, {where}")  # fmt: skip
        before: dict[str, float] = {}
        sampler = _fleet.ResourceSampler(fleet.pids)

        async def measuring() -> None:  # after the warm-up: its requests and CPU not counted
            before.update(await asyncio.to_thread(_sim_requests, fleet.sim_url))
            sampler.start()

        try:
            if cfg.same_process:
                reads, origin, duration = await _in_process(cfg, specs, workload, progress,
                                                            measuring)  # fmt: skip
            else:
                reads, origin, duration = await _in_processes(cfg, specs, counts, measuring)
        finally:
            await sampler.stop()
        after = await asyncio.to_thread(_sim_requests, fleet.sim_url)
        died = fleet.died()
        results = _results(cfg, fleet, state, workload, warm, duration, origin, reads, before,
                           after, sampler.summary(), died)  # fmt: skip
        return results, reads
    finally:
        if fleet.owned:
            status("stopping the fleet ...")
            await _fleet.stop(fleet)


Measuring = Callable[[], Awaitable[None]]


async def _in_process(
    cfg: Config, specs: list[ArmSpec], workload: Zipf,
    progress: Callable[[Runner], None] | None, measuring: Measuring,
) -> tuple[Reads, dict[str, int], float]:  # fmt: skip
    arms: dict[str, Arm] = {}
    try:
        for spec in specs:
            arms[spec.name] = await make_arm(spec)
        runner = Runner(arms, workload, cfg.load)
        reads = await runner.run(progress, measuring)
        return reads, runner.origin_requests(), runner.elapsed
    finally:
        for arm in arms.values():
            await arm.close()


async def _in_processes(
    cfg: Config, specs: list[ArmSpec],
    counts: Callable[[float, dict[str, tuple[int, int, int]]], None] | None,
    measuring: Measuring,
) -> tuple[Reads, dict[str, int], float]:  # fmt: skip
    procs = ArmProcesses(specs)
    ticker: asyncio.Task[None] | None = None
    try:
        started = await procs.start()
        measure_at = started + cfg.load.warmup_s

        async def mark() -> None:
            await asyncio.sleep(max(0.0, measure_at - time.time()))
            await measuring()

        async def tick() -> None:
            while counts is not None:
                counts(time.time() - measure_at, procs.progress())
                await asyncio.sleep(0.5)

        marked = asyncio.create_task(mark())
        ticker = asyncio.create_task(tick())
        timeout = cfg.load.warmup_s + cfg.load.duration_s + 120
        result = await procs.results(timeout)
        await marked
        return result
    finally:
        await cancel_and_wait(ticker)
        await asyncio.to_thread(procs.stop)


def _results(
    cfg: Config, fleet: _fleet.Fleet, state: dict[str, Any], workload: Zipf, warm: float,
    duration: float, origin_requests: dict[str, int], reads: Reads, before: dict[str, float],
    after: dict[str, float], resources: dict[str, Any], died: dict[str, int],
) -> dict[str, Any]:  # fmt: skip
    seed = cfg.load.seed
    arms = {
        name: summarise_arm(reads, name, duration_s=duration,
                            origin_requests=origin_requests[name], resamples=cfg.resamples,
                            seed=seed + 10 * i)
        for i, name in enumerate(("direct", "multitier"))
    }  # fmt: skip
    comparison = compare(reads, resamples=cfg.resamples, seed=seed)
    delta = {k: after.get(k, 0.0) - before.get(k, 0.0) for k in after}
    total = sum(delta.values())
    arms_requests = sum(a["origin_requests"] for a in arms.values())
    fleet_requests = max(0.0, total - arms_requests)
    books = sum(v for k, v in delta.items() if "depth" in k or "books" in k)
    origin = {
        "direct reads, requests": arms["direct"]["origin_requests"],
        "multitier reads, requests": arms["multitier"]["origin_requests"],
        "fleet pollers, requests (all types)": fleet_requests,
        "fleet pollers, requests without books (not read here)": fleet_requests - books,
        "fleet pollers, requests / s": fleet_requests / duration,
        "direct / (multitier reads + fleet without books)": (
            arms["direct"]["origin_requests"]
            / (arms["multitier"]["origin_requests"] + fleet_requests - books)
            if arms["multitier"]["origin_requests"] + fleet_requests - books > 0 else None
        ),
    }  # fmt: skip
    return {
        "config": {
            "mode": cfg.load.assignment.mode,
            "split": cfg.load.assignment.split,
            "shadow": cfg.load.assignment.shadow,
            "duration_s": duration,
            "rate": cfg.load.rate,
            "warmup_s": cfg.load.warmup_s,
            "concurrency": cfg.load.concurrency,
            "seed": seed,
            "zipf_s": cfg.zipf_s,
            "items": len(workload.items),
            "symbols": len(state["symbols"]),
            "hottest_item_share_pct": 100 * workload.share(0),
            "origin_latency_ms": float(state.get("latency_ms", cfg.latency_s * 1000)),
            "origin_jitter_ms": float(state.get("jitter_ms", cfg.jitter_s * 1000)),
            "direct_ttl_s": cfg.direct_ttl_s,
            "direct_l1_entries": cfg.direct_l1_entries,
            "memory_url": cfg.memory_url,
            "self_contained": fleet.owned,
            "namespace": fleet.namespace,
            "key_prefix": fleet.prefix,
            "sim_url": fleet.sim_url,
            "warm_pct": warm,
            "same_process": cfg.same_process,
            "strict_freshness": cfg.strict_freshness,
            "bootstrap_resamples": cfg.resamples,
        },
        "arms": arms,
        "comparison": comparison,
        "verdict": verdict(arms, comparison, resources),
        "goals": goals(arms, comparison),
        "claimed_vs_measured": claimed_vs_measured(arms),
        "origin": origin,
        "resources": resources,
        "fleet_exited": died,
    }
