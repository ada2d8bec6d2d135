"""Coverage at every transition (issue 12, defect 4), simulated: a key warmed under an
interval I and then under a longer I' is never cold before its next warm.

The overview is warmed on the agents' own timer (a snapshot when ``due``, every 0.5 s tick);
tickers by the clock's jobs. Each write's L3 TTL comes from ``TTLPolicy.ttl_for(...,
warm_interval=<the follower's TTL interval>)``. Time is simulated; the rules are the real
ones (``IntervalHistory``, ``plan_firings``, ``TTLPolicy``).
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from schedules import DEFAULT_PATH, Override, Phase, load_config, plan_firings
from schedules._intervals import IntervalHistory
from tiers._ttl import TTLPolicy

TICK_S = 0.5  # the overview agent's timer (workers/agents/_overview.py)
NY = ZoneInfo("America/New_York")
CONFIG = load_config(DEFAULT_PATH)


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def overview_writes(
    old: float,
    new: float,
    volatility: float,
    *,
    due: Callable[[IntervalHistory, float | None], bool],
    ttl_interval: Callable[[IntervalHistory], float],
) -> tuple[list[tuple[float, float]], float]:
    """(write time, expiry) of ``overview:all`` around a change old -> new at ``change``."""
    clock, policy = Clock(), TTLPolicy(rng=random.Random(7))
    history = IntervalHistory({"overview": old, "tickers": old}, clock=clock)
    change = 5 * old + 3.7  # not on a tick, not on a write
    writes: list[tuple[float, float]] = []
    last: float | None = None
    while clock.t < change + 3 * new:
        if clock.t >= change:
            history.update({"overview": new, "tickers": new})
        if due(history, last):
            ttl = policy.ttl_for(
                "overview", "l3", volatility=volatility, warm_interval=ttl_interval(history)
            )
            writes.append((clock.t, clock.t + ttl))
            last = clock.t
        clock.t += TICK_S
    return writes, change


def fixed(history: IntervalHistory, last: float | None) -> bool:
    return last is None or history.due("overview", last)


def cold_gaps(writes: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Spans in which no copy was alive: (expired at, next written at)."""
    return [(exp, nxt) for (_, exp), (nxt, _) in itertools.pairwise(writes) if nxt > exp]


CHANGES = [(15.0, 60.0), (300.0, 600.0), (60.0, 120.0), (60.0, 15.0), (600.0, 15.0)]


@pytest.mark.parametrize(("old", "new"), CHANGES)
@pytest.mark.parametrize("volatility", [0.0, 0.04, 0.2])
def test_the_overview_stays_warm_through_the_first_warm_of_the_new_phase(
    old: float, new: float, volatility: float
) -> None:
    writes, change = overview_writes(
        old, new, volatility, due=fixed, ttl_interval=lambda h: h.ttl_interval("overview")
    )
    after = [t for t, _ in writes if t >= change]
    assert len(after) >= 2  # through the first warms of the new phase
    assert cold_gaps(writes) == []
    if new > old:  # once more on the old cadence, then the new one
        assert after[0] - max(t for t, _ in writes if t < change) <= old + TICK_S
        assert after[1] - after[0] == pytest.approx(new, abs=TICK_S)


@pytest.mark.parametrize(("old", "new"), [(15.0, 60.0), (300.0, 600.0)])
def test_the_rule_before_the_fix_leaves_the_overview_cold(old: float, new: float) -> None:
    """What main did (the next snapshot one *current* interval after the last, its TTL for the
    current interval): the overview expires before the first warm of the new phase — the
    404 for >= 23 s after 15 s -> 60 s, and overview:all after a boost release."""

    def current_interval(history: IntervalHistory, last: float | None) -> bool:
        return last is None or history._clock() - last >= history.interval("overview")

    writes, _ = overview_writes(
        old, new, 0.2, due=current_interval, ttl_interval=lambda h: h.interval("overview")
    )
    gaps = cold_gaps(writes)
    assert gaps and max(nxt - exp for exp, nxt in gaps) >= 20


@pytest.mark.parametrize("volatility", [0.0, 0.2])
def test_a_ticker_stays_warm_across_15_s_to_60_s(volatility: float) -> None:
    """The clock's jobs under an override that ends (market hours held in pre-market: 15 s ->
    60 s); the agents write each job's tickers 0.5 s after it is issued, with the follower's
    TTL interval, the follower hearing of the change 0.2 s after it."""
    t0 = datetime(2026, 12, 1, 7, 0, tzinfo=NY)  # pre-market
    change = t0 + timedelta(minutes=10)
    firings = [
        f
        for f in plan_firings(
            CONFIG,
            t0,
            t0 + timedelta(minutes=20),
            overrides=[Override(Phase.MARKET_HOURS, change, t0)],
        )
        if (f.exchange, f.data_type.value) == ("binance", "tickers")
    ]
    assert {f.interval_s for f in firings} == {15.0, 60.0}
    clock, policy = Clock(), TTLPolicy(rng=random.Random(7))
    history = IntervalHistory({"tickers": 15.0}, clock=clock)
    heard = (change - t0).total_seconds() + 0.2
    writes = []
    for f in firings:
        clock.t = (f.at - t0).total_seconds() + 0.5
        if clock.t >= heard:
            history.update({"tickers": 60.0})
        ttl = policy.ttl_for(
            "tickers", "l3", volatility=volatility, warm_interval=history.ttl_interval("tickers")
        )
        writes.append((clock.t, clock.t + ttl))
    assert cold_gaps(writes) == []
