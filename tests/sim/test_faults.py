"""The fault registry on its own: validation, count, rate, clear, aliases."""

from __future__ import annotations

import pytest

from sim import FaultError, FaultRegistry, make_fault


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ({"endpoint": "binance", "kind": "404"}, "kind must be one of"),
        ({"endpoint": "/nope", "kind": "429"}, "endpoint must be a path under /api"),
        ({"endpoint": "okx", "kind": "429", "count": 0}, "count must be a positive integer"),
        ({"endpoint": "okx", "kind": "429", "rate": 1.5}, "rate must be a probability"),
        ({"endpoint": "okx", "kind": "429", "count": 1, "rate": 0.5}, "count or rate"),
        ({"endpoint": "okx", "kind": "slow", "delay_s": -1}, "delay_s"),
        ([1, 2], "JSON object"),
    ],
)
def test_bad_fault_specs_are_refused_with_the_reason(spec: object, problem: str) -> None:
    with pytest.raises(FaultError, match=problem):
        make_fault(spec)  # type: ignore[arg-type]


def test_count_fires_exactly_n_times_and_only_on_matching_paths() -> None:
    registry = FaultRegistry()
    registry.add(make_fault({"endpoint": "/api/v3/klines", "kind": "500", "count": 2}), 0)
    assert registry.draw("/api/v3/depth") is None
    assert registry.draw("/api/v3/klinesX") is None  # a prefix of a path segment is no match
    assert [registry.draw("/api/v3/klines") is not None for _ in range(3)] == [True, True, False]
    assert registry.list() == []


def test_aliases_cover_a_whole_venue() -> None:
    registry = FaultRegistry()
    registry.add(make_fault({"endpoint": "okx", "kind": "503"}), 0)
    assert registry.draw("/api/v5/market/tickers") is not None
    assert registry.draw("/api/v3/ticker/24hr") is None
    assert registry.draw("/api/v5/public/time") is not None  # no count: until cleared
    assert registry.clear("okx") == 1
    assert registry.draw("/api/v5/market/tickers") is None


def test_rate_fires_about_that_often_and_repeats_for_a_seed() -> None:
    def run(seed: int) -> list[bool]:
        registry = FaultRegistry(seed)
        registry.add(make_fault({"endpoint": "all", "kind": "429", "rate": 0.25}), 0)
        return [registry.draw("/api/v3/depth") is not None for _ in range(2000)]

    first = run(1)
    assert 400 < sum(first) < 600
    assert run(1) == first
    assert run(2) != first


def test_stale_records_when_prices_froze_and_is_never_drawn() -> None:
    registry = FaultRegistry()
    registry.add(make_fault({"endpoint": "binance", "kind": "stale"}), now_ms=123_000)
    assert registry.frozen_at("/api/v3/ticker/24hr") == 123_000
    assert registry.frozen_at("/api/v5/market/tickers") is None
    assert registry.draw("/api/v3/ticker/24hr") is None
