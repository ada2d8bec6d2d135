"""The exchange's budget, from the poller's side: every origin request takes a token from
the fleet-wide bucket in Redis (``demand.FleetState``) before it goes out, and the
listed markets the poller loads are shared with the readers through Redis.

Demand requests reserve their token ahead (the bucket tells them how long to wait, up to
their deadline), scheduled ones only take a token that is there now and otherwise sleep
and ask again — so a reader's request overtakes the schedule's backlog, and together they
never exceed ``requests_per_s``. With Redis unreachable the poller falls back to a local
bucket at the same rate (counted), so the budget still holds per poller.
"""

from __future__ import annotations

import asyncio
import contextvars
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import structlog

from demand import DEMAND, DemandUnavailable, FleetState, Grant
from demand import _metrics as metrics
from topics.records import WarmJob
from workers.pollers._exchange import ExchangePoller, PollResult

log = structlog.get_logger(__name__)
T = TypeVar("T")

_PRIORITY: contextvars.ContextVar[str] = contextvars.ContextVar(
    "warmfleet_job_priority", default="scheduled"
)


class _LocalBucket:
    """The fallback while Redis is away: the same bucket, this process only."""

    def __init__(self, rate: float) -> None:
        self.rate, self.burst = rate, max(1.0, rate)
        self.tokens, self.at = self.burst, time.monotonic()

    def take(self, max_wait_s: float) -> Grant:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        wait = max(0.0, (1.0 - self.tokens) / self.rate)
        if wait > max_wait_s:
            return Grant(False, wait)
        self.tokens -= 1.0
        return Grant(True, wait)


class OriginBudget:
    """requests/s per exchange (phases.toml ``requests_per_s``), enforced fleet-wide."""

    def __init__(
        self, fleet: FleetState, rates: Mapping[str, float], *, default_rate: float = 10.0
    ) -> None:
        self.fleet, self.rates, self.default_rate = fleet, dict(rates), default_rate
        self._local: dict[str, _LocalBucket] = {}
        self._fallback_logged = False
        for exchange, rate in self.rates.items():
            metrics.ORIGIN_BUDGET.labels(exchange).set(rate)

    def rate(self, exchange: str) -> float:
        return self.rates.get(exchange, self.default_rate)

    async def take(self, exchange: str, priority: str, deadline: float) -> None:
        """Return when this request may go out; ``TimeoutError`` when no token comes before
        ``deadline`` (wall seconds) — the poller maps it to the job's deadline."""
        rate, demand = self.rate(exchange), priority == DEMAND
        while True:
            left = deadline - time.time()
            grant = await self._take(exchange, rate, left if demand else 0.0)
            if grant.granted:
                break
            if grant.wait_s >= left:
                metrics.ORIGIN_DENIED.labels(exchange, priority).inc()
                raise TimeoutError(f"{exchange}: no budget token before the job's deadline")
            # scheduled: wait for the refill and ask again (a demand reservation may win it)
            await asyncio.sleep(grant.wait_s * (1.0 + random.random() * 0.2))
        if grant.wait_s > 0:
            await asyncio.sleep(grant.wait_s)
        metrics.ORIGIN_REQUESTS.labels(exchange, priority).inc()

    async def _take(self, exchange: str, rate: float, max_wait_s: float) -> Grant:
        try:
            grant = await self.fleet.take_origin(exchange, rate, max_wait_s=max(0.0, max_wait_s))
        except DemandUnavailable as exc:
            if not self._fallback_logged:
                log.warning("budget_fallback_local", exchange=exchange, error=str(exc)[:200])
                self._fallback_logged = True
            metrics.BUDGET_FALLBACKS.labels(exchange).inc()
            local = self._local.get(exchange)
            if local is None:
                local = self._local[exchange] = _LocalBucket(rate)
            return local.take(max(0.0, max_wait_s))
        self._fallback_logged = False
        return grant

    async def close(self) -> None:
        await self.fleet.close()


class BudgetedPoller(ExchangePoller):
    """An ``ExchangePoller`` whose every origin request (markets, tickers, books, candles;
    each retry too) first takes a budget token, and which publishes its listed markets."""

    def __init__(self, exchange_id: str, *, budget: OriginBudget, **options: Any) -> None:
        super().__init__(exchange_id, **options)
        self.budget = budget
        self._published: set[asyncio.Task[None]] = set()

    async def poll(self, job: WarmJob) -> PollResult:
        token = _PRIORITY.set(job.priority)
        try:
            return await super().poll(job)
        finally:
            _PRIORITY.reset(token)

    async def _call(
        self, endpoint: str, deadline: float, fn: Callable[..., Awaitable[T]], *args: Any
    ) -> T:
        budget, exchange, priority = self.budget, self.exchange, _PRIORITY.get()

        async def metered(*call_args: Any) -> T:
            await budget.take(exchange, priority, deadline)
            return await fn(*call_args)

        return await super()._call(endpoint, deadline, metered, *args)

    async def markets(self, deadline: float) -> dict[str, Any]:
        before = self._markets_at
        markets = await super().markets(deadline)
        if self._markets_at != before:
            task = asyncio.create_task(self.publish_markets(markets))
            self._published.add(task)
            task.add_done_callback(self._published.discard)
        return markets

    async def publish_markets(self, markets: Mapping[str, Any]) -> None:
        listed = [s for s, m in markets.items() if m.get("spot") and m.get("active") is not False]
        try:
            count = await self.budget.fleet.publish_markets(
                self.exchange, listed, self.budget.rate(self.exchange)
            )
        except DemandUnavailable as exc:
            log.warning("markets_not_shared", exchange=self.exchange, error=str(exc)[:200])
            return
        log.info("markets_shared", exchange=self.exchange, listed=count)
