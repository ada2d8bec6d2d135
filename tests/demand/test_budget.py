"""The exchange's budget is law: 1,000 distinct cold keys at once never push the simulator
past ``requests_per_s`` (its own request counter, sampled), and the excess is refused with
503 ``Retry-After``."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import pytest

from demand import FleetState
from demand import _metrics as metrics
from readers import openapi_document
from tests.demand.conftest import fleet, sim_requests

pytestmark = pytest.mark.integration

RATE = 5.0  # requests/s the fleet may send the (simulated) exchange
BURST = RATE  # the bucket holds one second's worth


def _refused() -> float:
    return float(metrics.DEMAND_JOBS.labels("binance", "tickers", "refused")._value.get())


def _asked() -> float:
    return float(metrics.DEMAND_JOBS.labels("binance", "tickers", "asked")._value.get())


async def test_a_thousand_cold_keys_stay_within_the_budget(stack_urls: Any, namespace: str) -> None:
    async with fleet(stack_urls, namespace, symbols=1000, rate=RATE) as f:
        symbols = sorted(await f.demand.demand.fleet.listed("binance"))[:1000]
        assert len(symbols) == 1000
        samples: list[tuple[float, float]] = []
        done = asyncio.Event()

        async def sample() -> None:
            while not done.is_set():
                samples.append((time.monotonic(), await sim_requests(f.sim, "ticker")))
                await asyncio.sleep(0.1)

        sampler = asyncio.create_task(sample())
        refused_before, asked_before = _refused(), _asked()
        connector = aiohttp.TCPConnector(limit=500)
        async with aiohttp.ClientSession(connector=connector) as http:

            async def read(symbol: str) -> tuple[int, str | None]:
                path = symbol.replace("/", "-")
                async with http.get(f"{f.url}/v2/tickers/binance/{path}") as resp:
                    await resp.read()
                    return resp.status, resp.headers.get("Retry-After")

            answers = await asyncio.gather(*(read(s) for s in symbols))
        await asyncio.sleep(2.5)  # anything still on its way reaches the simulator now
        done.set()
        await sampler
        statuses = [status for status, _ in answers]
        assert set(statuses) <= {200, 503}, set(statuses)
        ok, refused = statuses.count(200), statuses.count(503)
        print(f"200: {ok}, 503: {refused}, origin requests: {samples[-1][1] - samples[0][1]}")
        assert ok >= 1 and refused >= 900, (ok, refused)
        assert all(int(after) >= 1 for status, after in answers if status == 503)
        # the answer the reader gives is the one its OpenAPI document declares
        declared = openapi_document()["paths"]["/v2/tickers/{exchange}/{symbol}"]["get"]
        assert declared["responses"]["503"]["headers"]["Retry-After"]["required"] is True
        assert _refused() - refused_before >= 1
        # every window of the run: at most a full bucket plus the refill rate
        for i, (t1, c1) in enumerate(samples):
            for t2, c2 in samples[i + 1 :]:
                assert c2 - c1 <= BURST + RATE * (t2 - t1) + 1, (t2 - t1, c2 - c1)
        # a refused read costs the exchange nothing: at most one request per admitted job
        # (fewer when the poller coalesced waiting ticker jobs into one request)
        assert samples[-1][1] - samples[0][1] <= _asked() - asked_before


async def test_the_bucket_reserves_ahead_for_demand_and_refuses_past_the_deadline(
    stack_urls: Any, namespace: str
) -> None:
    fleet_state = FleetState.from_url(stack_urls.redis_url, namespace.rstrip("."))
    try:
        grants = [await fleet_state.take_origin("binance", 2.0, max_wait_s=0.0) for _ in range(3)]
        assert [g.granted for g in grants] == [True, True, False]  # a burst of 2, then none
        ahead = await fleet_state.take_origin("binance", 2.0, max_wait_s=5.0)
        assert ahead.granted and 0 < ahead.wait_s <= 0.5  # reserved: go in <= half a second
        late = await fleet_state.take_origin("binance", 2.0, max_wait_s=0.1)
        assert not late.granted and late.wait_s > 0.5  # behind the reservation: refused
    finally:
        await fleet_state.close()


async def test_scheduled_jobs_take_the_same_budget(stack_urls: Any, namespace: str) -> None:
    """A scheduled books job for 12 symbols (12 origin requests) with a 4/s budget: the
    simulator sees them paced by the bucket, and the poller counts them as scheduled."""
    import orjson
    from aiokafka import AIOKafkaProducer

    from sim import running_simulator
    from tests.demand.conftest import poller
    from tests.workers.pollers.conftest import make_job
    from topics import WARM_JOBS
    from topics.kafka import ensure_topics

    await ensure_topics(stack_urls.kafka_bootstrap, namespace)
    before = float(metrics.ORIGIN_REQUESTS.labels("binance", "scheduled")._value.get())
    async with (
        running_simulator(seed=7, symbols=12) as sim,
        poller(stack_urls, namespace, sim, rate=4.0),
    ):
        await asyncio.sleep(1.5)  # the markets load took a token; the bucket refills
        job = make_job("binance", "books", [], deadline_s=30.0)  # [] = every listed market
        producer = AIOKafkaProducer(bootstrap_servers=stack_urls.kafka_bootstrap)
        await producer.start()
        try:
            await producer.send_and_wait(WARM_JOBS.named(namespace), job.dumps(), key=b"binance")
        finally:
            await producer.stop()
        samples: list[tuple[float, float]] = []
        started = time.monotonic()
        while time.monotonic() - started < 6.0:
            samples.append((time.monotonic(), await sim_requests(sim, "depth")))
            await asyncio.sleep(0.1)
    assert samples[-1][1] == 12, samples[-1]  # every listed market's book, in the end
    for i, (t1, c1) in enumerate(samples):
        for t2, c2 in samples[i + 1 :]:
            assert c2 - c1 <= 4 + 4.0 * (t2 - t1) + 1, (t2 - t1, c2 - c1)
    taken = float(metrics.ORIGIN_REQUESTS.labels("binance", "scheduled")._value.get()) - before
    assert taken >= 13  # 12 books + the markets load, each with its token
    assert orjson.loads(job.dumps())["priority"] == "scheduled"
