"""The hot set through the real clock: reads through the reader app (its one counting line)
reach Redis, the clock's view of them decides which symbols its candle jobs name, idle keys
drop out, and a change to a faster phase is pre-warmed ahead of time. Real Kafka, Redis,
APScheduler; the calendar is built around "now" (sessions seconds away), as in
test_clock.py."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta
from typing import Any

import pytest

from readers import create_app
from schedules import ExchangeWarm, Phase, PhaseCalendar, PhaseClock, PhaseConfig
from schedules import _metrics as metrics
from schedules._config import HotSetWarm
from tests.schedules.conftest import Recorder, make_clock, noon_timezone, running, sessions_from_now
from tiers import HeatRecorder, HeatView, HotSetOptions, MultiTierCache
from topics import WARM_JOBS, DataType, key_for
from topics.records import WarmJob

pytestmark = pytest.mark.integration


def one_exchange(
    calendar: PhaseCalendar, lead_s: float = 0.0, requests_per_s: float = 100.0
) -> PhaseConfig:
    binance = ExchangeWarm(
        "binance",
        (DataType.TICKERS, DataType.CANDLES),
        min_interval_s=0.2,
        requests_per_s=requests_per_s,
    )
    return PhaseConfig(
        calendar, (binance,), hot_set=HotSetWarm(pre_warm_lead_s=lead_s), source="<test>"
    )


def hot_clock(
    config: PhaseConfig, kafka_bootstrap: str, ns: str, view: HeatView, **kw: Any
) -> PhaseClock:
    """The fast test clock, reading its hot set from ``view`` (no overview watch)."""
    return make_clock(config, kafka_bootstrap, ns, watch_overview=False, hot_set=view, **kw)


def candle_jobs(recorder: Recorder, ns: str) -> list[WarmJob]:
    jobs: list[WarmJob] = recorder.values(WARM_JOBS.named(ns))
    return [j for j in jobs if j.data_type == "candles"]


async def test_the_hot_set_drives_which_symbols_candles_are_warmed_and_forgets_idle_keys(
    kafka_bootstrap: str, redis_url: str, namespace: str, recorder: Recorder
) -> None:
    prefix = namespace.rstrip(".")
    fast = HotSetOptions(half_life_s=0.5, floor=0.5, flush_every_s=0.2, refresh_every_s=0.2)
    heat = HeatRecorder(redis_url, prefix=prefix, options=fast)
    cache = MultiTierCache.from_urls("memory://?max_entries=100")
    app = create_app(cache, key_prefix=prefix, on_read=heat.touch)
    view = HeatView(redis_url, prefix=prefix, options=fast)
    calendar = PhaseCalendar(trading_days=frozenset(), intervals_s={p: 0.5 for p in Phase})
    # 12 req/s * 0.5 = 6, less 2 for the tickers job every 0.5 s: 4 req/s, 2 symbols a job
    config = one_exchange(calendar, requests_per_s=12)
    clock = hot_clock(config, kafka_bootstrap, namespace, view)
    reading: list[str] = ["BTC/USDT", "ETH/USDT"]

    async def dashboards() -> None:  # what readers ask for, 10 times a second per symbol
        while True:
            for symbol in list(reading):
                key = key_for("candles", "binance", symbol, prefix=prefix)
                route, answer = await app.handle("GET", f"/v2/keys/{key}", "", {})
                assert route == "/v2/keys/{key}" and answer.status == 404  # cold, counted
            await asyncio.sleep(0.1)

    readers = asyncio.create_task(dashboards())
    skipped = metrics.JOBS_SKIPPED.labels("binance", "candles", "hot_set_empty")
    try:
        async with running(clock):
            await recorder.wait_for(
                "a candle job naming the two symbols read",
                lambda: any(
                    sorted(j.symbols) == ["BTC/USDT", "ETH/USDT"]
                    for j in candle_jobs(recorder, namespace)
                ),
            )
            reading[:] = ["SOL/USDT"]  # the dashboards move on
            await recorder.wait_for(
                "candle jobs naming only the symbol read now",
                lambda: candle_jobs(recorder, namespace)[-1].symbols == ["SOL/USDT"],
            )
            seen = len(candle_jobs(recorder, namespace))
            await recorder.wait_for(
                "three more candle jobs",
                lambda: len(candle_jobs(recorder, namespace)) >= seen + 3,
            )
            assert all(
                j.symbols == ["SOL/USDT"] for j in candle_jobs(recorder, namespace)[seen:]
            )  # BTC and ETH were forgotten and stay forgotten
            readers.cancel()
            before = skipped._value.get()
            await recorder.wait_for(  # nobody reads: no candle job at all, counted
                "candle jobs skipped for an empty hot set",
                lambda: skipped._value.get() >= before + 3,
            )
    finally:
        readers.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await readers
        await heat.close()
        await view.close()
        await cache.close()
    jobs: list[WarmJob] = recorder.values(WARM_JOBS.named(namespace))
    tickers = [j for j in jobs if j.data_type == "tickers"]
    assert tickers and all(j.symbols == [] for j in tickers)  # the all-markets fetch stays
    # once a symbol set was measured, no candle job ever asked for every market
    assert all(j.symbols for j in candle_jobs(recorder, namespace))
    # while BTC and ETH decayed and SOL rose the set held three; no job named more than the
    # exchange's budget allows
    assert all(len(j.symbols) <= 2 for j in candle_jobs(recorder, namespace))


async def test_a_change_to_a_faster_phase_is_pre_warmed_lead_seconds_ahead(
    kafka_bootstrap: str, redis_url: str, namespace: str, recorder: Recorder
) -> None:
    prefix = namespace.rstrip(".")
    heat = HeatRecorder(redis_url, prefix=prefix)
    for symbol, reads in (("BTC/USDT", 30), ("ETH/USDT", 10)):
        for _ in range(reads):
            heat.touch(key_for("candles", "binance", symbol, prefix=prefix))
    await heat.close()
    view = HeatView(redis_url, prefix=prefix, options=HotSetOptions(refresh_every_s=0.5))
    tz = noon_timezone()
    # overnight now; pre-market (1 s warms instead of 60 s) in 20 s: the regular schedule
    # has nothing due near the change, so a job just before it is the pre-warm
    sessions, change = sessions_from_now(tz, lead_s=20, step_s=30)
    calendar = PhaseCalendar(
        timezone=tz,
        sessions=sessions,
        trading_days=frozenset(range(7)),
        intervals_s={**{p: 60.0 for p in Phase}, Phase.PRE_MARKET: 1.0, Phase.MARKET_HOURS: 0.5},
    )
    lead = 3.0
    config = one_exchange(calendar, lead_s=lead)
    assert calendar.phase_at(change - timedelta(seconds=1)) is Phase.OVERNIGHT
    prewarmed = metrics.PREWARMED.labels(exchange="binance", data_type="candles")
    before = prewarmed._value.get()
    clock = hot_clock(config, kafka_bootstrap, namespace, view, catch_up_ramp_s=0.5)
    try:
        async with running(clock):
            await recorder.wait_for(
                "a pre-market job after the change",
                lambda: any(
                    j.phase == "pre_market" for j in recorder.values(WARM_JOBS.named(namespace))
                ),
                within_s=60,
            )
    finally:
        await view.close()
    change_ms = change.timestamp() * 1000
    jobs: list[WarmJob] = recorder.values(WARM_JOBS.named(namespace))
    early = [j for j in jobs if change_ms - (lead + 1.5) * 1000 <= j.issued_ms < change_ms]
    assert sorted(j.data_type for j in early) == ["candles", "tickers"]  # every job, once
    assert all(j.phase == "overnight" and j.interval_s == 60.0 for j in early)
    for job in early:
        assert job.issued_ms >= change_ms - lead * 1000 - 500  # not before the lead
    (early_candles,) = (j for j in early if j.data_type == "candles")
    assert early_candles.symbols == ["BTC/USDT", "ETH/USDT"]  # the hot set, hottest first
    assert prewarmed._value.get() == before + 1
    # the cold-start warms came long before; nothing else was due in between
    first_ms = min(j.issued_ms for j in jobs)
    assert first_ms < change_ms - 8000
    between = [j for j in jobs if first_ms + 2000 < j.issued_ms < change_ms - (lead + 1.5) * 1000]
    assert between == []
    # and after the change the faster cadence follows at once
    after = [j for j in jobs if j.issued_ms >= change_ms]
    assert after and min(j.issued_ms for j in after) - change_ms <= 2000
