"""A bounded HTTP load generator against the reader: a fixed number of connections, a rate
cap, a per-request timeout, every answer kept as (time, status, latency)."""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from dataclasses import dataclass, field

import aiohttp

#: status recorded when no HTTP answer came (refused, reset, timed out)
NO_ANSWER = 0


@dataclass(frozen=True, slots=True)
class Sample:
    at: float  # time.monotonic() when the request was sent
    status: int
    latency_s: float
    cold: bool = False  # a key no one warms: its 404 is the right answer

    @property
    def unexpected(self) -> bool:
        """Not the answer a reader should get: non-2xx for a warm key, else not 404."""
        return self.status != 404 if self.cold else not 200 <= self.status < 300


@dataclass(frozen=True, slots=True)
class WindowStats:
    requests: int
    non_2xx: int  # warm keys not answered 2xx (and cold keys not answered 404)
    server_errors: int  # 5xx
    no_answer: int  # refused / reset / timed out
    p50_ms: float | None
    p99_ms: float | None
    max_ms: float | None


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    rank = max(0, math.ceil(q * len(ordered)) - 1)
    return ordered[rank]


def window(samples: list[Sample], start: float, end: float) -> WindowStats:
    inside = [s for s in samples if start <= s.at < end]
    lat = [s.latency_s * 1000 for s in inside]
    p50, p99 = percentile(lat, 0.50), percentile(lat, 0.99)
    return WindowStats(
        requests=len(inside),
        non_2xx=sum(1 for s in inside if s.unexpected),
        server_errors=sum(1 for s in inside if s.status >= 500),
        no_answer=sum(1 for s in inside if s.status == NO_ANSWER),
        p50_ms=None if p50 is None else round(p50, 2),
        p99_ms=None if p99 is None else round(p99, 2),
        max_ms=round(max(lat), 2) if lat else None,
    )


@dataclass
class ReaderLoad:
    """``connections`` loops over ``paths``, together at most ``rate`` requests/s; every
    ``cold_every``-th request asks for one of ``cold_paths`` instead: keys no one warms, so
    each such read goes through every tier (L1, L2, L3) and shows what a slow or dead tier
    costs a reader (warm keys are mostly answered from L1)."""

    base_url: str
    paths: list[str]
    cold_paths: list[str] = field(default_factory=list)
    cold_every: int = 5
    connections: int = 16
    rate: float = 200.0
    timeout_s: float = 2.0
    samples: list[Sample] = field(default_factory=list)

    async def run(self, stop: asyncio.Event) -> None:
        timeout = aiohttp.ClientTimeout(total=self.timeout_s)
        connector = aiohttp.TCPConnector(limit=self.connections)
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
            loops = [
                asyncio.create_task(self._loop(session, i, stop)) for i in range(self.connections)
            ]
            try:
                await asyncio.gather(*loops)
            finally:
                for task in loops:
                    task.cancel()
                await asyncio.gather(*loops, return_exceptions=True)

    async def _loop(self, session: aiohttp.ClientSession, index: int, stop: asyncio.Event) -> None:
        period = self.connections / self.rate if self.rate > 0 else 0.0
        i = index
        next_at = time.monotonic() + period * index / self.connections
        while not stop.is_set():
            cold = bool(self.cold_paths) and (i // self.connections) % self.cold_every == 0
            pool = self.cold_paths if cold else self.paths
            path = pool[(i // self.connections + index) % len(pool)]
            i += self.connections
            sent = time.monotonic()
            status = NO_ANSWER
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with session.get(self.base_url + path) as resp:
                    await resp.read()
                    status = resp.status
            self.samples.append(Sample(sent, status, time.monotonic() - sent, cold))
            next_at += period
            delay = next_at - time.monotonic()
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
            else:
                next_at = time.monotonic()  # behind: no burst to catch up
