"""Kafka plumbing for the clock: topics created with their catalog settings, one producer."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError

from schedules._control import ClockError
from topics import TopicSpec, topic_config

log = structlog.get_logger(__name__)

_TOPIC_ALREADY_EXISTS = 36


async def ensure_topics(
    bootstrap_servers: str | Sequence[str],
    specs: Sequence[TopicSpec],
    namespace: str = "",
    kafka_options: Mapping[str, Any] | None = None,
) -> list[str]:
    """Create the topics that do not exist yet (partitions, compaction and retention from the
    catalog: an auto-created ``control.phase`` would not be compacted). Returns the names
    created. Safe to race with another process creating the same topic."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap_servers, request_timeout_ms=10000, **(kafka_options or {})
    )
    try:
        await admin.start()
        existing = set(await admin.list_topics())
        missing = [s for s in specs if s.named(namespace) not in existing]
        if not missing:
            return []
        new = [
            NewTopic(s.named(namespace), s.partitions, 1, topic_configs=topic_config(s))
            for s in missing
        ]
        response = await admin.create_topics(new)
        created = []
        for name, code, *_ in response.topic_errors:
            if code == 0:
                created.append(name)
            elif code != _TOPIC_ALREADY_EXISTS:
                raise ClockError(f"cannot create topic {name}: Kafka error code {code}")
        if created:
            log.info("topics_created", topics=created)
        return created
    except KafkaError as exc:
        raise ClockError(f"cannot reach Kafka to create topics: {exc}") from exc
    finally:
        await admin.close()


def idempotent_producer(
    bootstrap_servers: str | Sequence[str], kafka_options: Mapping[str, Any] | None = None
) -> AIOKafkaProducer:
    """``kafka_options``: security settings (``Settings.kafka_client_options()``)."""
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers,
        **(kafka_options or {}),
        enable_idempotence=True,
        acks="all",
        linger_ms=5,
        request_timeout_ms=10000,
    )
