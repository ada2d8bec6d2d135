"""The demand path's pure parts and small pieces: XFetch, delta, the priority gate, the
waiters, job decoding, settings; and the Hit's freshness that XFetch reads (real tiers)."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import orjson
import pytest

from demand import Deltas, DemandConfig, EarlyRefresh, demand_job, xfetch_fires
from readers._demand import ReaderDemand
from tiers import MultiTierCache, TierLevel, TTLPolicy
from tiers._waiters import Waiters, waiters_of
from topics import ConfigError, DataType, key_for
from workers.pollers import MalformedJob, parse_job
from workers.pollers._priority import PriorityGate


def test_xfetch_fires_by_the_papers_rule() -> None:
    # now - delta * beta * ln(u) >= expiry
    assert not xfetch_fires(100.0, 110.0, 1.0, 1.0, 0.5)  # 100 + 0.69 < 110
    assert xfetch_fires(100.0, 100.5, 1.0, 1.0, 0.5)  # 100 + 0.69 >= 100.5
    assert xfetch_fires(100.0, 110.0, 1.0, 1.0, math.exp(-10))  # a rare early draw
    assert xfetch_fires(100.0, 110.0, 1.0, 1.0, 0.0)  # u = 0: -ln(u) is infinite
    assert xfetch_fires(111.0, 110.0, 1.0, 1.0, 1.0)  # expired: always


def test_early_refresh_gets_likelier_as_expiry_nears() -> None:
    draws = iter([i / 1000 for i in range(1000)] * 4)
    early = EarlyRefresh(Deltas(0.5), beta=1.0, draw=lambda: next(draws))
    fired = [sum(early.due("binance", "tickers", 10.0, 10.0 - left) for _ in range(1000))
             for left in (5.0, 1.0, 0.25)]  # fmt: skip
    assert fired[0] < fired[1] < fired[2]
    assert fired[0] == 0  # 10 deltas away: exp(-10) of 1,000 draws
    assert early.due("binance", "tickers", 10.0, 10.0)  # at expiry: always


def test_delta_tracks_the_measured_times_per_exchange_and_type() -> None:
    deltas = Deltas(0.5)
    assert deltas.get("binance", "tickers") == 0.5
    for _ in range(50):
        deltas.observe("binance", "tickers", 0.2)
    assert deltas.get("binance", "tickers") == pytest.approx(0.2, abs=0.01)
    assert deltas.get("binance", "books") == 0.5  # its own figure
    deltas.observe("binance", "tickers", float("nan"))  # ignored
    deltas.observe("binance", "tickers", 1.0)  # a slow one widens it
    assert deltas.get("binance", "tickers") > 0.36


async def test_the_gate_serves_demand_before_scheduled_waiters() -> None:
    gate, order = PriorityGate(1), []

    async def job(name: str, priority: int) -> None:
        async with gate.slot(priority):
            order.append(name)
            await asyncio.sleep(0.01)

    first = asyncio.create_task(job("running", 1))
    await asyncio.sleep(0)
    waiting = [asyncio.create_task(job(n, p)) for n, p in
               (("s1", 1), ("s2", 1), ("d1", 0), ("d2", 0))]  # fmt: skip
    await asyncio.gather(first, *waiting)
    assert order == ["running", "d1", "d2", "s1", "s2"]
    assert gate.free == 1


async def test_a_cancelled_waiter_does_not_leak_the_gates_slot() -> None:
    gate = PriorityGate(1)
    async with gate.slot(1):
        waiter = asyncio.create_task(gate.slot(0).__aenter__())
        await asyncio.sleep(0)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
    assert gate.free == 1 and gate.waiting == 0


async def test_waiters_wake_on_a_write_at_or_above_the_floor() -> None:
    waiters = Waiters()
    fut = waiters.register("k", 100)
    waiters.notify("k", 99)  # older: not what we wait for
    waiters.notify("k", -1)  # a delete wakes nobody
    assert not fut.done()
    waiters.notify("k", 100)
    assert fut.result() == 100 and len(waiters) == 0
    assert await waiters.wait("k", 0, 0.01) is None  # nothing written: times out, cleaned up
    assert len(waiters) == 0


def test_demand_jobs_decode_and_old_jobs_are_scheduled() -> None:
    job = demand_job("binance", "tickers", ["BTC/USDT"], deadline_s=2.0, now_ms=1_000)
    parsed = parse_job(job.dumps())
    assert (parsed.priority, parsed.deadline_ms, parsed.symbols) == ("demand", 3_000, ["BTC/USDT"])
    old = orjson.loads(job.dumps())
    del old["priority"]
    assert parse_job(orjson.dumps(old)).priority == "scheduled"
    old["priority"] = "urgent"
    with pytest.raises(MalformedJob, match="priority"):
        parse_job(orjson.dumps(old))


def test_demand_settings_are_validated_naming_the_variable() -> None:
    assert DemandConfig.from_env({}).deadline_s == 2.0
    assert DemandConfig.from_env({"WARMFLEET_DEMAND_DEADLINE_S": "0.5"}).deadline_s == 0.5
    with pytest.raises(ConfigError, match="WARMFLEET_DEMAND_DEADLINE_S"):
        DemandConfig.from_env({"WARMFLEET_DEMAND_DEADLINE_S": "-1"})
    with pytest.raises(ConfigError, match="WARMFLEET_DEMAND_LEASE_MS"):
        DemandConfig.from_env({"WARMFLEET_DEMAND_LEASE_MS": "soon"})


def test_the_reader_loads_tickers_books_candles_and_analysis_only() -> None:
    rd = ReaderDemand(object(), object(), key_prefix="p")  # type: ignore[arg-type]
    assert rd.target(key_for("tickers", "binance", "BTC/USDT", prefix="p")) == (
        "binance", "tickers", "BTC/USDT")  # fmt: skip
    assert rd.target(key_for("books", "okx", "ETH/USDT", prefix="p"))[1] == "books"  # type: ignore[index]
    assert rd.target(key_for("signals", "okx", "ETH/USDT", prefix="p"))[1] == "tickers"  # type: ignore[index]
    assert rd.target(key_for("overview", "all", prefix="p")) is None
    assert rd.target(key_for("tickers", "binance", "BTC/USDT", prefix="other")) is None


@pytest.mark.integration
async def test_hits_carry_the_deepest_tiers_freshness(stack_urls: Any, namespace: str) -> None:
    policy = TTLPolicy(
        base_s={DataType.TICKERS: (5.0, 10.0, 20.0)}, jitter=0.0, k=0.0,
        clamp_s={level: (1.0, 3600.0) for level in TierLevel},
    )  # fmt: skip
    urls = ("memory://?max_entries=10", stack_urls.memcached_url, stack_urls.redis_url)
    writer = MultiTierCache.from_urls(*urls[1:], ttl_policy=policy, invalidation_channel=None)
    reader = MultiTierCache.from_urls(urls[0], urls[2], ttl_policy=policy,
                                      invalidation_channel=None)  # fmt: skip
    key = key_for("tickers", "binance", "BTC/USDT", prefix=namespace.rstrip("."))
    try:
        await writer.set(key, {"last": 1.0}, data_type="tickers", as_of=1_000)
        from_l3 = await reader.get(key)
        from_l1 = await reader.get(key)
        assert from_l3 is not None and from_l3.tier == "redis"
        assert from_l1 is not None and from_l1.tier == "memory"
        assert from_l3.fresh_until > 0 and from_l1.fresh_until == from_l3.fresh_until
        assert waiters_of(reader) is None  # no bus: nothing would wake a waiter
    finally:
        await writer.close()
        await reader.close()
