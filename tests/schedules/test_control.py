"""The clock's control log against the real Kafka: the override in ``control.phase`` and the
election on ``control.clock``."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaProducer

from schedules import (
    ClockElection,
    OverrideLog,
    Phase,
    parse_override,
    pick_leader,
)
from schedules._leader import Candidate, members
from schedules._overrides import OVERRIDE_KEY
from topics import CONTROL_CLOCK, CONTROL_PHASE
from topics.kafka import ensure_topics

pytestmark = pytest.mark.integration


async def test_an_override_is_set_read_cleared_and_expires_by_itself(
    kafka_bootstrap: str, namespace: str
) -> None:
    await ensure_topics(kafka_bootstrap, namespace, [CONTROL_PHASE])
    log = OverrideLog(kafka_bootstrap, namespace)
    assert await log.get() is None
    assert await log.clear() is False
    set_ = await log.set(Phase.MARKET_HOURS, 2.0, by="test")
    got = await log.get()
    assert got is not None and got.phase is Phase.MARKET_HOURS
    assert abs((got.until - set_.until).total_seconds()) < 0.01
    deadline = time.monotonic() + 20
    while await log.get() is not None:
        assert time.monotonic() < deadline, "override did not expire"
        await asyncio.sleep(0.2)
    await log.set("weekend", 60)
    assert await log.clear() is True
    assert await log.get() is None
    with pytest.raises(ValueError, match="positive"):
        await log.set(Phase.WEEKEND, 0)


async def test_a_malformed_override_record_is_ignored(kafka_bootstrap: str, namespace: str) -> None:
    await ensure_topics(kafka_bootstrap, namespace, [CONTROL_PHASE])
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        topic = CONTROL_PHASE.named(namespace)
        await producer.send_and_wait(topic, b"{not json", key=OVERRIDE_KEY)
        assert await OverrideLog(kafka_bootstrap, namespace).get() is None  # the calendar rules
        await producer.send_and_wait(topic, b'{"phase": "lunch", "until_ms": 1}', key=OVERRIDE_KEY)
        assert await OverrideLog(kafka_bootstrap, namespace).get() is None
    finally:
        await producer.stop()
    assert parse_override(b'{"phase": null, "set_at_ms": 5}') is None  # a clear


def test_the_partition_stays_with_the_leader_else_goes_to_the_oldest() -> None:
    leader = Candidate("b", True, 7, 2000)
    assert pick_leader({"m1": Candidate("a", False, 0, 1000), "m2": leader}) == "m2"
    assert pick_leader(
        {"m1": Candidate("a", False, 0, 1000), "m2": Candidate("b", False, 0, 900)}
    ) == "m2"  # fmt: skip
    # two that think they lead (after a partition): the later election wins
    assert pick_leader({"m1": Candidate("a", True, 3, 1), "m2": Candidate("b", True, 4, 2)}) == "m2"
    assert pick_leader({"m1": None, "m2": Candidate("b", False, 0, 5)}) == "m2"
    assert pick_leader({}) is None


@contextlib.asynccontextmanager
async def elections(
    kafka_bootstrap: str, namespace: str, owners: list[str]
) -> AsyncIterator[dict[str, ClockElection]]:
    await ensure_topics(kafka_bootstrap, namespace, [CONTROL_CLOCK])
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    made: dict[str, ClockElection] = {}
    try:
        for owner in owners:
            e = ClockElection(
                kafka_bootstrap,
                owner=owner,
                namespace=namespace,
                session_timeout_s=6,
                heartbeat_s=0.5,
            )
            await e.start(producer)
            made[owner] = e
            await asyncio.sleep(0.5)  # started one after the other: "a" is the oldest
        yield made
    finally:
        for e in made.values():
            await e.stop()
        await producer.stop()


async def leaders(made: dict[str, ClockElection], within_s: float = 40) -> list[str]:
    """Tick every election until exactly one leads (and stays so for a few ticks)."""
    deadline, steady = time.monotonic() + within_s, 0
    while True:
        held = [o for o, e in made.items() if await e.hold()]
        steady = steady + 1 if len(held) == 1 else 0
        if steady >= 4:
            return held
        assert time.monotonic() < deadline, f"no single leader: {held}"
        await asyncio.sleep(0.3)


async def test_one_clock_leads_a_newcomer_does_not_take_over_and_a_successor_fences(
    kafka_bootstrap: str, namespace: str
) -> None:
    async with elections(kafka_bootstrap, namespace, ["a", "b"]) as made:
        assert await leaders(made) == ["a"]  # the oldest
        first = made["a"].token
        assert first is not None and first >= 1
        # a third clock joins: a rebalance, but the lead stays where it is
        e = ClockElection(
            kafka_bootstrap, owner="c", namespace=namespace, session_timeout_s=6, heartbeat_s=0.5
        )
        await e.start(made["a"]._producer)  # type: ignore[arg-type]
        made["c"] = e
        await asyncio.sleep(3)
        assert await leaders(made) == ["a"]
        group = await members(kafka_bootstrap, namespace)
        assert sorted(m.owner for m in group) == ["a", "b", "c"]
        assert [m.owner for m in group if m.leads] == ["a"]
        # the leader leaves: the oldest standby leads, with a higher fencing token
        await made.pop("a").stop()
        assert await leaders(made) == ["b"]
        token = made["b"].token
        assert token is not None and token > first
