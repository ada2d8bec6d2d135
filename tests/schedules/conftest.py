"""Helpers for the clock's integration tests: small fast configs and a topic recorder."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from datetime import time as wall
from typing import Any
from zoneinfo import ZoneInfo

import pytest_asyncio
from aiokafka import AIOKafkaConsumer

from schedules import (
    Boost,
    ExchangeWarm,
    Phase,
    PhaseCalendar,
    PhaseClock,
    PhaseConfig,
    Sessions,
)
from topics import ANALYSIS_OVERVIEW, CONTROL_PHASE, WARM_JOBS, DataType
from topics.kafka import ensure_topics
from topics.records import PhaseChange, WarmJob


def fast_config(
    *,
    intervals: dict[Phase, float] | None = None,
    trading_days: frozenset[int] = frozenset(),
    sessions: Sessions | None = None,
    timezone: ZoneInfo | None = None,
    boost: Boost | None = None,
    floor_s: float = 0.2,
) -> PhaseConfig:
    """Two exchanges x (tickers, books); sub-second intervals so a test sees many firings.
    With no trading days every instant is ``weekend``."""
    calendar = PhaseCalendar(
        timezone=timezone or ZoneInfo("UTC"),
        sessions=sessions or Sessions(),
        trading_days=trading_days,
        intervals_s=intervals or {p: 1.0 for p in Phase},
        multipliers={DataType.DEFAULT: 1.0},
    )
    exchanges = tuple(
        ExchangeWarm(name, (DataType.TICKERS, DataType.BOOKS), min_interval_s=floor_s)
        for name in ("binance", "okx")
    )
    return PhaseConfig(
        calendar, exchanges, deadline_s=8.0, boost=boost or Boost(enabled=False), source="<test>"
    )


def noon_timezone(now: datetime | None = None) -> ZoneInfo:
    """A fixed-offset zone in which it is about noon now, so seconds-long sessions built
    around "now" never cross local midnight."""
    now = now or datetime.now(UTC)
    offset = 12 - now.hour  # local = UTC + offset, within -11..+12
    return ZoneInfo("Etc/GMT" + (f"-{offset}" if offset > 0 else f"+{-offset}"))


def sessions_from_now(tz: ZoneInfo, lead_s: float, step_s: float) -> tuple[Sessions, datetime]:
    """Session boundaries ``lead_s`` from now, then every ``step_s``: (sessions, first)."""
    first = (datetime.now(UTC) + timedelta(seconds=lead_s)).replace(microsecond=0)
    local = [(first + timedelta(seconds=i * step_s)).astimezone(tz) for i in range(4)]
    return Sessions(*(wall(t.hour, t.minute, t.second) for t in local)), first


def make_clock(config: PhaseConfig, kafka_bootstrap: str, ns: str, **kw: Any) -> PhaseClock:
    """A clock that joins, heartbeats and polls fast enough for seconds-long tests."""
    return PhaseClock(
        config,
        bootstrap_servers=kafka_bootstrap,
        namespace=ns,
        session_timeout_s=6.0,
        heartbeat_s=0.5,
        poll_every_s=0.5,
        **kw,
    )


@contextlib.asynccontextmanager
async def running(clock: PhaseClock) -> AsyncIterator[PhaseClock]:
    """``clock.run`` in a task for the block; stopped (and awaited) after it."""
    stop = asyncio.Event()
    task = asyncio.create_task(clock.run(stop))
    try:
        yield clock
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


@dataclass
class Seen:
    topic: str
    key: bytes | None
    value: Any
    headers: dict[str, str]
    at: float = field(default_factory=time.monotonic)


class Recorder:
    """Everything published to some topics, parsed, from the beginning."""

    def __init__(
        self, bootstrap: str, topics: dict[str, type], keys: dict[str, bytes] | None = None
    ) -> None:
        self.bootstrap, self.topics = bootstrap, topics
        self.keys = keys or {}  # topic -> the only message key recorded from it
        self.seen: list[Seen] = []
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        consumer = AIOKafkaConsumer(
            *self.topics,
            bootstrap_servers=self.bootstrap,
            group_id=None,
            auto_offset_reset="earliest",
        )
        await consumer.start()

        async def pump() -> None:
            try:
                async for msg in consumer:
                    if msg.topic in self.keys and msg.key != self.keys[msg.topic]:
                        continue  # e.g. the override records beside the PhaseChange
                    record = self.topics[msg.topic]
                    value = record.loads(msg.value) if record is not bytes else msg.value
                    headers = {k: v.decode() for k, v in msg.headers}
                    self.seen.append(Seen(msg.topic, msg.key, value, headers))
            finally:
                await consumer.stop()

        self._task = asyncio.create_task(pump())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def values(self, topic: str) -> list[Any]:
        return [s.value for s in self.seen if s.topic == topic]

    async def wait_for(self, what: str, pred: Callable[[], bool], within_s: float = 60) -> None:
        deadline = time.monotonic() + within_s
        while not pred():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            await asyncio.sleep(0.1)


@pytest_asyncio.fixture(loop_scope="function")
async def recorder(kafka_bootstrap: str, namespace: str) -> AsyncIterator[Recorder]:
    specs = [WARM_JOBS, CONTROL_PHASE, ANALYSIS_OVERVIEW]
    await ensure_topics(kafka_bootstrap, namespace, specs)
    rec = Recorder(
        kafka_bootstrap,
        {WARM_JOBS.named(namespace): WarmJob, CONTROL_PHASE.named(namespace): PhaseChange},
        keys={CONTROL_PHASE.named(namespace): b"phase"},
    )
    await rec.start()
    yield rec
    await rec.stop()
