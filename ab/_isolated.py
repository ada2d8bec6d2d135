"""Each arm in a process of its own, on the same seeded sequence of reads.

In one process the arms share an event loop and a CPU: the old design's origin reads
(ccxt parsing whole ticker lists) then delay the other arm's cache hits. In an A/B test
the two designs run on separate servers; here each arm gets its own process (spawned),
its own readers (``--concurrency`` each) and its own clients, and both start the same
paced sequence at the same wall-clock instant, each running only its own slots.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import queue
import time
from dataclasses import dataclass
from typing import Any

from ab._arms import Arm, DirectArm, MultiTierArm
from ab._origin import Origin
from ab._runner import Load, Reads, Runner
from ab._workload import Item, Zipf
from tiers import DirectCacheAdapter, MultiTierCache

#: a child's progress: reads, hits, origin reads (shared memory, updated twice a second)
COUNTS = 3


class ArmProcessError(Exception):
    """An arm's process failed (its error is in the message)."""


@dataclass(frozen=True)
class ArmSpec:
    name: str  # direct | multitier
    items: tuple[Item, ...]
    zipf_s: float
    load: Load
    sim_url: str
    memcached_url: str
    redis_url: str
    prefix: str
    direct_ttl_s: float = 300.0
    direct_l1_entries: int = 10_000
    memory_url: str = "memory://?max_entries=50000"
    strict: bool = False


async def make_arm(spec: ArmSpec) -> Arm:
    origin = Origin(spec.sim_url)
    await origin.start()
    if spec.name == "direct":
        cache = DirectCacheAdapter.from_urls(
            spec.memcached_url, spec.redis_url, ttl_s=spec.direct_ttl_s,
            l1_entries=spec.direct_l1_entries,
        )  # fmt: skip
        return DirectArm(cache, origin, spec.prefix, strict=spec.strict)
    multi = MultiTierCache.from_urls(spec.memory_url, spec.memcached_url, spec.redis_url)
    return MultiTierArm(multi, origin, spec.prefix, strict=spec.strict)


def _child(spec: ArmSpec, out: Any, go: Any, start_at: Any, counts: Any) -> None:
    from workers.logs import configure_logging

    configure_logging("WARNING", "console")  # stderr: the parent's stdout is the report
    try:
        out.put(("done", asyncio.run(_arm_main(spec, out, go, start_at, counts))))
    except Exception as exc:  # reported to the parent, which stops the run
        out.put(("error", f"{spec.name}: {type(exc).__name__}: {exc}"))


async def _arm_main(spec: ArmSpec, out: Any, go: Any, start_at: Any, counts: Any) -> dict[
    str, Any
]:  # fmt: skip
    arm = await make_arm(spec)
    try:
        runner = Runner({spec.name: arm}, Zipf(spec.items, spec.zipf_s), spec.load,
                        only=spec.name)  # fmt: skip
        out.put(("ready", spec.name))
        await asyncio.to_thread(go.wait)
        start = time.perf_counter() + (start_at.value - time.time())

        def progress(r: Runner) -> None:
            tiers = r.reads.tier
            counts[0] = len(tiers)
            counts[1] = sum(1 for t in tiers if t in ("memory", "memcached", "redis"))
            counts[2] = sum(1 for t in tiers if t == "origin")

        reads = await runner.run(progress, start=start)
        progress(runner)
        return {"reads": reads.__dict__, "origin_requests": runner.origin_requests()[spec.name],
                "elapsed": runner.elapsed}  # fmt: skip
    finally:
        await arm.close()


class ArmProcesses:
    """Starts one spawned process per arm, releases them together, collects their reads."""

    def __init__(self, specs: list[ArmSpec]) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.specs = specs
        self.go = ctx.Event()
        self.start_at = ctx.Value("d", 0.0)
        self.counts = {s.name: ctx.Array("q", COUNTS) for s in specs}
        self.queues = {s.name: ctx.Queue() for s in specs}
        self.procs = {
            s.name: ctx.Process(target=_child, name=f"ab-{s.name}", daemon=True,
                                args=(s, self.queues[s.name], self.go, self.start_at,
                                      self.counts[s.name]))
            for s in specs
        }  # fmt: skip

    async def _next(self, name: str, timeout_s: float) -> tuple[str, Any]:
        try:
            kind, payload = await asyncio.to_thread(self.queues[name].get, True, timeout_s)
        except queue.Empty:
            raise ArmProcessError(f"{name}: no answer within {timeout_s:g} s") from None
        if kind == "error":
            raise ArmProcessError(str(payload))
        return kind, payload

    async def start(self, lead_s: float = 0.5) -> float:
        """Spawns the arms, waits until both are ready, and starts them ``lead_s`` from
        now; returns that start (wall clock, ``time.time()``)."""
        for proc in self.procs.values():
            proc.start()
        for name in self.procs:
            await self._next(name, 120.0)
        self.start_at.value = time.time() + lead_s
        self.go.set()
        return float(self.start_at.value)

    def progress(self) -> dict[str, tuple[int, int, int]]:
        return {n: (int(c[0]), int(c[1]), int(c[2])) for n, c in self.counts.items()}

    async def results(self, timeout_s: float) -> tuple[Reads, dict[str, int], float]:
        merged, origin, elapsed = Reads(), {}, 0.0
        for name in self.procs:
            _, payload = await self._next(name, timeout_s)
            for column, values in payload["reads"].items():
                getattr(merged, column).extend(values)
            origin[name] = int(payload["origin_requests"])
            elapsed = max(elapsed, float(payload["elapsed"]))
        return merged, origin, elapsed

    def stop(self) -> None:
        for proc in self.procs.values():
            proc.join(timeout=10)
            if proc.is_alive():
                proc.kill()
                proc.join(timeout=5)
