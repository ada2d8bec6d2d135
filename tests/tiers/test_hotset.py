"""The hot set against the real Redis: reads counted in process, merged fleet-wide by
flushes, decayed, trimmed below the floor and to its size, and a Redis outage that costs
the counts of the outage and nothing else."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import pytest
import pytest_asyncio
import redis.asyncio as aioredis

from tests._servers import PrivateServer
from tiers import HeatRecorder, HeatView, HotSetOptions
from tiers._hotset import MAX_PAIRS, UNCOUNTED_READS, market_of, set_names
from topics import ConfigError, DataType, key_for

pytestmark = pytest.mark.redis


def candles(prefix: str, symbol: str, exchange: str = "binance") -> str:
    return key_for("candles", exchange, symbol, prefix=prefix)


def books(prefix: str, symbol: str, exchange: str = "binance") -> str:
    return key_for("books", exchange, symbol, prefix=prefix)


@pytest_asyncio.fixture(loop_scope="function")
async def opened() -> AsyncIterator[list[HeatRecorder | HeatView]]:
    made: list[HeatRecorder | HeatView] = []
    yield made
    for item in made:
        await item.close()


def recorder(
    made: list[HeatRecorder | HeatView], url: str, prefix: str, **options: object
) -> HeatRecorder:
    rec = HeatRecorder(url, prefix=prefix, options=HotSetOptions(**options))  # type: ignore[arg-type]
    made.append(rec)
    return rec


def view(made: list[HeatRecorder | HeatView], url: str, prefix: str, **options: object) -> HeatView:
    v = HeatView(url, prefix=prefix, options=HotSetOptions(**options))  # type: ignore[arg-type]
    made.append(v)
    return v


async def test_two_readers_counts_merge_into_one_fleet_wide_set(
    redis_url: str, prefix: str, opened: list[HeatRecorder | HeatView]
) -> None:
    a, b = recorder(opened, redis_url, prefix), recorder(opened, redis_url, prefix)
    eth, btc, sol = (candles(prefix, s) for s in ("ETH/USDT", "BTC/USDT", "SOL/USDT"))
    for _ in range(30):
        a.touch(eth)
    for _ in range(20):
        b.touch(eth)
        b.touch(btc)
    a.touch(sol)
    v = view(opened, redis_url, prefix)
    assert await v.refresh() and v.size == 0  # nothing sent before a flush: no per-read I/O
    assert a.pending == 2 and b.pending == 2
    await asyncio.gather(a.flush(), b.flush())
    assert a.pending == 0 and a.flushes == 1 and b.flushes == 1
    assert await v.refresh()
    # a 60 s half-life: the second or so between touch and read decays by about 1 %
    assert v.heat(eth) == pytest.approx(50, rel=0.05)
    assert v.heat(btc) == pytest.approx(20, rel=0.05)
    assert v.heat(sol) == pytest.approx(1, rel=0.05)
    assert v.hot_symbols("binance", DataType.CANDLES, 10) == ["ETH/USDT", "BTC/USDT", "SOL/USDT"]
    assert v.hot_symbols("binance", DataType.CANDLES, 2) == ["ETH/USDT", "BTC/USDT"]
    assert v.hot_symbols("binance", DataType.CANDLES, 10, allowed=["SOL/USDT"]) == ["SOL/USDT"]
    assert v.hot_symbols("binance", DataType.BOOKS, 10) == []
    assert v.hot_symbols("okx", DataType.CANDLES, 10) == []


async def test_access_weight_is_1_5_for_the_hottest_and_1_for_an_unread_key(
    redis_url: str, prefix: str, opened: list[HeatRecorder | HeatView]
) -> None:
    rec = recorder(opened, redis_url, prefix)
    hot, warm, unread = (books(prefix, s) for s in ("BTC/USDT", "ETH/USDT", "XRP/USDT"))
    for _ in range(40):
        rec.touch(hot)
    for _ in range(10):
        rec.touch(warm)
    await rec.flush()
    v = view(opened, redis_url, prefix)
    assert v.weight(hot) == 1.0  # nothing read yet: neutral, never a guess
    assert await v.refresh()
    assert v.weight(hot) == pytest.approx(1.5)
    assert v.weight(warm) == pytest.approx(1.125, abs=0.01)  # 1 + 0.5 * 10 / 40
    assert v.weight(unread) == 1.0


async def test_an_idle_key_decays_below_the_floor_and_leaves_the_set(
    redis_url: str, prefix: str, opened: list[HeatRecorder | HeatView]
) -> None:
    fast = {"half_life_s": 0.25, "floor": 1.0}
    rec = recorder(opened, redis_url, prefix, **fast)
    v = view(opened, redis_url, prefix, **fast)
    idle, steady = candles(prefix, "DOGE/USDT"), candles(prefix, "BTC/USDT")
    for _ in range(16):
        rec.touch(idle)
    await rec.flush()
    assert await v.refresh() and v.hot_symbols("binance", DataType.CANDLES, 5) == ["DOGE/USDT"]
    # 16 reads fall below one within 4 half-lives (1 s); nobody flushes meanwhile, and the
    # view stops returning the key all the same
    await asyncio.sleep(1.5)
    assert await v.refresh()
    assert v.heat(idle) == 0.0 and v.hot_symbols("binance", DataType.CANDLES, 5) == []
    # the next flush trims it from Redis too
    rec.touch(steady)
    await rec.flush()
    zset, _ = set_names(prefix)
    client = aioredis.Redis.from_url(redis_url)
    try:
        assert await client.zscore(zset, idle) is None
        assert await client.zscore(zset, steady) is not None
        assert 0 < await client.pttl(zset) <= HotSetOptions(**fast).keep_ms  # type: ignore[arg-type]
    finally:
        await client.aclose()


async def test_the_set_keeps_only_the_hottest_max_keys(
    redis_url: str, prefix: str, opened: list[HeatRecorder | HeatView]
) -> None:
    rec = recorder(opened, redis_url, prefix, max_keys=3)
    keys = [books(prefix, f"C{i}/USDT") for i in range(6)]
    for i, key in enumerate(keys):
        for _ in range(i + 1):
            rec.touch(key)
    assert await rec.flush() == 3
    v = view(opened, redis_url, prefix, max_keys=3)
    assert await v.refresh()
    assert v.hot_symbols("binance", DataType.BOOKS, 10) == ["C5/USDT", "C4/USDT", "C3/USDT"]


async def test_distinct_keys_past_max_pending_are_counted_as_uncounted_not_stored(
    redis_url: str, prefix: str, opened: list[HeatRecorder | HeatView]
) -> None:
    rec = recorder(opened, redis_url, prefix, max_pending=2)
    before = UNCOUNTED_READS.labels(reason="overflow")._value.get()
    a, b, c = (books(prefix, s) for s in ("A/USDT", "B/USDT", "C/USDT"))
    for key in (a, b, c, c, a):
        rec.touch(key)
    assert rec.pending == 2
    assert UNCOUNTED_READS.labels(reason="overflow")._value.get() - before == 2
    await rec.flush()
    v = view(opened, redis_url, prefix)
    assert await v.refresh()
    assert v.heat(a) == pytest.approx(2, rel=0.05) and v.heat(c) == 0.0


async def test_rescaling_after_40_half_lives_keeps_heat_relative_and_finite(
    redis_url: str, prefix: str, opened: list[HeatRecorder | HeatView]
) -> None:
    fast = {"half_life_s": 0.05, "floor": 1e-15}
    rec = recorder(opened, redis_url, prefix, **fast)
    old, new = books(prefix, "OLD/USDT"), books(prefix, "NEW/USDT")
    for _ in range(1000):
        rec.touch(old)
    await rec.flush()
    _, meta = set_names(prefix)
    client = aioredis.Redis.from_url(redis_url)
    try:
        epoch = await client.hget(meta, "epoch")
        await asyncio.sleep(2.5)  # 50 half-lives: growth 2^50, past the 2^40 rescale point
        rec.touch(new)
        await rec.flush()
        assert await client.hget(meta, "epoch") != epoch  # rescaled, epoch moved
    finally:
        await client.aclose()
    v = view(opened, redis_url, prefix, **fast)
    assert await v.refresh()
    ratio = v.heat(old) / v.heat(new)
    assert 0 < ratio < 1000 * 2.0**-40  # the old reads decayed by > 2^40, still ordered


async def test_redis_away_costs_the_counts_of_the_outage_and_keeps_the_snapshot(
    private_server: Callable[[str], PrivateServer],
    prefix: str,
    opened: list[HeatRecorder | HeatView],
) -> None:
    server = private_server("redis")
    rec = recorder(opened, server.url, prefix, timeout_s=0.3)
    v = view(opened, server.url, prefix, timeout_s=0.3)
    key = candles(prefix, "BTC/USDT")
    for _ in range(5):
        rec.touch(key)
    await rec.flush()
    assert await v.refresh()
    server.stop()
    before = UNCOUNTED_READS.labels(reason="flush_failed")._value.get()
    rec.touch(key)
    started = time.monotonic()
    assert await rec.flush() is None  # refused quickly, never raised
    assert await v.refresh() is False
    assert time.monotonic() - started < 3
    assert UNCOUNTED_READS.labels(reason="flush_failed")._value.get() - before == 1
    assert rec.pending == 0  # dropped: an outage never grows the reader's memory
    assert v.hot_symbols("binance", DataType.CANDLES, 5) == ["BTC/USDT"]  # kept
    server.start()
    for _ in range(3):
        rec.touch(key)
    assert await rec.flush() == 1  # a restarted (empty) server: scripts loaded again


async def test_a_view_that_never_read_knows_nothing(prefix: str) -> None:
    v = HeatView("redis://127.0.0.1:1/0", prefix=prefix, options=HotSetOptions(timeout_s=0.3))
    try:
        assert await v.refresh() is False
        assert not v.known and v.hot_symbols("binance", DataType.BOOKS, 5) is None
        assert v.weight(books(prefix, "BTC/USDT")) == 1.0
    finally:
        await v.close()


async def test_the_flush_loop_starts_with_the_first_read_and_close_sends_the_rest(
    redis_url: str, prefix: str
) -> None:
    rec = HeatRecorder(redis_url, prefix=prefix, options=HotSetOptions(flush_every_s=0.1))
    key = books(prefix, "BTC/USDT")
    rec.touch(key)
    for _ in range(200):  # the loop runs on its own, started by the first read
        if rec.flushes:
            break
        await asyncio.sleep(0.05)
    assert rec.flushes >= 1
    rec.touch(key)
    await rec.close()
    v = HeatView(redis_url, prefix=prefix)
    try:
        assert await v.refresh() and v.heat(key) == pytest.approx(2, rel=0.05)
    finally:
        await v.close()


def test_market_of_reads_exchange_type_and_symbol_from_a_key() -> None:
    assert market_of(key_for("books", "binance", "BTC/USDT", prefix="p"), "p") == (
        "binance", DataType.BOOKS, "BTC/USDT",
    )  # fmt: skip
    swap = key_for("candles", "okx", "BTC/USDT:USDT", prefix="p")
    assert market_of(swap, "p") == ("okx", DataType.CANDLES, "BTC/USDT:USDT")
    framed = key_for("candles", "okx", "ETH/USDT", "5m", prefix="p")
    assert market_of(framed, "p") == ("okx", DataType.CANDLES, "ETH/USDT")
    assert market_of(key_for("overview", "all", prefix="p"), "p") is None
    assert market_of(key_for("books", "binance", "BTC/USDT", prefix="other"), "p") is None
    assert market_of("garbage", "p") is None


@pytest.mark.parametrize(
    ("field", "value"),
    [("half_life_s", 0), ("floor", -1.0), ("max_keys", 0), ("flush_every_s", float("nan")),
     ("max_pending", 1.5), ("timeout_s", "1")],
)  # fmt: skip
def test_bad_options_are_refused_naming_the_field(field: str, value: object) -> None:
    with pytest.raises(ConfigError, match=f"hot_set.{field}"):
        HotSetOptions(**{field: value})  # type: ignore[arg-type]


async def test_a_flush_of_more_keys_than_one_script_takes_counts_them_all(
    redis_url: str, prefix: str, opened: list[HeatRecorder | HeatView]
) -> None:
    rec = recorder(opened, redis_url, prefix)
    keys = [books(prefix, f"K{i}/USDT") for i in range(MAX_PAIRS * 2 + 7)]
    for key in keys:
        rec.touch(key)
        rec.touch(key)
    assert await rec.flush() == len(keys)
    v = view(opened, redis_url, prefix)
    assert await v.refresh() and v.size == len(keys)
    assert all(v.heat(key) == pytest.approx(2, rel=0.05) for key in keys)


async def test_foreign_members_in_the_set_are_read_as_harmless_strings(
    redis_url: str, prefix: str, opened: list[HeatRecorder | HeatView]
) -> None:
    rec = recorder(opened, redis_url, prefix)
    good = books(prefix, "BTC/USDT")
    rec.touch(good)
    await rec.flush()
    zset, _ = set_names(prefix)
    client = aioredis.Redis.from_url(redis_url)
    try:  # someone else's bytes, not UTF-8 and not a key
        await client.zadd(zset, {b"\xff\xfe:garbage": 5.0, f"{prefix}:v2:x": 5.0})
    finally:
        await client.aclose()
    v = view(opened, redis_url, prefix)
    assert await v.refresh() and v.size == 3
    assert v.hot_symbols("binance", DataType.BOOKS, 5) == ["BTC/USDT"]
