"""The manual phase override, kept in the compacted ``control.phase`` topic (key
``override``) next to the clock's own ``PhaseChange`` (key ``phase``).

Kafka, not Redis, so no restart loses it: the stack's Redis keeps nothing on disk, and a
compacted topic keeps the latest record per key for good. The latest record wins (log
order, not wall clocks): ``{"phase": "market_hours", "until_ms": ..., "set_at_ms": ...,
"by": "cli"}`` sets one, ``{"phase": null, ...}`` clears it; an override also ends by itself
at ``until_ms``. Every clock follows the topic from its beginning (``OverrideFollower``);
``warmfleet phase set|clear|show`` write and read it (``OverrideLog``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from schedules._calendar import Phase
from schedules._control import ClockError
from schedules._plan import Override, to_ms
from topics import CONTROL_PHASE

log = structlog.get_logger(__name__)

OVERRIDE_KEY = b"override"
PHASE_KEY = b"phase"


def _from_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def override_body(override: Override | None, *, by: str = "", now: datetime | None = None) -> bytes:
    now = now or datetime.now(UTC)
    if override is None:
        return orjson.dumps({"phase": None, "set_at_ms": to_ms(now), "by": by})
    return orjson.dumps(
        {
            "phase": override.phase.value,
            "until_ms": to_ms(override.until),
            "set_at_ms": to_ms(override.set_at or now),
            "by": by,
        }
    )


def parse_override(raw: bytes | None) -> Override | None:
    """The override a ``control.phase`` record (key ``override``) sets; None for a clear,
    and for a malformed record (logged: the calendar rules, never a crash)."""
    try:
        body = orjson.loads(raw or b"")
        if body.get("phase") is None:
            return None
        return Override(
            Phase(body["phase"]),
            _from_ms(int(body["until_ms"])),
            _from_ms(int(body.get("set_at_ms", 0))),
        )
    except (orjson.JSONDecodeError, AttributeError, KeyError, ValueError, TypeError) as exc:
        log.warning("override_malformed", error=str(exc), raw=(raw or b"")[:200])
        return None


async def read_latest(
    bootstrap_servers: str | Sequence[str],
    topic: str,
    kafka_options: Mapping[str, Any] | None = None,
    timeout_s: float = 15.0,
) -> dict[bytes, tuple[bytes | None, dict[str, str]]]:
    """The latest value (and headers) per key of a one-partition topic, read to its end."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        **(kafka_options or {}),
        group_id=None,
        enable_auto_commit=False,
        request_timeout_ms=int(timeout_s * 1000),
    )
    latest: dict[bytes, tuple[bytes | None, dict[str, str]]] = {}
    try:
        async with asyncio.timeout(timeout_s):
            await consumer.start()
            if topic not in await consumer.topics():
                return latest  # nothing was ever written
            tp = TopicPartition(topic, 0)
            consumer.assign([tp])
            await consumer.seek_to_beginning(tp)
            end = (await consumer.end_offsets([tp]))[tp]
            while await consumer.position(tp) < end:
                batch = await consumer.getmany(tp, timeout_ms=500)
                for message in batch.get(tp, []):
                    if message.key is not None:
                        headers = {k: v.decode("utf-8", "replace") for k, v in message.headers}
                        latest[message.key] = (message.value, headers)
    except (KafkaError, TimeoutError) as exc:
        raise ClockError(f"cannot read {topic} from Kafka: {exc!r}") from exc
    finally:
        with contextlib.suppress(KafkaError):
            await consumer.stop()
    return latest


class OverrideLog:
    """``warmfleet phase set|clear|show``: the override in ``control.phase``."""

    def __init__(
        self,
        bootstrap_servers: str | Sequence[str],
        namespace: str = "",
        kafka_options: Mapping[str, Any] | None = None,
    ) -> None:
        self._bootstrap = bootstrap_servers
        self._kafka_options = dict(kafka_options or {})
        self._namespace = namespace
        self.topic = CONTROL_PHASE.named(namespace)

    async def _write(self, value: bytes) -> None:
        from topics.kafka import ensure_topics

        # created with the catalog's settings: an auto-created topic would not be compacted
        await ensure_topics(
            self._bootstrap, self._namespace, [CONTROL_PHASE], kafka_options=self._kafka_options
        )
        producer = AIOKafkaProducer(
            bootstrap_servers=self._bootstrap,
            **self._kafka_options,
            enable_idempotence=True,
            acks="all",
            request_timeout_ms=10_000,
        )
        try:
            async with asyncio.timeout(20):
                await producer.start()
                await producer.send_and_wait(self.topic, value, key=OVERRIDE_KEY)
        except (KafkaError, TimeoutError) as exc:
            raise ClockError(f"cannot write the phase override to {self.topic}: {exc!r}") from exc
        finally:
            with contextlib.suppress(KafkaError):
                await producer.stop()

    async def set(self, phase: Phase | str, duration_s: float, *, by: str = "") -> Override:
        if not duration_s > 0:
            raise ValueError(f"override duration must be positive, got {duration_s!r}")
        now = datetime.now(UTC)
        override = Override(Phase(phase), now + timedelta(seconds=duration_s), now)
        await self._write(override_body(override, by=by, now=now))
        return override

    async def clear(self, *, by: str = "") -> bool:
        """True when an override was active."""
        active = await self.get()
        await self._write(override_body(None, by=by))
        return active is not None

    async def get(self) -> Override | None:
        latest = await read_latest(self._bootstrap, self.topic, self._kafka_options)
        raw, _ = latest.get(OVERRIDE_KEY, (None, {}))
        override = parse_override(raw) if raw is not None else None
        return override if override is not None and override.active(datetime.now(UTC)) else None


class OverrideFollower:
    """The clock's view of the override: ``control.phase`` from its beginning, then followed.
    ``caught_up`` is set once the records present at start are read; Kafka errors are
    retried, a bad record is logged and ignored."""

    def __init__(
        self,
        bootstrap_servers: str | Sequence[str],
        topic: str,
        kafka_options: Mapping[str, Any] | None = None,
    ) -> None:
        self._bootstrap, self.topic = bootstrap_servers, topic
        self._kafka_options = dict(kafka_options or {})
        self.latest: Override | None = None
        self.caught_up = asyncio.Event()

    def current(self, now: datetime | None = None) -> Override | None:
        ov = self.latest
        return ov if ov is not None and ov.active(now or datetime.now(UTC)) else None

    async def run(self) -> None:
        tp = TopicPartition(self.topic, 0)
        while True:
            consumer = AIOKafkaConsumer(
                bootstrap_servers=self._bootstrap,
                **self._kafka_options,
                group_id=None,
                enable_auto_commit=False,
            )
            try:
                await consumer.start()
                consumer.assign([tp])
                await consumer.seek_to_beginning(tp)
                end = (await consumer.end_offsets([tp]))[tp]
                if end == 0:
                    self.caught_up.set()
                while True:
                    batch = await consumer.getmany(tp, timeout_ms=500)
                    for message in batch.get(tp, []):
                        if message.key == OVERRIDE_KEY:
                            self.latest = parse_override(message.value)
                            log.info("override_seen", phase=_phase_of(self.latest),
                                     until=_until_of(self.latest))  # fmt: skip
                    if not self.caught_up.is_set() and await consumer.position(tp) >= end:
                        self.caught_up.set()
            except asyncio.CancelledError:
                raise
            except KafkaError as exc:
                log.warning("override_follow_failed", topic=self.topic, error=str(exc))
                await asyncio.sleep(1.0)
            finally:
                with contextlib.suppress(KafkaError):
                    await consumer.stop()


def _phase_of(ov: Override | None) -> str | None:
    return None if ov is None else ov.phase.value


def _until_of(ov: Override | None) -> str | None:
    return None if ov is None else ov.until.isoformat()
