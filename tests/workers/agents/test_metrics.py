"""``observe_many`` is ``Histogram.observe`` one by one, in one increment per bucket."""

from __future__ import annotations

import random

import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from workers.agents._metrics import TIER_LATENCY, observe_many


def fresh(registry: CollectorRegistry) -> Histogram:
    return Histogram(
        "latency_seconds", "test", buckets=TIER_LATENCY._upper_bounds[:-1], registry=registry
    )


def exposition(registry: CollectorRegistry) -> dict[str, float]:
    samples: dict[str, float] = {}
    for line in generate_latest(registry).decode().splitlines():
        if line and not line.startswith("#") and "_created" not in line:
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return samples


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_observe_many_gives_what_observe_gives(seed: int) -> None:
    rng = random.Random(seed)
    bounds = list(TIER_LATENCY._upper_bounds[:-1])
    # on every bound (observe's ``<=``), just beside it, in between, beyond the last, negative
    amounts = [*bounds, *(b * (1 + 1e-12) for b in bounds), *(b * (1 - 1e-12) for b in bounds)]
    amounts += [rng.uniform(-0.01, 40.0) for _ in range(5_000)] + [0.0, 1e9, -5.0]
    rng.shuffle(amounts)
    one_by_one, batched = CollectorRegistry(), CollectorRegistry()
    single, many = fresh(one_by_one), fresh(batched)
    for amount in amounts:
        single.observe(amount)
    observe_many(many, amounts[:2_000])
    observe_many(many, amounts[2_000:])
    observe_many(many, [])
    expected, got = exposition(one_by_one), exposition(batched)
    assert expected.keys() == got.keys()
    for name, value in expected.items():
        if name.endswith("_sum"):
            assert got[name] == pytest.approx(value, rel=1e-9)
        else:
            assert got[name] == value, name
    assert got["latency_seconds_count"] == len(amounts)
