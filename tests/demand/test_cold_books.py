"""Cold book and candles reads through the demand path, end to end on the real stack with the
REAL agents: the simulator, an in-process ccxt poller with the fleet budget, a `warmfleet
worker` process (the Faust agents that cache book tops and candle series, issue 15), real
Kafka, Redis and Memcached, and two in-process HTTP readers.

A miss on ``/v2/books/...`` or ``/v2/candles/...?timeframe=1m`` becomes one demand job; the
poller asks the simulator, the agents write the tiers and announce the key on the bus, and
the reader answers 200 with the route's envelope within its deadline (docs/demand.md). The
worker is started once for the module (its group join is the slow part); every test reads
symbols of its own, so each read is cold."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer
from prometheus_client import REGISTRY

from demand import Demand, DemandConfig, FleetState
from demand import _names as demand_names
from readers import create_app, running_reader
from readers._demand import ReaderDemand
from sim import RunningSimulator, running_simulator
from tests import conftest as session
from tests.conftest import StackURLs
from tests.demand.conftest import jobs_on, sim_requests, wait_listed
from tests.workers.agents.conftest import Worker
from tests.workers.pollers.conftest import running_service
from tiers import MultiTierCache
from topics import MARKET_BOOKS, MARKET_OHLCV, key_for, symbol_key
from topics.kafka import ensure_topics
from workers.pollers import PollerService
from workers.pollers._budgeted import OriginBudget
from workers.pollers._exchange import PollerConfig
from workers.settings import Settings

pytestmark = [
    pytest.mark.integration,
    pytest.mark.asyncio(loop_scope="session"),
    pytest.mark.timeout(90),
]

MINUTE_MS = 60_000
#: the poller as `warmfleet poller` runs it (depth 10, 60 candles of 1m), a shorter timeout
POLLER = PollerConfig(timeout_ms=5_000)
#: the reader's deadline for a demanded value (docs/demand.md, WARMFLEET_DEMAND_DEADLINE_S)
DEADLINE_S = 2.0


@dataclass
class Fleet:
    readers: list[str]  # base URLs of two readers, each with its own cache and demand link
    sim: RunningSimulator
    namespace: str
    prefix: str
    kafka: str
    redis: aioredis.Redis
    worker: Worker
    symbols: list[str]  # listed on the simulator's binance, sorted
    stack: StackURLs

    def cold(self, n: int, taken: set[str]) -> list[str]:
        """``n`` listed symbols no test of the module has read yet."""
        fresh = [s for s in self.symbols if s not in taken][:n]
        assert len(fresh) == n, "the simulator lists too few symbols for this module"
        taken.update(fresh)
        return fresh


def now_ms() -> int:
    return int(time.time() * 1000)


async def get(http: aiohttp.ClientSession, url: str) -> tuple[int, Any, float]:
    """(status, body, seconds) of one GET; a 200's ETag is put in the body as ``etag``."""
    started = time.perf_counter()
    async with http.get(url) as resp:
        body = await resp.json()
        if resp.status == 200:
            body["etag"] = resp.headers.get("ETag")
        return resp.status, body, time.perf_counter() - started


def check_envelope(body: dict[str, Any], key: str) -> None:
    """The route's usual warm answer (docs/reader.md), not a demand-specific shape."""
    assert set(body) == {"key", "value", "as_of", "age_ms", "tier", "stale", "etag"}, body
    assert body["key"] == key
    assert body["stale"] is False
    assert body["tier"] in ("memory", "memcached", "redis")
    assert body["etag"] == f'"{body["as_of"]:x}"'


async def wait_for_worker(fleet_redis: aioredis.Redis, producer: AIOKafkaProducer,
                          namespace: str, prefix: str, worker: Worker) -> None:  # fmt: skip
    """Block until the worker has joined its group and caches books AND candles: a sentinel
    record of each (a symbol the simulator does not list, so no test reads it) must reach
    Redis. Otherwise the first cold read would time out on the worker's start, not on the
    demand path."""
    symbol = "WARMUP/USDT"
    t = now_ms() - 5_000
    book = {
        "exchange": "binance", "symbol": symbol, "bids": [[10.0, 1.0]], "asks": [[10.5, 1.0]],
        "as_of_ms": t, "received_ms": t, "__faust": {"ns": "topics.records.BookTop"},
    }  # fmt: skip
    opened = (t // MINUTE_MS) * MINUTE_MS
    candles = {
        "exchange": "binance", "symbol": symbol, "timeframe": "1m",
        "rows": [[opened, 10.0, 11.0, 9.0, 10.5, 3.0]], "as_of_ms": opened, "received_ms": t,
        "__faust": {"ns": "topics.records.Candles"},
    }  # fmt: skip
    msg_key = symbol_key("binance", symbol).encode()
    await producer.send_and_wait(MARKET_BOOKS.named(namespace), orjson.dumps(book), key=msg_key)
    await producer.send_and_wait(MARKET_OHLCV.named(namespace), orjson.dumps(candles),
                                 key=msg_key)  # fmt: skip
    keys = (
        key_for("books", "binance", symbol, prefix=prefix),
        key_for("candles", "binance", symbol, "1m", prefix=prefix),
    )
    deadline = time.monotonic() + 45
    while time.monotonic() < deadline:
        if worker.proc.poll() is not None:
            raise AssertionError(f"the worker exited ({worker.proc.returncode}); see {worker.log}")
        if all([await fleet_redis.exists(k) for k in keys]):
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"the worker cached no book/candles within 45 s; see {worker.log}")


@contextlib.asynccontextmanager
async def poller(stack: StackURLs, namespace: str, sim: RunningSimulator) -> AsyncIterator[None]:
    prefix = namespace.rstrip(".")
    settings = Settings(
        kafka_servers=(stack.kafka_bootstrap,), namespace=namespace, redis_url=stack.redis_url,
        key_prefix=prefix, exchange_urls={"binance": sim.url},
    )  # fmt: skip
    budget = OriginBudget(FleetState.from_url(stack.redis_url, prefix), {"binance": 10.0})
    service = PollerService(settings, config=POLLER, offset_reset="earliest", budget=budget,
                            jobs_per_exchange=8)  # fmt: skip
    async with running_service(service):
        yield


@contextlib.asynccontextmanager
async def reader(
    stack: StackURLs, namespace: str, config: DemandConfig | None = None, *, l2: bool = True
) -> AsyncIterator[str]:
    """An HTTP reader as `warmfleet reader` builds one: L1/L2/L3 (``l2=False``: L1/L3), the
    default bus channel (the one the worker announces its writes on), its own demand link."""
    prefix = namespace.rstrip(".")
    shared = (stack.memcached_url, stack.redis_url) if l2 else (stack.redis_url,)
    cache = MultiTierCache.from_urls("memory://?max_entries=5000", *shared)
    assert await cache.start()  # subscribed to the bus before any read
    link = Demand.connect(
        redis_url=stack.redis_url, kafka_servers=[stack.kafka_bootstrap], namespace=namespace,
        key_prefix=prefix, config=config,
    )  # fmt: skip
    assert link.config.deadline_s == DEADLINE_S
    demand = ReaderDemand(cache, link, key_prefix=prefix)
    try:
        async with running_reader(create_app(cache, key_prefix=prefix, demand=demand)) as url:
            yield url
    finally:
        await demand.close()
        await cache.close()


@pytest.fixture(scope="module")
async def cold_fleet(stack_urls: StackURLs, tmp_path_factory: Any) -> AsyncIterator[Fleet]:
    namespace = f"t{uuid.uuid4().hex[:10]}."
    session._NAMESPACES.append(namespace)  # its topics are dropped with the session's
    prefix = namespace.rstrip(".")
    await ensure_topics(stack_urls.kafka_bootstrap, namespace)
    env = {k: v for k, v in os.environ.items() if not k.startswith("WARMFLEET_")}
    env.update(
        WARMFLEET_NAMESPACE=namespace, WARMFLEET_KEY_PREFIX=prefix,
        WARMFLEET_KAFKA_URL=stack_urls.kafka_url, WARMFLEET_REDIS_URL=stack_urls.redis_url,
        WARMFLEET_MEMCACHED_URL=stack_urls.memcached_url, WARMFLEET_LOG_FORMAT="json",
    )  # fmt: skip
    logs = Path(os.environ.get("AGENTS_TEST_LOGS", tmp_path_factory.mktemp("coldbook")))
    worker = Worker(env, logs / f"{namespace}worker.log")
    redis = aioredis.from_url(stack_urls.redis_url)
    producer = AIOKafkaProducer(bootstrap_servers=stack_urls.kafka_bootstrap, acks="all")
    await producer.start()
    try:
        async with (
            running_simulator(seed=11, symbols=40) as sim,
            poller(stack_urls, namespace, sim),
            reader(stack_urls, namespace) as first,
            reader(stack_urls, namespace) as second,
        ):
            await wait_listed(redis, prefix)
            await wait_for_worker(redis, producer, namespace, prefix, worker)
            listed = await redis.smembers(demand_names.markets(prefix, "binance"))
            symbols = sorted(s.decode() for s in listed)
            yield Fleet([first, second], sim, namespace, prefix, stack_urls.kafka_bootstrap,
                        redis, worker, symbols, stack_urls)  # fmt: skip
    finally:
        await producer.stop()
        await redis.aclose()
        try:
            worker.stop(signal.SIGTERM, wait_s=30)
        except subprocess.TimeoutExpired:
            worker.stop(signal.SIGKILL)


TAKEN: set[str] = set()


def path_of(symbol: str) -> str:
    return "binance/" + symbol.replace("/", "-")


#: the simulator's endpoint a poll of each data type asks
ENDPOINT = {"books": "depth", "candles": "klines"}


async def origin_requests(f: Fleet, data_type: str) -> float:
    return await sim_requests(f.sim, ENDPOINT[data_type])


async def assert_one_ask(f: Fleet, symbol: str, data_type: str, before: float) -> None:
    """Exactly one origin request since ``before``, from exactly one demand job."""
    assert await origin_requests(f, data_type) - before == 1
    jobs = [j for j in await jobs_on(f.kafka, f.namespace, 1.0) if j["symbols"] == [symbol]]
    assert [(j["priority"], j["data_type"]) for j in jobs] == [("demand", data_type)]


async def test_a_cold_book_read_answers_200_with_the_agents_book(cold_fleet: Fleet) -> None:
    f = cold_fleet
    (symbol,) = f.cold(1, TAKEN)
    key = key_for("books", "binance", symbol, prefix=f.prefix)
    assert await f.redis.get(key) is None  # cold in every tier the agents write
    before = await origin_requests(f, "books")
    async with aiohttp.ClientSession() as http:
        status, body, seconds = await get(http, f"{f.readers[0]}/v2/books/{path_of(symbol)}")
    assert status == 200, body
    assert seconds < DEADLINE_S + 0.5  # the demand wait ended on the value, not the deadline
    check_envelope(body, key)
    value = body["value"]
    assert set(value) == {"exchange", "symbol", "bids", "asks", "best_bid", "best_ask", "depth"}
    assert (value["exchange"], value["symbol"]) == ("binance", symbol)
    bids, asks = value["bids"], value["asks"]
    assert 1 <= value["depth"] <= POLLER.book_depth
    assert value["depth"] == max(len(bids), len(asks))
    assert [b[0] for b in bids] == sorted((b[0] for b in bids), reverse=True)
    assert [a[0] for a in asks] == sorted(a[0] for a in asks)
    assert (value["best_bid"], value["best_ask"]) == (bids[0][0], asks[0][0])
    assert 0 < value["best_bid"] < value["best_ask"]
    # it is the agents' value (L3 holds the same), from exactly one origin request
    stored = orjson.loads(await f.redis.get(key) or b"null")
    assert stored["v"] == value and stored["a"] == body["as_of"]
    await assert_one_ask(f, symbol, "books", before)


async def test_a_cold_candles_read_answers_200_with_the_latest_rows(cold_fleet: Fleet) -> None:
    f = cold_fleet
    (symbol,) = f.cold(1, TAKEN)
    key = key_for("candles", "binance", symbol, "1m", prefix=f.prefix)
    assert await f.redis.get(key) is None
    before = await origin_requests(f, "candles")
    limit = 20  # fewer than the poller fetches (60): the reader answers the latest 20
    url = f"{f.readers[1]}/v2/candles/{path_of(symbol)}?timeframe=1m&limit={limit}"
    async with aiohttp.ClientSession() as http:
        status, body, seconds = await get(http, url)
    assert status == 200, body
    assert seconds < DEADLINE_S + 0.5
    check_envelope(body, key)
    value = body["value"]
    assert (value["exchange"], value["symbol"], value["timeframe"]) == ("binance", symbol, "1m")
    rows = value["rows"]
    assert len(rows) == limit and all(len(r) == 6 for r in rows)
    opens = [int(r[0]) for r in rows]
    assert opens == sorted(set(opens))  # oldest first, no repeats
    assert all(b - a == MINUTE_MS for a, b in itertools.pairwise(opens))
    assert all(r[3] <= min(r[1], r[4]) <= max(r[1], r[4]) <= r[2] for r in rows)  # l<=o,c<=h
    stored = orjson.loads(await f.redis.get(key) or b"null")
    assert len(stored["v"]["rows"]) == POLLER.candles_limit  # the agents keep the whole poll
    assert stored["v"]["rows"][-limit:] == rows  # ... and the reader answers its tail
    assert body["as_of"] == stored["a"] == opens[-1]  # a series is as of its last open
    await assert_one_ask(f, symbol, "candles", before)


async def test_concurrent_cold_reads_of_one_book_make_one_origin_request(
    cold_fleet: Fleet,
) -> None:
    f = cold_fleet
    (symbol,) = f.cold(1, TAKEN)
    before = await origin_requests(f, "books")
    n = 40  # over two readers: the per-process single flight, then the fleet-wide lease
    async with aiohttp.ClientSession() as http:
        answers = await asyncio.gather(
            *(get(http, f"{f.readers[i % 2]}/v2/books/{path_of(symbol)}") for i in range(n))
        )
    assert [status for status, _, _ in answers] == [200] * n, [b for _, b, _ in answers]
    assert len({orjson.dumps(b["value"]) for _, b, _ in answers}) == 1  # one book for all
    assert max(seconds for _, _, seconds in answers) < DEADLINE_S + 0.5
    await assert_one_ask(f, symbol, "books", before)


async def test_concurrent_cold_candles_reads_each_get_their_own_limit(cold_fleet: Fleet) -> None:
    # one key, one ask and one wait shared by every read of it (whatever its limit), and
    # each answer still cut to its own limit, as a warm read is
    f = cold_fleet
    (symbol,) = f.cold(1, TAKEN)
    before = await origin_requests(f, "candles")
    limits = [1, 5, 20, 60, 500] * 4
    base = f"/v2/candles/{path_of(symbol)}?timeframe=1m&limit="
    async with aiohttp.ClientSession() as http:
        answers = await asyncio.gather(
            *(get(http, f"{f.readers[i % 2]}{base}{n}") for i, n in enumerate(limits))
        )
    assert [status for status, _, _ in answers] == [200] * len(limits)
    got = [len(body["value"]["rows"]) for _, body, _ in answers]
    assert got == [min(n, POLLER.candles_limit) for n in limits]
    series = max((body["value"]["rows"] for _, body, _ in answers), key=len)
    assert all(body["value"]["rows"] == series[-len(body["value"]["rows"]) :]
               for _, body, _ in answers)  # fmt: skip
    assert await origin_requests(f, "candles") - before == 1


def early_refreshes() -> float:
    # the readers of this module run in the test's process: their registry is this one
    return sum(
        sample.value
        for metric in REGISTRY.collect()
        if metric.name == "warmfleet_demand_early_refreshes"
        for sample in metric.samples
        if sample.name.endswith("_total")
        and (sample.labels.get("data_type"), sample.labels.get("outcome")) == ("candles", "asked")
    )


async def test_a_warm_candles_hit_is_refreshed_early_as_a_ticker_hit_is(cold_fleet: Fleet) -> None:
    # XFetch applies on every hit of a loadable key (docs/demand.md), candles reads too
    # (they always carry a query). A beta so large that it fires on any hit of a copy not
    # yet expired makes that deterministic: the hit after the cold read must ask again. No
    # L2 in this reader: an L2 copy carries no fresh-until and never triggers XFetch.
    f = cold_fleet
    (symbol,) = f.cold(1, TAKEN)
    url = f"/v2/candles/{path_of(symbol)}?timeframe=1m&limit=5"
    async with (
        reader(f.stack, f.namespace, DemandConfig(beta=1e9), l2=False) as eager,
        aiohttp.ClientSession() as http,
    ):
        before, refreshed = await sim_requests(f.sim, "klines"), early_refreshes()
        status, body, _ = await get(http, eager + url)  # cold: the demand job
        assert status == 200, body
        assert await sim_requests(f.sim, "klines") - before == 1
        status, body, _ = await get(http, eager + url)  # a hit: XFetch fires, in the background
        assert status == 200, body
        for _ in range(50):
            if await sim_requests(f.sim, "klines") - before == 2:
                break
            await asyncio.sleep(0.1)
        assert await sim_requests(f.sim, "klines") - before == 2
        assert early_refreshes() - refreshed == 1
