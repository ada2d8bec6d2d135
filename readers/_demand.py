"""The reader's side of the demand path (``demand``): a miss on a key the fleet can load
asks for it and waits for the write; a hit XFetch says is about to expire asks early.

* Loadable keys: tickers, books, candles of ``{exchange}:{symbol}``, and the analysis of a
  symbol (volatility, signals: computed from its tickers, so a tickers job loads them).
* Concurrent misses on one key in this process share one ask and one wait; across the
  fleet the lease makes one job.
* The wait is woken by the write itself (the coherence bus, ``tiers._waiters``), with a
  read of the tiers every ``poll_s`` as a belt, and ends at the deadline: the value, or a
  503 with ``Retry-After`` — never a hung connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable
from typing import Any, Protocol

import structlog

from demand import Ask, Demand, Outcome
from demand import _metrics as metrics
from readers._answers import Answer, HitLike, error
from tiers._waiters import Waiters, waiters_of
from topics import DataType, data_type_of

log = structlog.get_logger(__name__)

#: the data type of a key -> the warm job that loads it
LOADS = {
    DataType.TICKERS: DataType.TICKERS,
    DataType.BOOKS: DataType.BOOKS,
    DataType.CANDLES: DataType.CANDLES,
    DataType.VOLATILITY: DataType.TICKERS,
    DataType.SIGNALS: DataType.TICKERS,
}
Target = tuple[str, str, str]  # exchange, job data type, symbol


class Cache(Protocol):
    async def get(self, key: str) -> Any: ...


class ReaderDemand:
    def __init__(self, cache: Cache, demand: Demand, *, key_prefix: str) -> None:
        self.cache, self.demand = cache, demand
        self.prefix = key_prefix + ":"
        self.waiters: Waiters | None = waiters_of(cache)
        self._targets: dict[str, Target | None] = {}
        self._loads: dict[str, asyncio.Future[HitLike | Answer]] = {}
        self._refreshing: set[str] = set()
        self._tasks: set[asyncio.Task[Any]] = set()

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await self.demand.close()

    def target(self, key: str) -> Target | None:
        """(exchange, job data type, symbol) when the fleet can load ``key``, else None."""
        found = self._targets.get(key, False)
        if found is not False:
            return found  # type: ignore[return-value]
        target: Target | None = None
        job_type = LOADS.get(data_type_of(key))
        if job_type is not None and key.startswith(self.prefix):
            ids = key.split(":")[5:]  # prefix, version, domain, type, ttl_hint, ids...
            if len(ids) >= 2 and ids[0] and ids[1]:
                target = (ids[0], str(job_type), ids[1])
        if len(self._targets) >= 65536:
            self._targets.clear()
        self._targets[key] = target
        return target

    # ---- a miss ---------------------------------------------------------------------

    async def miss(self, key: str) -> HitLike | Answer | None:
        """The value (after a demand), an error answer (404 unlisted, 503 Retry-After), or
        None when the key is not one the fleet loads (the reader's usual 404)."""
        target = self.target(key)
        if target is None:
            return None
        shared = self._loads.get(key)
        if shared is None:
            shared = asyncio.ensure_future(self._load(key, target))
            self._loads[key] = shared
            shared.add_done_callback(lambda _f: self._loads.pop(key, None))
        else:
            metrics.DEMAND_JOBS.labels(target[0], target[1], Outcome.DEDUPLICATED).inc()
        return await asyncio.shield(shared)

    async def _load(self, key: str, target: Target) -> HitLike | Answer:
        exchange, data_type, symbol = target
        started = time.perf_counter()
        ask = await self.demand.ask(exchange, data_type, symbol)
        if ask.outcome is Outcome.UNLISTED:
            detail = f"{symbol} is not listed on {exchange} (or no poller serves {exchange})"
            return error(404, "not_found", detail, key=key)
        if ask.outcome is Outcome.REFUSED:
            return _retry(ask, "over_budget", f"{exchange}'s request budget is spent", key)
        if ask.outcome is Outcome.UNAVAILABLE:
            return _retry(ask, "unavailable", "the demand path cannot reach Redis or Kafka", key)
        hit = await self._wait(key, 0, started + self.demand.config.deadline_s)
        if hit is None:
            metrics.DEMAND_WAITS.labels(exchange, data_type, "timeout").inc()
            wait = max(1, round(self.demand.deltas.get(exchange, data_type) + 0.5))
            return _retry(Ask(Outcome.ASKED, wait), "warming",
                          "the value was asked for and is on its way", key)  # fmt: skip
        metrics.DEMAND_WAITS.labels(exchange, data_type, "value").inc()
        seconds = time.perf_counter() - started
        await self.demand.done(exchange, data_type, symbol, ask.token, seconds)
        return hit

    async def _wait(self, key: str, newer_than: int, deadline: float) -> HitLike | None:
        """Read ``key`` until a copy with ``as_of > newer_than`` is there or ``deadline``
        (perf_counter) passes; each round sleeps until the bus announces a write of it or
        ``poll_s`` passes."""
        poll_s = self.demand.config.poll_s
        while True:
            woken = self._register(key, newer_than + 1)
            try:
                hit = await self.cache.get(key)
                if hit is not None and hit.as_of > newer_than:
                    return hit  # type: ignore[no-any-return]
                left = deadline - time.perf_counter()
                if left <= 0:
                    return None
                await _until(woken, min(left, poll_s))
            finally:
                if woken is not None and self.waiters is not None:
                    self.waiters.discard(key, woken)

    def _register(self, key: str, floor: int) -> asyncio.Future[int] | None:
        return None if self.waiters is None else self.waiters.register(key, floor)

    # ---- a hit: XFetch --------------------------------------------------------------

    def seen(self, key: str, hit: HitLike) -> None:
        """Called on every hit: refresh early (in the background) when XFetch fires."""
        # the deepest tier's freshness (a copy from L2 does not carry it: it expires first,
        # and the reads after it come from L3, with it)
        fresh_until = getattr(hit, "fresh_until", 0)
        if not fresh_until or key in self._refreshing:
            return
        target = self.target(key)
        if target is None:
            return
        if not self.demand.early_refresh_due(target[0], target[1], fresh_until / 1000, time.time()):
            return
        self._refreshing.add(key)
        self._spawn(self._refresh(key, target, hit.as_of))

    async def _refresh(self, key: str, target: Target, as_of: int) -> None:
        exchange, data_type, symbol = target
        try:
            started = time.perf_counter()
            ask = await self.demand.ask(exchange, data_type, symbol, early=True)
            if ask.outcome is not Outcome.ASKED:
                return
            hit = await self._wait(key, as_of, started + self.demand.config.deadline_s)
            seconds = time.perf_counter() - started
            if hit is not None:
                await self.demand.done(exchange, data_type, symbol, ask.token, seconds)
        except Exception:  # a background refresh must never take the reader down
            log.exception("early_refresh_failed", key=key)
        finally:
            self._refreshing.discard(key)

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


async def _until(fut: asyncio.Future[int] | None, timeout_s: float) -> None:
    if fut is None or fut.done():
        await asyncio.sleep(timeout_s if fut is None else 0)
        return
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout_s):
            await asyncio.shield(fut)


def _retry(ask: Ask, kind: str, detail: str, key: str) -> Answer:
    seconds = max(1, ask.retry_after_s)
    answer = error(503, kind, f"{detail}; retry after {seconds} s", key=key)
    answer.headers.append(("retry-after", str(seconds)))
    return answer
