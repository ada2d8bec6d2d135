"""The real clock (APScheduler, Kafka) through real transitions, overrides and boosts.

Calendars here use sub-second intervals and sessions a few seconds apart around "now", so
the runtime crosses real phase boundaries in seconds. Assertions are on events, with
generous timeouts, never on exact timing.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import time
from datetime import UTC, datetime

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from schedules import (
    CLOCK_HEADER,
    Boost,
    ExchangeWarm,
    OverrideLog,
    Phase,
    effective_interval,
)
from schedules import _metrics as metrics
from tests.schedules.conftest import (
    Recorder,
    fast_config,
    make_clock,
    noon_timezone,
    running,
    sessions_from_now,
)
from topics import ANALYSIS_OVERVIEW, CONTROL_PHASE, WARM_JOBS, DataType
from topics.records import MarketOverview, PhaseChange, WarmJob

pytestmark = pytest.mark.integration


def dedupe(phases: list[str]) -> list[str]:
    return [p for p, _ in itertools.groupby(phases)]


async def test_the_real_clock_follows_the_calendar_across_transitions(
    kafka_bootstrap: str, namespace: str, recorder: Recorder
) -> None:
    tz = noon_timezone()
    sessions, first = sessions_from_now(tz, lead_s=6, step_s=4)
    config = fast_config(
        intervals={
            Phase.MARKET_HOURS: 0.5,
            Phase.PRE_MARKET: 1.0,
            Phase.AFTER_HOURS: 1.0,
            Phase.OVERNIGHT: 1.5,
            Phase.WEEKEND: 2.0,
        },
        trading_days=frozenset(range(7)),
        sessions=sessions,
        timezone=tz,
    )
    cal = config.calendar
    phase_topic, jobs_topic = CONTROL_PHASE.named(namespace), WARM_JOBS.named(namespace)
    clock = make_clock(config, kafka_bootstrap, namespace)
    async with running(clock):
        await recorder.wait_for(
            "the clock to reach overnight after the after-hours session",
            lambda: (
                dedupe([c.phase for c in recorder.values(phase_topic)])[-2:]
                == ["after_hours", "overnight"]
            ),
        )
        await asyncio.sleep(1)
    changes: list[PhaseChange] = recorder.values(phase_topic)
    seq = dedupe([c.phase for c in changes])
    assert seq[-4:] == ["pre_market", "market_hours", "after_hours", "overnight"]
    assert seq[0] in ("overnight", "pre_market")  # whichever held when it took the lease
    for change in changes:
        at = datetime.fromtimestamp(change.at_ms / 1000, tz=UTC)
        assert cal.phase_at(at).value == change.phase  # never announced early
        assert change.intervals_s["tickers"] == cal.interval(change.phase, "tickers")
    jobs = [s for s in recorder.seen if s.topic == jobs_topic]
    assert jobs
    by_key: dict[tuple[str, str], list[WarmJob]] = {}
    for seen in jobs:
        job: WarmJob = seen.value
        issued = datetime.fromtimestamp(job.issued_ms / 1000, tz=UTC)
        assert job.phase == cal.phase_at(issued).value
        assert job.interval_s == effective_interval(
            config, Phase(job.phase), DataType(job.data_type), config.exchange(job.exchange)
        )
        assert seen.key == job.exchange.encode()
        assert seen.headers[CLOCK_HEADER] == clock.owner
        assert job.deadline_ms > job.issued_ms and job.symbols == []
        by_key.setdefault((job.exchange, job.data_type), []).append(job)
    assert set(by_key) == {(e, d) for e in ("binance", "okx") for d in ("tickers", "books")}
    for seq_jobs in by_key.values():
        assert "market_hours" in {j.phase for j in seq_jobs}
        for a, b in itertools.pairwise(seq_jobs):
            # within the TTL grace of the published interval, however loaded the machine
            assert b.issued_ms - a.issued_ms <= a.interval_s * 1000 + 10_000
    first_market = min(j.issued_ms for j in (s.value for s in jobs) if j.phase == "market_hours")
    assert first_market >= (first.timestamp() + 4) * 1000  # not before the open


async def test_an_override_takes_over_and_expires_by_itself(
    kafka_bootstrap: str, namespace: str, recorder: Recorder
) -> None:
    config = fast_config(intervals={**{p: 2.0 for p in Phase}, Phase.MARKET_HOURS: 0.3})
    phase_topic, jobs_topic = CONTROL_PHASE.named(namespace), WARM_JOBS.named(namespace)
    clock = make_clock(config, kafka_bootstrap, namespace)
    store = OverrideLog(kafka_bootstrap, namespace)
    async with running(clock):
        await recorder.wait_for("the first phase", lambda: recorder.values(phase_topic))
        assert recorder.values(phase_topic)[0].phase == "weekend"
        override = await store.set(Phase.MARKET_HOURS, 4.0, by="test")

        def phases() -> list[str]:
            return dedupe([c.phase for c in recorder.values(phase_topic)])

        await recorder.wait_for("the override", lambda: "market_hours" in phases())
        held = next(c for c in recorder.values(phase_topic) if c.phase == "market_hours")
        assert held.override_until_ms == round(override.until.timestamp() * 1000)
        assert held.next_transition_ms == held.override_until_ms
        await recorder.wait_for(
            "fast warm jobs",
            lambda: any(j.phase == "market_hours" for j in recorder.values(jobs_topic)),
        )
        await recorder.wait_for("the expiry", lambda: phases()[-2:] == ["market_hours", "weekend"])
        assert await store.get() is None  # expired by itself: nobody cleared it
        n = len(recorder.values(jobs_topic))
        await recorder.wait_for(
            "jobs after expiry", lambda: len(recorder.values(jobs_topic)) >= n + 4
        )
    fast = [j for j in recorder.values(jobs_topic) if j.phase == "market_hours"]
    assert fast and all(j.interval_s == 0.3 for j in fast)
    assert recorder.values(jobs_topic)[-1].phase == "weekend"
    assert recorder.values(jobs_topic)[-1].interval_s == 2.0


async def test_the_volatility_boost_tightens_intervals_down_to_each_floor(
    kafka_bootstrap: str, namespace: str, recorder: Recorder
) -> None:
    base = fast_config(
        intervals={p: 2.0 for p in Phase},
        boost=Boost(threshold=0.01, factor=0.5, release_ratio=0.8),
    )
    config = dataclasses.replace(
        base,
        exchanges=(
            ExchangeWarm("binance", (DataType.TICKERS,), min_interval_s=0.4),
            ExchangeWarm("okx", (DataType.TICKERS,), min_interval_s=1.5),
        ),
    )
    phase_topic, jobs_topic = CONTROL_PHASE.named(namespace), WARM_JOBS.named(namespace)
    overview_topic = ANALYSIS_OVERVIEW.named(namespace)
    skipped = metrics.OVERVIEW_SKIPPED.labels(reason="malformed")
    skipped_before = skipped._value.get()

    def overview(scope: str, index: float) -> bytes:
        now = int(time.time() * 1000)
        return MarketOverview(
            scope=scope,
            symbols=3,
            advancers=1,
            decliners=1,
            unchanged=1,
            top_gainers=[],
            top_losers=[],
            total_quote_volume=1.0,
            median_spread_bps=None,
            volatility_index=index,
            as_of_ms=now,
            computed_ms=now,
        ).dumps()

    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        async with running(make_clock(config, kafka_bootstrap, namespace)):
            await recorder.wait_for("the first phase", lambda: recorder.values(phase_topic))
            await producer.send_and_wait(overview_topic, b"\x00garbage", key=b"all")
            await producer.send_and_wait(overview_topic, orjson.dumps({"scope": "all"}), key=b"all")
            await producer.send_and_wait(overview_topic, overview("binance", 0.9), key=b"b")
            await producer.send_and_wait(overview_topic, overview("all", 0.02), key=b"all")
            await recorder.wait_for(
                "the boost",
                lambda: any(c.volatility_boost == 0.5 for c in recorder.values(phase_topic)),
            )
            boosted = next(c for c in recorder.values(phase_topic) if c.volatility_boost == 0.5)
            assert boosted.intervals_s["tickers"] == 1.5  # okx's floor: the slowest feed
            n = len(recorder.values(jobs_topic))
            await recorder.wait_for(
                "boosted jobs", lambda: len(recorder.values(jobs_topic)) >= n + 8
            )
            during = recorder.values(jobs_topic)[n:]
            await producer.send_and_wait(overview_topic, overview("all", 0.009), key=b"all")
            await asyncio.sleep(1.5)  # held: 0.009 is above threshold * release_ratio
            assert recorder.values(phase_topic)[-1].volatility_boost == 0.5
            await producer.send_and_wait(overview_topic, overview("all", 0.001), key=b"all")
            await recorder.wait_for(
                "the boost to end", lambda: recorder.values(phase_topic)[-1].volatility_boost == 1.0
            )
    finally:
        await producer.stop()
    assert {j.interval_s for j in during if j.exchange == "binance"} == {1.0}  # 2.0 * 0.5
    assert {j.interval_s for j in during if j.exchange == "okx"} == {1.5}  # its floor
    assert skipped._value.get() >= skipped_before + 2  # garbage counted, never a crash
