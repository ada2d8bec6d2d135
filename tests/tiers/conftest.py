"""Fixtures for the tier tests: caches over the shared stack, one test body over every
backend (aiocache's acceptance conftest is the model: a parametrized fixture with a marker
per backend, so ``-m redis`` runs the Redis half), and private Redis / Memcached servers
that a test may stop, freeze and restart without touching anyone else's."""

from __future__ import annotations

import contextlib
import random
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from tests.conftest import StackURLs
from tests.tiers._cluster import start_cluster, stop_cluster
from tiers import MemcachedTier, MemoryTier, MultiTierCache, RedisTier, Tier, TTLPolicy

BACKENDS = ("memory", "memcached", "redis")


def pytest_configure(config: pytest.Config) -> None:
    for backend in BACKENDS:
        config.addinivalue_line("markers", f"{backend}: a tier test run on the {backend} tier")


def backend_params(*backends: str) -> list[object]:
    return [pytest.param(b, marks=getattr(pytest.mark, b), id=b) for b in backends]


@pytest.fixture
def prefix(namespace: str) -> str:
    """A key prefix no other test uses (keys are ``{prefix}:v2:...``)."""
    return namespace.rstrip(".")


def steady_policy(seed: int = 1) -> TTLPolicy:
    """No jitter, so TTLs are exactly the policy's nominal values."""
    return TTLPolicy(jitter=0.0, rng=random.Random(seed))


@contextlib.asynccontextmanager
async def two_caches(
    make: Callable[[], MultiTierCache],
) -> AsyncIterator[tuple[MultiTierCache, MultiTierCache]]:
    """Two caches from ``make`` (two processes' worth), both started, so subscribed to
    their invalidation bus; closed after the block."""
    a, b = make(), make()
    try:
        assert await a.start() and await b.start()
        yield a, b
    finally:
        await a.close()
        await b.close()


def make_tier(backend: str, urls: StackURLs) -> Tier:
    if backend == "memory":
        return MemoryTier(1000)
    if backend == "memcached":
        return MemcachedTier([urls.memcached_addr])
    return RedisTier(urls.redis_url)


@pytest_asyncio.fixture(loop_scope="function", params=backend_params(*BACKENDS))
async def tier(request: pytest.FixtureRequest, stack_urls: StackURLs) -> AsyncIterator[Tier]:
    """One tier of each kind in turn: the ``Tier`` protocol's contract holds for all."""
    t = make_tier(request.param, stack_urls)
    yield t
    await t.close()


@pytest_asyncio.fixture(loop_scope="function", params=backend_params(*BACKENDS))
async def single_tier_cache(
    request: pytest.FixtureRequest, stack_urls: StackURLs
) -> AsyncIterator[MultiTierCache]:
    """A ``MultiTierCache`` over one backend alone, each in turn."""
    c = MultiTierCache(
        [make_tier(request.param, stack_urls)], steady_policy(), timeout_s=1.0,
        invalidation_channel=None,
    )  # fmt: skip
    yield c
    await c.close()


@pytest_asyncio.fixture(loop_scope="function")
async def cache(
    stack_urls: object, redis_url: str, memcached_addr: str
) -> AsyncIterator[MultiTierCache]:
    c = MultiTierCache.from_urls(
        "memory://?max_entries=1000",
        f"memcached://{memcached_addr}",
        redis_url,
        ttl_policy=steady_policy(),
        timeout_s=1.0,  # generous: the shared machine is busy; breakers are tested elsewhere
    )
    yield c
    await c.close()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[list[int], list[subprocess.Popen[bytes]]]]:
    """A private three-master Redis Cluster of this test's own, which it may take nodes of
    away: the surviving nodes keep serving their own slots while one master is down."""
    ports, procs = start_cluster(tmp_path, "--cluster-require-full-coverage", "no")
    try:
        yield ports, procs
    finally:
        stop_cluster(procs)
