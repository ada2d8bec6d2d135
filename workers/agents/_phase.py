"""Following the phase clock: every worker reads the compacted ``control.phase`` topic on
its own (no consumer group), so each one knows the current warm intervals."""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Mapping
from typing import Any

import orjson
import structlog
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError

log = structlog.get_logger(__name__)

#: until a PhaseChange arrives (DESIGN.md: market hours 15 s; overview at 60 s)
DEFAULT_INTERVALS: Mapping[str, float] = {
    "tickers": 15.0,
    "books": 15.0,
    "candles": 60.0,
    "overview": 60.0,
    "signals": 15.0,
    "volatility": 15.0,
}


class PhaseFollower:
    """The latest ``PhaseChange``'s intervals; ``interval(data_type)`` never blocks."""

    def __init__(
        self, bootstrap: str, topic: str, kafka_options: dict[str, Any] | None = None
    ) -> None:
        self.bootstrap, self.topic = bootstrap, topic
        self.kafka_options = kafka_options or {}  # security settings, never logged
        self.phase: str | None = None
        self.intervals: dict[str, float] = dict(DEFAULT_INTERVALS)
        self.changes = 0

    def interval(self, data_type: str) -> float:
        return self.intervals.get(data_type) or self.intervals["tickers"]

    def apply(self, raw: bytes | None) -> bool:
        """Take one ``control.phase`` message; returns False (and logs) for a bad one."""
        try:
            obj = orjson.loads(raw or b"")
            phase, intervals = obj["phase"], obj["intervals_s"]
            clean = {str(k): float(v) for k, v in intervals.items()}
            if not isinstance(phase, str) or not all(
                math.isfinite(v) and v > 0 for v in clean.values()
            ):
                raise ValueError("intervals must be positive numbers")
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
            log.warning("phase_change_rejected", topic=self.topic, error=str(exc))
            return False
        self.phase = phase
        self.intervals = {**DEFAULT_INTERVALS, **clean}
        self.changes += 1
        log.info("phase_followed", phase=phase, intervals_s=self.intervals)
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
                    self.apply(message.value)
            except KafkaError as exc:
                log.warning("phase_follower_error", error=str(exc))
                await asyncio.sleep(1.0)
            finally:
                with contextlib.suppress(KafkaError):
                    await consumer.stop()
