"""Prometheus metrics and logs: what operators see when a tier misbehaves."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from prometheus_client import REGISTRY, generate_latest
from structlog.testing import capture_logs

from tests._servers import PrivateServer
from tiers import MultiTierCache


def sample(name: str, tier: str) -> float:
    value = REGISTRY.get_sample_value(name, {"tier": tier})
    return 0.0 if value is None else value


async def test_counters_are_exported_and_survive_close(prefix: str) -> None:
    before_hits = sample("warmfleet_cache_hits_total", "memory")
    before_misses = sample("warmfleet_cache_misses_total", "memory")
    cache = MultiTierCache.from_urls("memory://")
    key = f"{prefix}:v2:misc:value:1m:m"
    await cache.set(key, 1, data_type="default", as_of=1)
    for _ in range(5):
        assert await cache.get(key) is not None
    assert await cache.get(key + "x") is None
    assert sample("warmfleet_cache_hits_total", "memory") == before_hits + 5
    assert sample("warmfleet_cache_misses_total", "memory") == before_misses + 1
    await cache.close()  # a closed cache's counts stay in the totals: counters never go back
    assert sample("warmfleet_cache_hits_total", "memory") == before_hits + 5
    text = generate_latest(REGISTRY).decode()
    for name in (
        "warmfleet_cache_hits_total", "warmfleet_cache_misses_total",
        "warmfleet_cache_errors_total", "warmfleet_cache_promotions_total",
        "warmfleet_cache_breaker_open",
    ):  # fmt: skip
        assert f'{name}{{tier="memory"}}' in text


@pytest.mark.integration
async def test_breaker_state_latency_and_errors_per_tier(
    private_server: Callable[[str], PrivateServer], prefix: str
) -> None:
    rd = private_server("redis")
    cache = MultiTierCache.from_urls(
        rd.url, timeout_s=0.5, breaker_failures=2, breaker_cooldown_s=30.0
    )
    key = f"{prefix}:v2:misc:value:1m:b"
    try:
        await cache.set(key, 1, data_type="default", as_of=1)
        assert await cache.get(key) is not None
        assert sample("warmfleet_cache_latency_seconds_count", "redis") >= 2
        assert sample("warmfleet_cache_breaker_open", "redis") == 0
        errors_before = sample("warmfleet_cache_errors_total", "redis")
        rd.stop()
        with capture_logs() as logs:
            for _ in range(10):
                assert await cache.get(key) is None  # never raises
        opened = [e for e in logs if e["event"] == "tier_breaker_open"]
        assert len(opened) == 1 and opened[0]["tier"] == "redis"  # logged once, not per call
        assert sample("warmfleet_cache_breaker_open", "redis") == 1
        assert sample("warmfleet_cache_errors_total", "redis") == errors_before + 2
        stats = cache.stats()["redis"]
        assert stats["skipped"] == 8 and stats["breaker"] == "open"
        assert stats["latency_mean_ms"] is not None and stats["latency_p99_ms"] is not None
    finally:
        await cache.close()
