"""Coverage at every transition (issue 12, defect 4) through the agents' phase follower:
after 15 s -> 60 s the overview was 404 for >= 23 s, after a boost release (300 s -> 600 s)
``overview:all`` was 404 — the TTL written for the old interval ran out before the first
write of the new one.

A simulated transition drives the real ``PhaseFollower`` with the clock's real
``PhaseChange`` records: the overview is written as ``OverviewAgents.snapshot_partitions``
does (a 0.5 s timer, a snapshot when ``follower.due``), tickers when the clock's jobs (the
real rescheduling rule) bring them; every write's L3 TTL is the real ``TTLPolicy`` for
``follower.interval(...)``. A key must stay alive through the first warms of the new phase.
Then the follower on the real Kafka: the override's records beside the PhaseChange are not
PhaseChanges.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import orjson
import pytest
import structlog
from aiokafka import AIOKafkaProducer

from schedules import DEFAULT_PATH, Override, OverrideLog, Phase, load_config, plan_firings, resolve
from tiers import TTLPolicy
from topics import CONTROL_PHASE
from topics.kafka import ensure_topics
from workers.agents import PhaseFollower

TICK_S = 0.5  # OverviewAgents' timer
NY = ZoneInfo("America/New_York")
CONFIG = load_config(DEFAULT_PATH)
T0 = datetime(2026, 12, 1, 7, 0, tzinfo=NY)  # a Tuesday, pre-market


class Clock:
    t = 0.0

    def __call__(self) -> float:
        return self.t


def phase_change(override: Override | None, boost: float, at: datetime) -> bytes:
    """What the clock publishes on control.phase."""
    return bytes(resolve(CONFIG, at, override=override, boost=boost).to_record().dumps())


def cold(writes: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """(expired at, next written at) wherever no copy was alive."""
    return [(exp, nxt) for (_, exp), (nxt, _) in itertools.pairwise(writes) if nxt > exp]


#: (start, override until the change, boost before, boost after): market hours held by an
#: override in pre-market, ending 10 minutes in (15 s -> 60 s); the volatility boost (x0.5)
#: released on a Saturday (weekend 300 s -> 600 s)
TRANSITIONS = {
    "15s->60s": (T0, Override(Phase.MARKET_HOURS, T0 + timedelta(minutes=10), T0), 1.0, 1.0),
    "boost release": (datetime(2026, 12, 5, 12, tzinfo=NY), None, 0.5, 1.0),  # weekend 300->600
}


@pytest.mark.parametrize("volatility", [0.0, 0.2])
@pytest.mark.parametrize("name", list(TRANSITIONS))
def test_the_overview_and_a_ticker_stay_warm_through_the_first_warms_of_the_new_phase(
    name: str, volatility: float
) -> None:
    start, override, boost_before, boost_after = TRANSITIONS[name]
    change = start + timedelta(minutes=10)
    clock, policy = Clock(), TTLPolicy(rng=random.Random(7))
    follower = PhaseFollower("127.0.0.1:1", "control.phase", config=CONFIG, clock=clock)
    assert follower.apply(phase_change(override, boost_before, start))
    before, after = follower.history.interval("overview"), None
    overview: list[tuple[float, float]] = []
    last = 0.0
    end = (change - start).total_seconds() + 3 * 600
    while clock.t < end:
        at = start + timedelta(seconds=clock.t)
        if after is None and at >= change:
            assert follower.apply(phase_change(None, boost_after, at))
            after = follower.history.interval("overview")
        if follower.due("overview", last):  # snapshot_partitions, then the merger's write
            ttl = policy.ttl_for(
                "overview", "l3", volatility=volatility,
                warm_interval=follower.interval("overview"),
            )  # fmt: skip
            overview.append((clock.t, clock.t + ttl))
            last = clock.t
        clock.t += TICK_S
    assert after is not None and after > before  # a lengthening change
    c = (change - start).total_seconds()
    assert len([t for t, _ in overview if t >= c]) >= 2
    assert cold(overview) == []

    # a ticker, warmed when the clock's jobs bring it (0.5 s after issue), the follower
    # hearing of the change 0.2 s after the clock published it
    boosts = [(start, boost_before), (change, boost_after)]
    firings = [
        f for f in plan_firings(CONFIG, start, start + timedelta(seconds=end),
                                overrides=[override] if override else [], boosts=boosts)
        if (f.exchange, f.data_type.value) == ("binance", "tickers")
    ]  # fmt: skip
    clock.t = 0.0
    follower = PhaseFollower("127.0.0.1:1", "control.phase", config=CONFIG, clock=clock)
    follower.apply(phase_change(override, boost_before, start))
    heard = False
    tickers = []
    for f in firings:
        clock.t = (f.at - start).total_seconds() + 0.5
        if not heard and clock.t >= c + 0.2:
            follower.apply(phase_change(None, boost_after, change))
            heard = True
        ttl = policy.ttl_for(
            "tickers", "l3", volatility=volatility, warm_interval=follower.interval("tickers")
        )
        tickers.append((clock.t, clock.t + ttl))
    assert heard and cold(tickers) == []


@pytest.mark.integration
async def test_the_follower_reads_only_phase_changes_from_control_phase(
    kafka_bootstrap: str, namespace: str
) -> None:
    topic = CONTROL_PHASE.named(namespace)
    await ensure_topics(kafka_bootstrap, namespace, [CONTROL_PHASE])
    await OverrideLog(kafka_bootstrap, namespace).set(Phase.MARKET_HOURS, 600, by="test")
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    now = datetime.now(UTC)
    try:
        await producer.send_and_wait(topic, phase_change(None, 1.0, now), key=b"phase")
    finally:
        await producer.stop()
    await OverrideLog(kafka_bootstrap, namespace).clear(by="test")
    follower = PhaseFollower(kafka_bootstrap, topic, config=CONFIG)
    with structlog.testing.capture_logs() as logs:
        task = asyncio.create_task(follower.run())
        try:
            async with asyncio.timeout(30):
                while follower.changes < 1:  # noqa: ASYNC110 (polling a counter)
                    await asyncio.sleep(0.1)
            await asyncio.sleep(1)  # the override's clear record, read after the change
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    assert follower.changes == 1
    assert follower.phase == orjson.loads(phase_change(None, 1.0, now))["phase"]
    assert not [e for e in logs if e["event"] == "phase_change_rejected"]
