from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tiers._ttl import LEVELS, TierLevel, TTLPolicy
from topics import ConfigError


def policy(jitter: float = 0.0, seed: int = 1) -> TTLPolicy:
    return TTLPolicy(jitter=jitter, rng=random.Random(seed))


def test_old_report_defaults_without_volatility() -> None:
    p = policy()
    assert [p.ttl_for("overview", lvl) for lvl in LEVELS] == [15.0, 30.0, 120.0]
    assert [p.ttl_for("something-else", lvl) for lvl in LEVELS] == [30.0, 60.0, 300.0]


def test_ttl_shrinks_as_volatility_rises() -> None:
    p = policy()
    calm, busy, wild = (p.ttl_for("tickers", "l2", volatility=v) for v in (0.0, 0.01, 0.04))
    assert calm > busy > wild
    assert busy == pytest.approx(30.0 * 0.7788, rel=1e-3)


def test_clamped_per_tier() -> None:
    p = policy()
    assert p.ttl_for("tickers", "l1", volatility=10.0) == 1.0
    assert p.ttl_for("candles", "l1", access_weight=100.0) == 60.0


def test_jitter_stays_within_ten_percent_and_varies() -> None:
    p = policy(jitter=0.1, seed=7)
    values = {p.ttl_for("tickers", "l3") for _ in range(200)}
    assert len(values) > 100
    assert min(values) >= 108.0 and max(values) <= 132.0


def test_weekend_interval_is_covered_by_the_deepest_tier() -> None:
    p = policy()
    ttl = p.ttl_for("tickers", "l3", warm_interval=600.0)
    assert ttl >= 600.0 + 150.0  # the old design's 300 s L3 would go cold between warms
    # coverage applies to the deepest tier only
    assert p.ttl_for("tickers", "l2", warm_interval=600.0) == 30.0
    assert p.ttls("tickers", (TierLevel.L1, TierLevel.L2), warm_interval=600.0)[TierLevel.L2] >= 750


@given(
    volatility=st.floats(min_value=0, max_value=5, allow_nan=False),
    interval=st.sampled_from([15.0, 60.0, 120.0, 300.0, 600.0]),
    weight=st.floats(min_value=0.01, max_value=100),
    seed=st.integers(0, 2**32 - 1),
    data_type=st.sampled_from(["tickers", "books", "candles", "overview", "signals", "x"]),
)
def test_invariants(
    volatility: float, interval: float, weight: float, seed: int, data_type: str
) -> None:
    p = TTLPolicy(rng=random.Random(seed))
    ttls = p.ttls(data_type, volatility=volatility, warm_interval=interval, access_weight=weight)
    values = [ttls[lvl] for lvl in LEVELS]
    assert values == sorted(values)
    assert values[-1] >= interval + max(10.0, interval * 0.25)
    assert all(v >= 0.9 for v in values)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"k": -1}, "ttl.k"),
        ({"jitter": 0.7}, "ttl.jitter"),
        ({"base_s": {"tickers": (1, 0, 2)}}, "ttl.base.tickers"),
    ],
)
def test_bad_config_names_the_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        TTLPolicy(**kwargs)  # type: ignore[arg-type]
