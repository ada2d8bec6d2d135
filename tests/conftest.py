"""Session fixtures over the real local stack (Kafka, Redis, Memcached on 127.0.0.1).

When the suite runs under `warmfleet stack exec` (as `make test` does), the stack's URLs
come from the environment. Otherwise the fixture starts the stack (or reuses a running
one) and stops it at the end only if it started it. Every test gets its own namespace
for topic names, consumer group and cache key prefix, so tests cannot see each other.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from stack import StackConfig, down, status, up
from tests._servers import private_server  # a test's own Redis/Memcached (tier/reader tests)


@dataclass(frozen=True)
class StackURLs:
    """The stack's addresses, each as the fixtures and the settings want it."""

    kafka_bootstrap: str  # host:port
    kafka_url: str  # kafka://host:port
    redis_url: str  # redis://127.0.0.1:6379/0
    memcached_addr: str  # host:port
    memcached_url: str  # memcached://host:port

    @classmethod
    def of(cls, kafka: str, redis: str, memcached: str) -> StackURLs:
        """From Kafka's and Memcached's addresses (``scheme://`` optional) and Redis' URL."""
        bootstrap, addr = _strip(kafka, "kafka"), _strip(memcached, "memcached")
        return cls(bootstrap, f"kafka://{bootstrap}", redis, addr, f"memcached://{addr}")


#: namespaces handed out in this session; their topics are deleted at the end, so a stack
#: that outlives many runs does not pile up thousands of partitions
_NAMESPACES: list[str] = []


def _drop_namespaces(bootstrap: str) -> None:
    from topics.kafka import drop_namespace

    def run() -> None:
        try:
            dropped = asyncio.run(drop_namespace(bootstrap, _NAMESPACES))
            print(f"\ndeleted {len(dropped)} test topics", file=sys.stderr)
        except Exception as exc:  # cleanup only: never fail the session for it
            print(f"\ntest topics not deleted: {exc!r}", file=sys.stderr)

    worker = threading.Thread(target=run)  # outside any event loop of the session
    worker.start()
    worker.join(120)


def _strip(url: str, scheme: str) -> str:
    return url.split("://", 1)[1] if url.startswith(scheme + "://") else url


@pytest.fixture(scope="session")
def stack_urls() -> Iterator[StackURLs]:
    kafka = os.environ.get("WARMFLEET_KAFKA_URL")
    redis = os.environ.get("WARMFLEET_REDIS_URL")
    memcached = os.environ.get("WARMFLEET_MEMCACHED_URL")
    if kafka and redis and memcached:
        yield StackURLs.of(kafka, redis, memcached)
        _drop_namespaces(_strip(kafka, "kafka"))
        return
    cfg = StackConfig()
    was_running = status(cfg)["running"]
    info = up(cfg, lambda msg: print(msg, file=sys.stderr))
    try:
        yield StackURLs.of(info["kafka"], info["redis"], info["memcached"])
        _drop_namespaces(info["kafka"])
    finally:
        if not was_running:
            down(cfg, lambda msg: None)


@pytest.fixture
def namespace() -> str:
    """A per-test prefix for topic names, consumer groups and cache keys."""
    name = f"t{uuid.uuid4().hex[:10]}."
    _NAMESPACES.append(name)
    return name


@pytest.fixture
def kafka_bootstrap(stack_urls: StackURLs) -> str:
    return stack_urls.kafka_bootstrap


@pytest.fixture
def redis_url(stack_urls: StackURLs) -> str:
    return stack_urls.redis_url


@pytest.fixture
def memcached_addr(stack_urls: StackURLs) -> str:
    return stack_urls.memcached_addr


__all__ = ["StackURLs", "private_server"]
