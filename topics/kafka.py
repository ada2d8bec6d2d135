"""Kafka plumbing every process shares: topics created with their catalog settings, the one
idempotent ``acks=all`` producer, and dropping a test namespace. Kafka's own errors are
translated here into ``BrokerUnavailable``, so a caller reports a broker problem as one
(a poller that cannot reach Kafka says so, not that "the clock" failed).

A module of its own, not re-exported by ``topics``: importing the contracts does not import
aiokafka (the reader and the tiers never talk to Kafka)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from typing import Any

import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError

from topics.catalog import CATALOG, TopicSpec, topic_config
from topics.errors import BrokerUnavailable

log = structlog.get_logger(__name__)

__all__ = ["BrokerUnavailable", "drop_namespace", "ensure_topics", "start_producer"]

_TOPIC_ALREADY_EXISTS = 36
_REQUEST_TIMEOUT_MS = 10_000
_LISTED_POLLS = 50  # x 0.1 s


def _servers(bootstrap: str | Iterable[str]) -> str:
    return bootstrap if isinstance(bootstrap, str) else ",".join(bootstrap)


async def ensure_topics(
    bootstrap: str | Iterable[str],
    namespace: str = "",
    specs: Iterable[TopicSpec] = CATALOG,
    *,
    replication: int = 1,
    kafka_options: Mapping[str, Any] | None = None,
) -> list[str]:
    """Create the topics of ``specs`` that do not exist yet, with the catalog's partitions,
    compaction and retention (one auto-created by the broker would have the wrong partition
    count, and an auto-created ``control.phase`` would not be compacted). Returns the names
    created; safe to race with another process creating the same topics."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=_servers(bootstrap),
        request_timeout_ms=_REQUEST_TIMEOUT_MS,
        **(kafka_options or {}),
    )
    try:
        await admin.start()
        existing = set(await admin.list_topics())
        new = [
            NewTopic(s.named(namespace), s.partitions, replication, topic_configs=topic_config(s))
            for s in specs
            if s.named(namespace) not in existing
        ]
        if not new:
            return []
        response = await admin.create_topics(new)
        created = []
        for name, code, *_ in response.topic_errors:
            if code == 0:
                created.append(name)
            elif code != _TOPIC_ALREADY_EXISTS:
                raise BrokerUnavailable(f"cannot create topic {name}: Kafka error code {code}")
        if created:
            log.info("topics_created", topics=created)
            await _until_listed(admin, created)
        return created
    except KafkaError as exc:
        raise BrokerUnavailable(f"cannot reach Kafka to create topics: {exc!r}") from exc
    finally:
        await admin.close()


async def _until_listed(admin: AIOKafkaAdminClient, names: list[str]) -> None:
    # the controller acknowledges a creation before every broker serves the topic's
    # metadata; a producer or consumer started right away would first see it missing
    for _ in range(_LISTED_POLLS):
        if set(names) <= set(await admin.list_topics()):
            return
        await asyncio.sleep(0.1)


async def start_producer(
    bootstrap: str | Iterable[str],
    kafka_options: Mapping[str, Any] | None = None,
    **tuning: Any,
) -> AIOKafkaProducer:
    """A started idempotent producer with ``acks=all`` (DESIGN: every producer is one).
    ``kafka_options``: security settings (``Settings.kafka_client_options()``); ``tuning``:
    batching and timeouts (``linger_ms``, ``max_batch_size`` ...), which cannot turn off
    idempotence or acks."""
    producer = AIOKafkaProducer(
        bootstrap_servers=_servers(bootstrap),
        **(kafka_options or {}),
        **{"linger_ms": 5, "request_timeout_ms": _REQUEST_TIMEOUT_MS, **tuning},
        enable_idempotence=True,
        acks="all",
    )
    try:
        await producer.start()
    except KafkaError as exc:
        await producer.stop()
        raise BrokerUnavailable(f"cannot reach Kafka to produce: {exc!r}") from exc
    return producer


async def drop_namespace(
    bootstrap: str | Iterable[str],
    prefixes: Iterable[str],
    kafka_options: Mapping[str, Any] | None = None,
) -> list[str]:
    """Delete every topic whose name starts with one of ``prefixes`` (test and benchmark
    namespaces, Faust's internal topics and the changelogs included); returns the names."""
    wanted = tuple(p for p in prefixes if p)
    if not wanted:
        return []
    admin = AIOKafkaAdminClient(bootstrap_servers=_servers(bootstrap), **(kafka_options or {}))
    try:
        await admin.start()
        doomed = sorted(t for t in await admin.list_topics() if t.startswith(wanted))
        for start in range(0, len(doomed), 100):
            await admin.delete_topics(doomed[start : start + 100])
        return doomed
    except KafkaError as exc:
        raise BrokerUnavailable(f"cannot reach Kafka to drop topics: {exc!r}") from exc
    finally:
        await admin.close()
