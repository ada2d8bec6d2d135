"""The dead-letter topic: events that cannot be processed, kept with the reason and the
original bytes (base64, ``DeadLetter.payload_b64``) so they can be inspected and replayed.
The agent carries on."""

from __future__ import annotations

import base64

import structlog
from prometheus_client import Counter

from topics import now_ms
from topics.records import DEAD_LETTER_PAYLOAD_MAX, DeadLetter

log = structlog.get_logger(__name__)

DEADLETTERS = Counter(
    "warmfleet_agent_deadletter_total", "Events sent to the dead-letter topic", ["reason"]
)


def dead_letter(
    *,
    source_topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    payload: bytes | None,
    reason: str,
    at_ms: int | None = None,
) -> DeadLetter:
    return DeadLetter(
        source_topic=source_topic,
        partition=partition,
        offset=offset,
        reason=reason,
        key=None if key is None else key.decode("utf-8", "replace")[:1024],
        payload_b64=base64.b64encode((payload or b"")[:DEAD_LETTER_PAYLOAD_MAX]).decode("ascii"),
        at_ms=now_ms() if at_ms is None else at_ms,
        payload_bytes=len(payload or b""),
    )


def count_dead_letter(letter: DeadLetter, kind: str) -> None:
    """Count and log ``letter`` (``kind`` labels the metric); the caller publishes it."""
    DEADLETTERS.labels(kind).inc()
    log.warning(
        "event_dead_lettered",
        source_topic=letter.source_topic,
        partition=letter.partition,
        offset=letter.offset,
        reason=letter.reason,
    )
