"""Issue 12, defect 3: the first write batch after a server restart must land. A pooled
connection that died with the server is found dead on the first use; the batch is sent
again once on a fresh connection instead of being lost."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from structlog.testing import capture_logs

from tests._servers import PrivateServer
from tests.tiers.conftest import steady_policy
from tiers import MultiTierCache, Write

pytestmark = pytest.mark.integration


def make_cache(url: str) -> MultiTierCache:
    return MultiTierCache.from_urls(
        url, ttl_policy=steady_policy(), timeout_s=2.0, write_timeout_s=2.0,
        breaker_failures=3, invalidation_channel=None,
    )  # fmt: skip


def batch(prefix: str, tag: str, as_of: int, n: int = 20) -> list[Write]:
    return [Write(f"{prefix}:v2:misc:value:1m:{tag}{i}", i, "default", as_of) for i in range(n)]


@pytest.mark.parametrize("kind", ["redis", "memcached"])
async def test_the_first_batch_after_a_restart_lands(
    kind: str, private_server: Callable[[str], PrivateServer], prefix: str
) -> None:
    server = private_server(kind)  # redis: --save '' (tests/_servers.py): it comes back empty
    cache = make_cache(server.url)
    name = cache.tiers[0].name
    try:
        first = await cache.set_many(batch(prefix, "a", 1))
        assert all(name in w for w in first)  # the pool now holds a live connection
        server.stop()
        server.start()  # same port, empty
        second = batch(prefix, "b", 2)
        written = await cache.set_many(second)
        assert [name in w for w in written] == [True] * len(second)
        hits = await cache.get_many([w.key for w in second])
        assert [h.value if h else None for h in hits] == list(range(len(second)))
        stats = cache.stats()[name]
        assert stats["errors"] == 0 and stats["breaker"] == "closed"
    finally:
        await cache.close()


@pytest.mark.parametrize("kind", ["redis", "memcached"])
async def test_a_write_that_still_fails_is_a_tier_failure_logged_as_a_warning(
    kind: str, private_server: Callable[[str], PrivateServer], prefix: str
) -> None:
    server = private_server(kind)
    cache = make_cache(server.url)
    name = cache.tiers[0].name
    try:
        await cache.set_many(batch(prefix, "a", 1))
        server.stop()  # and it stays away: the retry cannot help
        with capture_logs() as logs:
            for _ in range(3):
                with pytest.raises(Exception, match="all tiers"):
                    await cache.set_many(batch(prefix, "b", 2))
        failed = [e for e in logs if e["event"] == "tier_write_failed"]
        assert len(failed) == 3 and {e["log_level"] for e in failed} == {"warning"}
        assert all(e["tier"] == name and e["keys"] == 20 for e in failed)
        stats = cache.stats()[name]
        assert stats["errors"] == 3 and stats["breaker"] == "open"  # threshold 3
    finally:
        await cache.close()
