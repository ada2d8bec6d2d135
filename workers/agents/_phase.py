"""Following the phase clock: every worker reads the compacted ``control.phase`` topic on
its own (no consumer group), so each one knows the current warm intervals.

Until the first ``PhaseChange`` arrives the intervals are the ones the clock would publish
now by the loaded phase config (``schedules/phases.toml`` or ``WARMFLEET_PHASES``): one
table, the config's, so agents and clock never disagree about what a TTL must cover. A data
type without an interval of its own uses the ``default`` row.

Across a change the follower keeps what the clock's rule keeps (``schedules.IntervalHistory``,
issue 12 defect 4): ``interval`` — what a TTL written now must cover — is the longer of the
new and the previous interval for one previous interval after a change, and ``due`` — for
what the agents warm on their own timer, the overview — never waits longer than the interval
in force at the last write, so after 15 s -> 60 s the overview is written once more 15 s
after its last write, already with a TTL for 60 s, instead of going cold for 30 s or more.

The topic holds other keys too (``override``: the manual override, for the clocks); only
key ``phase`` is a ``PhaseChange``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError

from schedules import IntervalHistory, PhaseConfig, default_path, effective_interval, load_config
from schedules import published_intervals as clock_intervals
from topics import DataType, InvalidRecord, phase_change_fields

log = structlog.get_logger(__name__)

#: the key of the clock's PhaseChange records in ``control.phase``
PHASE_KEY = b"phase"


def config_intervals(config: PhaseConfig, at: datetime) -> dict[str, float]:
    """The intervals the clock publishes at ``at`` (no override, no boost), plus
    ``default``."""
    phase = config.calendar.phase_at(at)
    intervals = clock_intervals(config, phase, 1.0)
    intervals[DataType.DEFAULT.value] = effective_interval(config, phase, DataType.DEFAULT)
    return intervals


class PhaseFollower:
    """The latest ``PhaseChange``'s intervals; ``interval(data_type)`` never blocks."""

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        kafka_options: dict[str, Any] | None = None,
        config: PhaseConfig | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.bootstrap, self.topic = bootstrap, topic
        self.kafka_options = kafka_options or {}  # security settings, never logged
        self.config = config if config is not None else load_config(default_path())
        self.phase: str | None = None
        self.intervals = self.fallback = config_intervals(self.config, datetime.now(UTC))
        self.history = IntervalHistory(self.intervals, clock=clock, lookup=_lookup)
        self.changes = 0

    def interval(self, data_type: str) -> float:
        """The interval a TTL written now must cover (``warm_interval``)."""
        return self.history.ttl_interval(data_type)

    def due(self, data_type: str, last_at: float) -> bool:
        """Whether a key this process warms on its own timer, last written at ``last_at``
        (monotonic, 0 = never), is due again."""
        return last_at <= 0 or self.history.due(data_type, last_at)

    def apply(self, raw: bytes | None) -> bool:
        """Take one ``control.phase`` message; returns False (and logs) for a bad one."""
        try:
            change = phase_change_fields(raw)
        except InvalidRecord as exc:
            log.warning("phase_change_rejected", topic=self.topic, reason=exc.reason,
                        error=exc.detail)  # fmt: skip
            return False
        self.phase = change["phase"]
        # a data type the clock does not publish keeps the config's interval
        self.intervals = {**self.fallback, **change["intervals_s"]}
        self.history.update(self.intervals)
        self.changes += 1
        log.info("phase_followed", phase=self.phase, intervals_s=self.intervals)
        return True

    async def run(self) -> None:
        """Read ``control.phase`` from the beginning, then follow it; reconnects on errors."""
        while True:
            consumer = AIOKafkaConsumer(
                self.topic,
                bootstrap_servers=self.bootstrap,
                **self.kafka_options,
                group_id=None,
                auto_offset_reset="earliest",
                enable_auto_commit=False,
            )
            try:
                await consumer.start()
                async for message in consumer:
                    if message.key in (None, PHASE_KEY):  # not the override's records
                        self.apply(message.value)
            except KafkaError as exc:
                log.warning("phase_follower_error", error=str(exc))
                await asyncio.sleep(1.0)
            finally:
                with contextlib.suppress(KafkaError):
                    await consumer.stop()


def _lookup(intervals: Mapping[str, float], data_type: str) -> float:
    return intervals.get(data_type) or intervals[DataType.DEFAULT.value]
