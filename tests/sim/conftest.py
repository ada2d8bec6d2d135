"""Simulator fixtures: a simulator on a free loopback port, and real ccxt clients for it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import ccxt.async_support as ccxt_async
import pytest_asyncio

from sim import RunningSimulator, running_simulator
from workers.pollers import PollerConfig, client_options

#: a small market keeps start-up fast; the default (60) is exercised by the model tests
SYMBOLS = 12
VENUES = ("binance", "okx")


class SteppedClock:
    """A clock tests move by hand, so simulated time is exactly what they say."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest_asyncio.fixture(loop_scope="function")
async def sim() -> AsyncIterator[RunningSimulator]:
    async with running_simulator(seed=7, symbols=SYMBOLS) as running:
        yield running


@pytest_asyncio.fixture(loop_scope="function")
async def ccxt_client(
    sim: RunningSimulator,
) -> AsyncIterator[Callable[..., Any]]:
    """``ccxt_client("binance", timeout_ms=...)`` -> a real ccxt client pointed at ``sim``."""
    made: list[Any] = []

    def make(exchange: str, timeout_ms: int = 2_000) -> Any:
        config = PollerConfig(rate_limit_ms=1, timeout_ms=timeout_ms)
        client = getattr(ccxt_async, exchange)(client_options(exchange, sim.url, config))
        made.append(client)
        return client

    yield make
    for client in made:
        await client.close()
