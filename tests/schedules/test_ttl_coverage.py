"""A week of warm jobs and TTLs leaves no gap in which a warmed key is cold.

Worst case per key: the warm at ``f_k`` is written at once, the next one lands only at its
deadline. The L3 TTL written at ``f_k`` must outlive that. The agents that write it know the
interval ``control.phase`` publishes for the data type (``published_intervals``: the longest
any exchange warms it at), not the WarmJob's own ``interval_s`` -- so that is the interval
these tests give ``TTLPolicy``, as the code does (``schedules/_plan.py``).
"""

from __future__ import annotations

import dataclasses
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
    PhaseConfig,
    deadline_s,
    load_config,
    plan_firings,
    published_intervals,
)
from tiers._ttl import TTLPolicy
from topics import key_for

NY = ZoneInfo("America/New_York")
CONFIG = load_config(DEFAULT_PATH)


def _published(config: PhaseConfig, firing: Firing) -> float:
    """The interval the agents cover when they write what ``firing`` warmed."""
    return published_intervals(config, firing.phase, firing.boost)[firing.data_type.value]


def _week(config: PhaseConfig = CONFIG) -> list[Firing]:
    from datetime import datetime

    # Thanksgiving week (a holiday, a 4-day weekend run) plus an override and a boost burst
    start = datetime(2026, 11, 23, tzinfo=NY)
    sat = datetime(2026, 11, 28, 12, tzinfo=NY)
    wed = datetime(2026, 11, 25, 15, 50, tzinfo=NY)
    return plan_firings(
        config,
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


#: the packaged config, with one exchange whose floor is above a market-hours interval:
#: its jobs run slower than the calendar says, and the TTL must follow the slower one
SLOW_FLOOR = dataclasses.replace(
    CONFIG,
    exchanges=tuple(
        dataclasses.replace(ex, min_interval_s=40.0) if ex.name == "okx" else ex
        for ex in CONFIG.exchanges
    ),
)


@pytest.mark.parametrize("config", [CONFIG, SLOW_FLOOR], ids=["packaged", "slow_floor"])
@pytest.mark.parametrize("volatility", [0.0, 0.01, 0.04, 0.5])
def test_a_week_of_warms_never_leaves_a_warmed_key_cold(
    volatility: float, config: PhaseConfig
) -> None:
    policy = TTLPolicy(rng=random.Random(7))
    pairs = _gaps(_week(config))
    phases = {a.phase for _, a, _ in pairs}
    assert phases == set(Phase)  # weekend 600 s and 1200 s intervals included
    for key, a, b in pairs:
        cover = _published(config, a)
        ttl = policy.ttl_for(a.data_type, "l3", volatility=volatility, warm_interval=cover)
        latest_next_write = (b.at - a.at).total_seconds() + deadline_s(config, b.interval_s)
        assert ttl >= latest_next_write, (key, a, b, ttl)


def test_no_job_is_fired_under_a_longer_interval_than_control_phase_publishes() -> None:
    """What makes the rule above hold: the interval the agents cover (per data type, one for
    every exchange) is never shorter than the interval any one job was fired under."""
    for firing in _week(SLOW_FLOOR):
        assert firing.interval_s <= _published(SLOW_FLOOR, firing), firing


def test_without_the_warm_interval_weekend_keys_would_go_cold() -> None:
    """The old design's failure, so the test above can fail: a 300 s L3 TTL, 600 s warms."""
    policy = TTLPolicy(rng=random.Random(7))
    cold = [
        (key, a)
        for key, a, b in _gaps(_week())
        if policy.ttl_for(a.data_type, "l3", volatility=0.0) < (b.at - a.at).total_seconds()
    ]
    assert cold and {a.phase for _, a in cold} >= {Phase.WEEKEND}
