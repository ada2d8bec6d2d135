"""Creating warmfleet's topics for a namespace with the catalog's partitions and config."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import structlog
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from topics import CATALOG, TopicSpec, topic_config

log = structlog.get_logger(__name__)


async def ensure_topics(
    bootstrap: str | Iterable[str],
    namespace: str = "",
    specs: Iterable[TopicSpec] = CATALOG,
    replication: int = 1,
    kafka_options: Mapping[str, Any] | None = None,
) -> list[str]:
    """Create the missing ones; returns the names created. Existing topics are left alone
    (a broker's auto-created topic would have the wrong partition count, so create first)."""
    servers = bootstrap if isinstance(bootstrap, str) else ",".join(bootstrap)
    admin = AIOKafkaAdminClient(bootstrap_servers=servers, **(kafka_options or {}))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [
            NewTopic(s.named(namespace), s.partitions, replication, topic_configs=topic_config(s))
            for s in specs
            if s.named(namespace) not in existing
        ]
        created = []
        for topic in wanted:
            try:
                await admin.create_topics([topic])
                created.append(topic.name)
            except TopicAlreadyExistsError:
                pass
        if created:
            log.info("topics_created", topics=created)
        return created
    finally:
        await admin.close()


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
    servers = bootstrap if isinstance(bootstrap, str) else ",".join(bootstrap)
    admin = AIOKafkaAdminClient(bootstrap_servers=servers, **(kafka_options or {}))
    await admin.start()
    try:
        doomed = sorted(t for t in await admin.list_topics() if t.startswith(wanted))
        for start in range(0, len(doomed), 100):
            await admin.delete_topics(doomed[start : start + 100])
        return doomed
    finally:
        await admin.close()
