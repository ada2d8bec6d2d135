"""The read workload: ``concurrency`` readers sharing one seeded sequence of reads at
``rate`` per second for ``duration`` seconds, each read timed and recorded."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

import structlog

from ab._arms import Arm
from ab._workload import Assignment, Item, Zipf

log = structlog.get_logger(__name__)


@dataclass
class Reads:
    """Every read of a run, column by column (one row per read, both arms)."""

    t: list[float] = field(default_factory=list)  # seconds since the measurement started
    arm: list[str] = field(default_factory=list)
    data_type: list[str] = field(default_factory=list)
    tier: list[str] = field(default_factory=list)  # memory | memcached | redis | origin | error
    latency_s: list[float] = field(default_factory=list)
    age_s: list[float] = field(default_factory=list)  # NaN for an error
    served: list[bool] = field(default_factory=list)  # False: a shadow read
    error: list[str] = field(default_factory=list)  # "" or the exception's class

    def __len__(self) -> int:
        return len(self.t)

    def add(self, t: float, arm: str, item: Item, tier: str, latency_s: float, age_s: float,
            served: bool, error: str) -> None:  # fmt: skip
        self.t.append(t)
        self.arm.append(arm)
        self.data_type.append(item.data_type)
        self.tier.append(tier)
        self.latency_s.append(latency_s)
        self.age_s.append(age_s)
        self.served.append(served)
        self.error.append(error)


@dataclass(frozen=True, slots=True)
class Load:
    duration_s: float = 60.0
    rate: float = 633.0  # reads per second, both arms together; 0 = as fast as possible
    concurrency: int = 32
    seed: int = 7
    assignment: Assignment = field(default_factory=Assignment)
    #: seconds of the same load before the measurement, not recorded (steady state)
    warmup_s: float = 0.0

    def __post_init__(self) -> None:
        if not self.duration_s > 0 or self.rate < 0 or self.concurrency < 1 or self.warmup_s < 0:
            raise ValueError(
                f"need duration > 0, rate >= 0, concurrency >= 1 and warmup >= 0; got "
                f"duration {self.duration_s}, rate {self.rate}, concurrency "
                f"{self.concurrency}, warmup {self.warmup_s}"
            )


class Runner:
    def __init__(
        self, arms: Mapping[str, Arm], workload: Zipf, load: Load, *, only: str | None = None
    ) -> None:
        """``only``: run just this arm's reads (the other arm runs in another process on the
        same seeded sequence); ``arms`` then needs only that arm."""
        self.arms = arms
        self.only = only
        self.workload = workload
        self.load = load
        self.reads = Reads()
        self._rng = random.Random(load.seed)
        self._next = 0
        self._shadows: set[asyncio.Task[None]] = set()
        self._errors_logged: set[tuple[str, str]] = set()
        self.load_started = 0.0
        self.started = 0.0  # the measurement: load_started + warmup
        self.elapsed = 0.0
        self._origin_base: dict[str, int] = {}

    def _base_origin(self) -> None:
        if not self._origin_base:
            self._origin_base = {n: a.origin.requests for n, a in self.arms.items()}

    async def _read(self, arm: Arm, item: Item, served: bool) -> None:
        t0 = time.perf_counter()
        if t0 >= self.started:
            self._base_origin()  # before the first measured read's own requests
        try:
            tier, as_of = await arm.read(item)
            age, error = time.time() - as_of / 1000.0, ""
        except Exception as exc:  # counted per arm as the reader's error, never fatal
            tier, age, error = "error", float("nan"), type(exc).__name__
            if (arm.name, error) not in self._errors_logged:
                self._errors_logged.add((arm.name, error))
                log.warning("ab_read_failed", arm=arm.name, item=item.label, error=str(exc))
        latency = time.perf_counter() - t0
        if t0 < self.started:
            return  # a warm-up read
        self.reads.add(t0 - self.started, arm.name, item, tier, latency, age, served, error)

    async def _reader(self, end: float) -> None:
        rate, only, shadow = self.load.rate, self.only, self.load.assignment.shadow
        while True:
            slot = self._next
            self._next += 1
            # drawn when the slot is claimed, so slot n is the same read in every process
            item = self.workload.draw(self._rng)
            name = self.load.assignment.arm(self._rng)
            if only is not None and not shadow and name != only:
                continue  # the other arm's read, run by the other process
            due = (self.load_started + slot / rate if rate > 0
                   else max(self.load_started, time.perf_counter()))  # fmt: skip
            if due >= end:
                return
            now = time.perf_counter()
            if now >= end:
                return  # a reader that fell behind does not run past the duration
            if due > now:
                await asyncio.sleep(due - now)
            if shadow and only == "multitier":
                await self._read(self.arms["multitier"], item, False)
                continue
            if shadow and only is None:
                task = asyncio.create_task(self._read(self.arms["multitier"], item, False))
                self._shadows.add(task)
                task.add_done_callback(self._shadows.discard)
            await self._read(self.arms[name], item, True)

    def origin_requests(self) -> dict[str, int]:
        """Each arm's origin requests since the measurement started (not the warm-up's)."""
        return {n: a.origin.requests - self._origin_base.get(n, 0) for n, a in self.arms.items()}

    async def _mark_start(self, on_measure: Callable[[], Awaitable[None]] | None) -> None:
        await asyncio.sleep(max(0.0, self.started - time.perf_counter()))
        self._base_origin()
        if on_measure is not None:
            await on_measure()

    async def run(
        self, progress: Callable[[Runner], None] | None = None,
        on_measure: Callable[[], Awaitable[None]] | None = None,
        start: float | None = None,
    ) -> Reads:  # fmt: skip
        """Runs the load from ``start`` (``time.perf_counter()`` time; default now);
        ``on_measure`` is awaited when the measurement starts (after the warm-up), for
        counters that must not include the warm-up."""
        self.load_started = time.perf_counter() if start is None else start
        self.started = self.load_started + self.load.warmup_s
        end = self.started + self.load.duration_s
        ticker = asyncio.create_task(self._tick(progress)) if progress else None
        marked = asyncio.create_task(self._mark_start(on_measure))
        try:
            await asyncio.gather(*(self._reader(end) for _ in range(self.load.concurrency)))
            await marked
            if self._shadows:
                await asyncio.gather(*list(self._shadows))
        finally:
            self.elapsed = time.perf_counter() - self.started
            if not marked.done():
                marked.cancel()
            if ticker is not None:
                ticker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await ticker
        return self.reads

    async def _tick(self, progress: Callable[[Runner], None]) -> None:
        while True:
            self.elapsed = time.perf_counter() - self.started
            progress(self)
            await asyncio.sleep(0.5)
