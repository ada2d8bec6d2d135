"""Fencing on the real Kafka: a poller drops (and counts) the warm jobs of a deposed clock,
the ones whose fencing token is lower than the highest it has seen."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from sim import RunningSimulator
from tests.conftest import StackURLs
from tests.workers.pollers.conftest import make_job
from tests.workers.pollers.test_poller_kafka import consume, job_message, poller_service, produce
from topics import MARKET_TICKERS, WARM_JOBS
from topics.records import WarmJob
from workers.pollers import _metrics as metrics
from workers.pollers._service import Fence, MalformedJob, parse_job


def test_a_job_without_a_token_still_decodes_and_a_bad_token_is_malformed() -> None:
    old = orjson.loads(make_job("binance", "tickers", []).dumps())
    del old["fencing_token"]  # a clock from before fencing
    assert parse_job(orjson.dumps(old)).fencing_token == 0
    for bad in (-1, "7", 1.5, True):
        with pytest.raises(MalformedJob, match="fencing_token"):
            parse_job(orjson.dumps({**old, "fencing_token": bad}))


def test_the_fence_keeps_the_highest_token_and_forgets_it_after_its_memory() -> None:
    now = [0.0]
    fence = Fence(memory_s=100, clock=lambda: now[0])
    assert fence.admits(0) and fence.admits(3) and fence.admits(3)
    assert not fence.admits(2) and not fence.admits(0)
    now[0] = 90
    assert fence.admits(4) and not fence.admits(3)
    now[0] = 150  # 4 seen 60 s ago: still remembered
    assert not fence.admits(1)
    now[0] = 300  # no job with 4 for 210 s: no living clock holds it (the group was reset)
    assert fence.admits(1) and fence.highest == 1 and not fence.admits(0)


@pytest.mark.integration
async def test_jobs_from_a_deposed_clock_are_dropped_and_counted(
    stack_urls: StackURLs, namespace: str, sim: RunningSimulator
) -> None:
    bootstrap = stack_urls.kafka_bootstrap
    fenced = metrics.JOBS_DROPPED.labels("binance", "fenced")
    before = fenced._value.get()

    def job(symbol: str, token: int) -> tuple[bytes, bytes]:
        base = make_job("binance", "tickers", [symbol], job_id=f"{symbol}-{token}")
        return job_message(WarmJob(**{**base.asdict(), "fencing_token": token}))

    async with poller_service(stack_urls, namespace, sim) as service:
        # the old leader (token 4), the new one (5), then the old one again: it woke up late
        await produce(
            bootstrap,
            WARM_JOBS.named(namespace),
            job("BTC/USDT", 4),
            job("ETH/USDT", 5),
            job("ETH/BTC", 4),
            job("BTC/USDT", 5),
        )
        async with asyncio.timeout(30):
            while service.jobs_seen < 4 or service._tasks:  # noqa: ASYNC110 (polling a counter)
                await asyncio.sleep(0.05)
        events = await consume(bootstrap, MARKET_TICKERS.named(namespace), 3, quiet_s=2)
    assert sorted(m.key for m in events) == [b"binance:BTC/USDT", b"binance:BTC/USDT",
                                             b"binance:ETH/USDT"]  # fmt: skip
    assert fenced._value.get() == before + 1  # ETH/BTC's job, token 4 after a 5
    assert service.fence.highest == 5
