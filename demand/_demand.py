"""``Demand``: what a reader does with a key the fleet can load but nobody has warmed.

``ask`` makes at most one demand job per (exchange, data type, symbol) per lease across the
whole fleet: a symbol the exchange does not list is ``unlisted`` (no job), a lease somebody
else holds is ``deduplicated`` (their job will write the value), a job over the exchange's
budget is ``refused`` (Retry-After), and only then is the job published (``asked``).
``done`` releases the lease and feeds XFetch's delta once the value is readable.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import structlog

from demand import _metrics as metrics
from demand._config import DemandConfig, DemandUnavailable
from demand._fleet import FleetState
from demand._jobs import JobPublisher, demand_job
from demand._xfetch import Deltas, EarlyRefresh

log = structlog.get_logger(__name__)


class Outcome(StrEnum):
    ASKED = "asked"
    DEDUPLICATED = "deduplicated"
    REFUSED = "refused"
    UNLISTED = "unlisted"
    UNAVAILABLE = "unavailable"


@dataclass(frozen=True, slots=True)
class Ask:
    outcome: Outcome
    retry_after_s: int = 0  # refused / unavailable: when to come back (whole seconds, >= 1)
    token: str | None = None  # asked: the lease this caller holds


class Demand:
    def __init__(
        self,
        fleet: FleetState,
        publisher: JobPublisher,
        config: DemandConfig | None = None,
        *,
        draw: Callable[[], float] = random.random,
    ) -> None:
        self.fleet, self.publisher = fleet, publisher
        self.config = config or DemandConfig()
        self.deltas = Deltas(self.config.default_delta_s)
        self.early = EarlyRefresh(self.deltas, self.config.beta, draw)
        self._unavailable_logged = False

    @classmethod
    def connect(
        cls,
        *,
        redis_url: str,
        kafka_servers: Iterable[str],
        namespace: str,
        key_prefix: str,
        kafka_options: Mapping[str, Any] | None = None,
        config: DemandConfig | None = None,
    ) -> Demand:
        """Nothing is contacted until the first ask (Redis and Kafka connect lazily)."""
        config = config or DemandConfig()
        fleet = FleetState.from_url(redis_url, key_prefix, markets_cache_s=config.markets_cache_s)
        return cls(fleet, JobPublisher(kafka_servers, namespace, kafka_options), config)

    async def close(self) -> None:
        await self.publisher.close()
        await self.fleet.close()

    async def ask(self, exchange: str, data_type: str, symbol: str, *, early: bool = False) -> Ask:
        counter = metrics.EARLY_REFRESHES if early else metrics.DEMAND_JOBS
        ask = await self._ask(exchange, data_type, symbol)
        counter.labels(exchange, data_type, ask.outcome).inc()
        return ask

    async def _ask(self, exchange: str, data_type: str, symbol: str) -> Ask:
        cfg, token = self.config, None
        try:
            if symbol not in await self.fleet.listed(exchange):
                return Ask(Outcome.UNLISTED)
            token = await self.fleet.lease(exchange, data_type, symbol, cfg.lease_ms)
            if token is None:
                return Ask(Outcome.DEDUPLICATED)
            rate = await self.fleet.requests_per_s(exchange) or cfg.default_requests_per_s
            grant = await self.fleet.admit(exchange, rate)
            if not grant.granted:
                await self.fleet.release(exchange, data_type, symbol, token)
                return Ask(Outcome.REFUSED, max(1, math.ceil(grant.wait_s)))
            job = demand_job(exchange, data_type, [symbol], deadline_s=cfg.deadline_s)
            await self.publisher.publish(job)
        except DemandUnavailable as exc:
            if token is not None:
                await self._release_quietly(exchange, data_type, symbol, token)
            if not self._unavailable_logged:  # once per episode: a flood must not flood the log
                log.warning("demand_unavailable", exchange=exchange, error=str(exc)[:200])
                self._unavailable_logged = True
            return Ask(Outcome.UNAVAILABLE, 1)
        self._unavailable_logged = False
        return Ask(Outcome.ASKED, token=token)

    async def done(
        self, exchange: str, data_type: str, symbol: str, token: str | None, seconds: float
    ) -> None:
        """The demanded value is readable ``seconds`` after the demand: measure, release."""
        metrics.DEMAND_SECONDS.labels(exchange, data_type).observe(seconds)
        self.deltas.observe(exchange, data_type, seconds)
        if token is not None:
            await self._release_quietly(exchange, data_type, symbol, token)

    async def _release_quietly(
        self, exchange: str, data_type: str, symbol: str, token: str
    ) -> None:
        try:
            await self.fleet.release(exchange, data_type, symbol, token)
        except DemandUnavailable:
            pass  # the lease expires by itself within lease_ms

    def early_refresh_due(
        self, exchange: str, data_type: str, fresh_until_s: float, now_s: float
    ) -> bool:
        return self.early.due(exchange, data_type, fresh_until_s, now_s)
