"""`warmfleet worker` runs on uvloop unless told ``--loop aio`` (docs/benchmarks.md measures
why), and does its work on either."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer

from tests.workers.agents.conftest import (
    T0,
    Worker,
    analysis_key,
    cached,
    eventually,
    send_ticker,
    ticker,
)

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]


@pytest.mark.parametrize(("args", "loop"), [((), "uvloop"), (("--loop", "aio"), "asyncio")])
async def test_the_worker_runs_on_the_loop_it_is_given(
    start_worker: Callable[..., Worker],
    producer: AIOKafkaProducer,
    redis_client: aioredis.Redis,
    namespace: str,
    args: tuple[str, ...],
    loop: str,
) -> None:
    worker = start_worker(*args)

    async def started() -> list[dict[str, Any]]:
        return worker.log_events("symbol_stream_started")

    [event] = await eventually(started)
    assert event["loop"] == loop
    await send_ticker(producer, namespace, "binance", "LOOP/USDT",
                      ticker("binance", "LOOP/USDT", 101.5, T0))  # fmt: skip
    key = analysis_key(namespace, "tickers", "binance", "LOOP/USDT")

    async def written() -> dict[str, Any] | None:
        return await cached(redis_client, key)

    envelope = await eventually(written)
    assert envelope["v"]["last"] == 101.5
