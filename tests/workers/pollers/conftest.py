"""Poller fixtures: the simulator (shared with tests/sim) and fast-retrying pollers."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable

import pytest_asyncio

from sim import RunningSimulator
from tests.sim.conftest import SYMBOLS, VENUES, SteppedClock, ccxt_client, sim
from topics.records import WarmJob
from workers.pollers import ExchangePoller, PollerConfig, PollerService

__all__ = [
    "SYMBOLS",
    "VENUES",
    "SteppedClock",
    "ccxt_client",
    "make_job",
    "running_service",
    "sim",
]

FAST = PollerConfig(
    rate_limit_ms=1,
    timeout_ms=1_500,
    backoff_base_s=0.01,
    backoff_cap_s=0.05,
    breaker_threshold=3,
    breaker_cooldown_s=60,
    candles_limit=5,
    book_depth=5,
)


@contextlib.asynccontextmanager
async def running_service(service: PollerService) -> AsyncIterator[PollerService]:
    """A poller service started, running and ready for the block; stopped after it."""
    await service.start()
    stop = asyncio.Event()
    runner = asyncio.create_task(service.run(stop))
    try:
        await asyncio.wait_for(service.ready.wait(), 30)
        yield service
    finally:
        stop.set()
        await runner
        await service.stop()


def make_job(
    exchange: str, data_type: str, symbols: list[str], deadline_s: float = 20.0, job_id: str = "j"
) -> WarmJob:
    now = int(time.time() * 1000)
    return WarmJob(
        job_id=job_id,
        exchange=exchange,
        data_type=data_type,
        symbols=symbols,
        phase="market_hours",
        interval_s=15.0,
        issued_ms=now,
        deadline_ms=now + int(deadline_s * 1000),
    )


class SleepLog:
    """An injected ``sleep`` that records the waits the poller asked for (and yields)."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        import asyncio

        self.waits.append(seconds)
        await asyncio.sleep(0)


@pytest_asyncio.fixture(loop_scope="function")
async def poller_for(
    sim: RunningSimulator,
) -> AsyncIterator[Callable[..., ExchangePoller]]:
    """``poller_for("okx", sleep=SleepLog(), config=...)`` -> an ExchangePoller on ``sim``."""
    made: list[ExchangePoller] = []

    def make(exchange: str, config: PollerConfig = FAST, **kwargs: object) -> ExchangePoller:
        poller = ExchangePoller(exchange, url=sim.url, config=config, **kwargs)  # type: ignore[arg-type]
        made.append(poller)
        return poller

    yield make
    for poller in made:
        await poller.close()
