"""The analytics worker end to end: real Kafka, Redis, Memcached and worker processes."""

from __future__ import annotations

import asyncio
import base64
import math
import signal
import statistics
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer

from tests.workers.agents.conftest import (
    T0,
    analysis_key,
    assert_last_round,
    cached,
    dead_letters,
    eventually,
    feed_rounds,
    memcached_ttl,
    send_ticker,
    set_phase,
    ticker,
)
from topics import key_for

# the async fixtures live on the session loop (pyproject), so the tests do too
pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

OVERVIEWS_TOTAL = "warmfleet_agent_overviews_total"
SQRT_006 = math.sqrt(0.06)  # one return into a zero EWMA variance: sqrt((1 - 0.94) r^2)


async def observations(redis_client: aioredis.Redis, key: str) -> int:
    env = await cached(redis_client, key)
    return 0 if env is None else int(env["v"]["observations"])


async def test_tickers_reach_all_tiers_with_ttls_that_shrink_as_volatility_rises(
    start_worker: Any, producer: AIOKafkaProducer, namespace: str,
    redis_client: aioredis.Redis, memcached_addr: str,
) -> None:  # fmt: skip
    for i in range(15):
        calm = 100.0 if i % 2 else 100.01
        wild = 100.0 if i % 2 else 110.0
        await send_ticker(producer, namespace, "binance", "CALM/USDT",
                          ticker("binance", "CALM/USDT", calm, T0 + i))  # fmt: skip
        await send_ticker(producer, namespace, "binance", "WILD/USDT",
                          ticker("binance", "WILD/USDT", wild, T0 + i))  # fmt: skip
    await producer.flush()
    worker = start_worker()
    calm_key = analysis_key(namespace, "volatility", "binance", "CALM/USDT")
    wild_key = analysis_key(namespace, "volatility", "binance", "WILD/USDT")

    async def both_done() -> bool:
        return (await observations(redis_client, calm_key)) == 15 and (
            await observations(redis_client, wild_key)
        ) == 15

    await eventually(both_done)
    calm_env, wild_env = await cached(redis_client, calm_key), await cached(redis_client, wild_key)
    assert calm_env is not None and wild_env is not None
    assert calm_env["v"]["last"] == 100.01 and wild_env["v"]["last"] == 110.0
    assert calm_env["a"] == T0 + 14  # the envelope's as_of is the exchange time
    assert wild_env["v"]["volatility"] > 50 * calm_env["v"]["volatility"] > 0
    # L3: Redis PTTL; L2: memcached meta-get TTL; the wilder symbol expires sooner in both
    calm_l3, wild_l3 = await redis_client.pttl(calm_key), await redis_client.pttl(wild_key)
    assert 0 < wild_l3 < calm_l3
    calm_l2, wild_l2 = (
        memcached_ttl(memcached_addr, calm_key),
        memcached_ttl(memcached_addr, wild_key),
    )
    assert calm_l2 is not None and wild_l2 is not None and 0 < wild_l2 < calm_l2
    assert calm_l2 <= calm_l3 / 1000 + 1  # tier order: L2 never outlives L3
    for data_type in ("signals",):
        for symbol in ("CALM/USDT", "WILD/USDT"):
            key = analysis_key(namespace, data_type, "binance", symbol)
            assert (await cached(redis_client, key)) is not None
            assert memcached_ttl(memcached_addr, key) is not None
    # L1 lives inside the worker: its own count of what each tier accepted
    metrics = await asyncio.to_thread(worker.metrics)
    for tier in ("memory", "memcached", "redis"):
        line = next(
            ln for ln in metrics.splitlines()
            if ln.startswith(f'warmfleet_agent_tier_writes_total{{tier="{tier}"}}')
        )  # fmt: skip
        assert float(line.split()[-1]) >= 4  # 2 symbols x (volatility + signals)


async def test_overview_exactly_right_for_a_known_input(
    start_worker: Any, producer: AIOKafkaProducer, namespace: str, redis_client: aioredis.Redis
) -> None:
    await set_phase(producer, namespace, tickers=15.0, overview=1.0)
    rows = [  # exchange, symbol, first last, second last, change %, quote volume, bid, ask
        ("binance", "BTC/USDT", 100.0, 110.0, 5.0, 1000.0, 109.0, 111.0),
        ("binance", "ETH/USDT", 50.0, 49.0, -2.0, 500.0, 48.5, 49.5),
        ("binance", "ETH/BTC", 0.05, 0.05, 1.0, 7.0, None, None),
        ("okx", "SOL/USDC", 20.0, 21.0, -4.0, None, 20.9, 21.1),
    ]
    for exchange, symbol, first, second, change, qv, bid, ask in rows:
        for i, last in enumerate((first, second)):
            body = ticker(exchange, symbol, last, T0 + i, change_pct=change, quote_volume=qv,
                          bid=bid, ask=ask)  # fmt: skip
            await send_ticker(producer, namespace, exchange, symbol, body)
    # one ticker only: no return yet, no change known
    await send_ticker(producer, namespace, "okx", "NEW/USDT",
                      ticker("okx", "NEW/USDT", 3.0, T0 + 5, quote_volume=10.0))  # fmt: skip
    await producer.flush()
    start_worker()
    prefix = namespace.rstrip(".")

    async def overview_of(scope: str) -> dict[str, Any] | None:
        env = await cached(redis_client, key_for("overview", scope, prefix=prefix))
        if env is None or env["v"]["symbols"] != (5 if scope == "all" else 2):
            return None
        return dict(env["v"])

    everything = await eventually(lambda: overview_of("all"))
    okx = await eventually(lambda: overview_of("okx"))
    btc = {"exchange": "binance", "symbol": "BTC/USDT", "change_pct": 5.0, "last": 110.0}
    ethbtc = {"exchange": "binance", "symbol": "ETH/BTC", "change_pct": 1.0, "last": 0.05}
    sol = {"exchange": "okx", "symbol": "SOL/USDC", "change_pct": -4.0, "last": 21.0}
    eth = {"exchange": "binance", "symbol": "ETH/USDT", "change_pct": -2.0, "last": 49.0}
    spreads = sorted([2 / 110 * 10_000, 1 / 49 * 10_000, 0.2 / 21 * 10_000])
    vols = [SQRT_006 * math.log(1.1), SQRT_006 * abs(math.log(0.98)), 0.0,
            SQRT_006 * math.log(1.05)]  # fmt: skip
    expected = {
        "scope": "all", "symbols": 5, "advancers": 2, "decliners": 2, "unchanged": 1,
        "top_gainers": [btc, ethbtc], "top_losers": [sol, eth],
        "total_quote_volume": 1510.0,  # USD-quoted only: 1000 + 500 + 10
        "median_spread_bps": pytest.approx(spreads[1]),
        "volatility_index": pytest.approx(statistics.median(vols)),  # NEW/USDT: no return
        "as_of_ms": T0 + 5,
    }  # fmt: skip
    assert {k: everything[k] for k in expected} == expected
    assert (okx["advancers"], okx["decliners"], okx["unchanged"]) == (0, 1, 1)
    assert okx["total_quote_volume"] == 10.0 and okx["top_losers"] == [sol]
    assert okx["median_spread_bps"] == pytest.approx(0.2 / 21 * 10_000)
    assert okx["volatility_index"] == pytest.approx(SQRT_006 * math.log(1.05))


async def test_poison_messages_go_to_the_dead_letter_topic_and_later_events_process(
    start_worker: Any, producer: AIOKafkaProducer, namespace: str,
    redis_client: aioredis.Redis, kafka_bootstrap: str,
) -> None:  # fmt: skip
    poison = [
        (b"binance:OK/USDT", b"{not json"),
        (b"binance:OK/USDT", ticker("binance", "OK/USDT", -5.0, T0)),  # negative price
        (b"binance:OTHER/USDT", ticker("binance", "OK/USDT", 1.0, T0)),  # key mismatch
    ]
    tickers_topic = f"{namespace}market.tickers"
    await send_ticker(producer, namespace, "binance", "OK/USDT",
                      ticker("binance", "OK/USDT", 10.0, T0 + 1))  # fmt: skip
    for key, value in poison:
        await producer.send(tickers_topic, value, key=key)
    for i in range(2, 5):
        await send_ticker(producer, namespace, "binance", "OK/USDT",
                          ticker("binance", "OK/USDT", 10.0 + i, T0 + i))  # fmt: skip
    await producer.flush()
    start_worker()
    key = analysis_key(namespace, "volatility", "binance", "OK/USDT")
    await eventually(lambda: _observed(redis_client, key, 4))
    letters = await dead_letters(kafka_bootstrap, namespace, at_least=3)
    by_payload = {base64.b64decode(letter["payload_b64"]): letter for letter in letters}
    assert set(by_payload) == {value for _, value in poison}
    assert "not JSON" in by_payload[b"{not json"]["reason"]
    assert "last must be" in by_payload[poison[1][1]]["reason"]
    assert "binance:OTHER/USDT" in by_payload[poison[2][1]]["reason"]
    assert all(letter["source_topic"] == tickers_topic for letter in letters)
    env = await cached(redis_client, key)
    assert env is not None and env["v"]["last"] == 14.0


async def _observed(redis_client: aioredis.Redis, key: str, n: int) -> bool:
    return await observations(redis_client, key) == n


@pytest.mark.slow
@pytest.mark.parametrize(
    "sig",
    [signal.SIGTERM, signal.SIGKILL],
    ids=["sigterm", "sigkill"],
)
async def test_a_stopped_worker_is_replaced_without_losing_or_double_counting(
    sig: int, start_worker: Any, producer: AIOKafkaProducer, namespace: str,
    redis_client: aioredis.Redis,
) -> None:  # fmt: skip
    symbols = [f"S{i:02d}/USDT" for i in range(24)]
    per_symbol = 150

    keys = [analysis_key(namespace, "volatility", "binance", s) for s in symbols]
    first = start_worker()
    # a duplicate every tenth round: same as_of, must not count
    feeding = asyncio.create_task(feed_rounds(producer, namespace, symbols, range(per_symbol)))

    async def some_progress() -> bool:
        return sum([await observations(redis_client, k) for k in keys]) > 200

    await eventually(some_progress)
    assert await asyncio.to_thread(first.stop, sig) in (0, -sig, 128 + sig)
    second = start_worker()
    await feeding

    seen: list[int] = []

    async def all_counted() -> list[int] | None:
        seen[:] = [await observations(redis_client, k) for k in keys]
        return list(seen) if all(c >= per_symbol for c in seen) else None

    try:
        counts = await eventually(all_counted, timeout_s=60)
    except AssertionError:
        metrics = await asyncio.to_thread(second.metrics)
        events = [ln for ln in metrics.splitlines() if ln.startswith("warmfleet_agent_")]
        raise AssertionError(f"observations per symbol: {seen}; {events}") from None
    assert counts == [per_symbol] * len(symbols)  # nothing lost, nothing counted twice
    await assert_last_round(redis_client, keys, per_symbol)


@pytest.mark.slow
async def test_the_overview_goes_on_when_the_worker_merging_it_is_killed(
    start_worker: Any, producer: AIOKafkaProducer, namespace: str, redis_client: aioredis.Redis
) -> None:
    await set_phase(producer, namespace, tickers=15.0, overview=1.0)
    symbols = [f"S{i:02d}/USDT" for i in range(24)]
    for symbol in symbols:
        await send_ticker(producer, namespace, "binance", symbol,
                          ticker("binance", symbol, 100.0, T0, change_pct=0.0))  # fmt: skip
    await producer.flush()
    workers = [start_worker(), start_worker()]
    overview_key = key_for("overview", "all", prefix=namespace.rstrip("."))

    async def merger() -> Any:
        counts = [await asyncio.to_thread(w.counter, OVERVIEWS_TOTAL) for w in workers]
        return next((w for w, n in zip(workers, counts, strict=True) if n > 0), None)

    merging = await eventually(merger)
    (survivor,) = [w for w in workers if w is not merging]
    before = await asyncio.to_thread(survivor.counter, OVERVIEWS_TOTAL)
    merging.stop(signal.SIGKILL)
    await send_ticker(producer, namespace, "binance", symbols[0],
                      ticker("binance", symbols[0], 120.0, T0 + 100, change_pct=20.0))  # fmt: skip
    await producer.flush()

    async def newer_overview() -> dict[str, Any] | None:
        env = await cached(redis_client, overview_key)
        return env["v"] if env is not None and env["v"]["as_of_ms"] == T0 + 100 else None

    overview = await eventually(newer_overview, timeout_s=90)
    assert overview["symbols"] == len(symbols)
    assert overview["top_gainers"][0]["symbol"] == symbols[0]
    assert await asyncio.to_thread(survivor.counter, OVERVIEWS_TOTAL) > before
