"""A week of warm jobs and TTLs leaves no gap in which a warmed key is cold.

Worst case per key: the warm at ``f_k`` is written at once, the next one lands only at its
deadline. The L3 TTL written at ``f_k`` (``TTLPolicy.ttl_for(..., warm_interval=
f_k.interval_s)``, the interval the clock publishes in the WarmJob) must outlive that.
"""

from __future__ import annotations

import itertools
import random
from collections import defaultdict
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest

from schedules import (
    DEFAULT_PATH,
    Firing,
    Override,
    Phase,
    deadline_s,
    load_config,
    plan_firings,
)
from tiers._ttl import TTLPolicy
from topics import key_for

NY = ZoneInfo("America/New_York")
CONFIG = load_config(DEFAULT_PATH)


def _week() -> list[Firing]:
    from datetime import datetime

    # Thanksgiving week (a holiday, a 4-day weekend run) plus an override and a boost burst
    start = datetime(2026, 11, 23, tzinfo=NY)
    sat = datetime(2026, 11, 28, 12, tzinfo=NY)
    wed = datetime(2026, 11, 25, 15, 50, tzinfo=NY)
    return plan_firings(
        CONFIG,
        start,
        start + timedelta(days=7),
        overrides=[Override(Phase.MARKET_HOURS, sat + timedelta(minutes=20), sat)],
        boosts=[(wed, 0.5), (wed + timedelta(minutes=40), 1.0)],
    )


def _gaps(firings: list[Firing]) -> list[tuple[str, Firing, Firing]]:
    keyed: dict[str, list[Firing]] = defaultdict(list)
    for f in firings:
        keyed[key_for(f.data_type, f.exchange, "BTC/USDT")].append(f)
    return [(k, a, b) for k, seq in keyed.items() for a, b in itertools.pairwise(seq)]


@pytest.mark.parametrize("volatility", [0.0, 0.01, 0.04, 0.5])
def test_a_week_of_warms_never_leaves_a_warmed_key_cold(volatility: float) -> None:
    policy = TTLPolicy(rng=random.Random(7))
    pairs = _gaps(_week())
    phases = {a.phase for _, a, _ in pairs}
    assert phases == set(Phase)  # weekend 600 s and 1200 s intervals included
    for key, a, b in pairs:
        ttl = policy.ttl_for(a.data_type, "l3", volatility=volatility, warm_interval=a.interval_s)
        latest_next_write = (b.at - a.at).total_seconds() + deadline_s(CONFIG, b.interval_s)
        assert ttl >= latest_next_write, (key, a, b, ttl)


def test_without_the_warm_interval_weekend_keys_would_go_cold() -> None:
    """The old design's failure, so the test above can fail: a 300 s L3 TTL, 600 s warms."""
    policy = TTLPolicy(rng=random.Random(7))
    cold = [
        (key, a)
        for key, a, b in _gaps(_week())
        if policy.ttl_for(a.data_type, "l3", volatility=0.0) < (b.at - a.at).total_seconds()
    ]
    assert cold and {a.phase for _, a in cold} >= {Phase.WEEKEND}
