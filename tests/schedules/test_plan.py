"""The scheduling rule under a controllable clock: simulated weeks, overrides, boost, floors."""

from __future__ import annotations

import dataclasses
import itertools
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from schedules import (
    DEFAULT_PATH,
    Boost,
    Firing,
    Override,
    Phase,
    PhaseConfig,
    boost_active,
    load_config,
    next_due,
    plan_firings,
    warm_job,
)
from topics import DataType

NY = ZoneInfo("America/New_York")
CONFIG = load_config(DEFAULT_PATH)
TICKER_INTERVALS = {
    Phase.MARKET_HOURS: 15,
    Phase.PRE_MARKET: 60,
    Phase.AFTER_HOURS: 120,
    Phase.OVERNIGHT: 300,
    Phase.WEEKEND: 600,
}


def ny(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, s, tzinfo=NY)


def counts(firings: list[Firing]) -> Counter[tuple[str, str, str]]:
    return Counter((f.exchange, f.data_type.value, f.phase.value) for f in firings)


def expected(hours: dict[Phase, float]) -> dict[tuple[str, str, str], int]:
    """Firings per (exchange, data type, phase) when each phase lasts ``hours`` in total and
    every boundary falls on every interval's grid (true for the default calendar)."""
    out = {}
    for ex in CONFIG.exchanges:
        for dt in ex.data_types:
            for phase, h in hours.items():
                out[(ex.name, dt.value, phase.value)] = round(
                    h * 3600 / CONFIG.calendar.interval(phase, dt)
                )
    return out


@pytest.mark.parametrize(
    ("start", "hours"),
    [
        # an ordinary week: 5 x (5.5 + 6.5 + 4) h of sessions, 4 nights, 56 h of weekend
        (
            ny(2026, 3, 16),
            {
                Phase.PRE_MARKET: 27.5,
                Phase.MARKET_HOURS: 32.5,
                Phase.AFTER_HOURS: 20,
                Phase.OVERNIGHT: 32,
                Phase.WEEKEND: 56,
            },
        ),
        # the week clocks spring forward (Sun 2026-03-08): the weekend loses an hour
        (
            ny(2026, 3, 2),
            {
                Phase.PRE_MARKET: 27.5,
                Phase.MARKET_HOURS: 32.5,
                Phase.AFTER_HOURS: 20,
                Phase.OVERNIGHT: 32,
                Phase.WEEKEND: 55,
            },
        ),
        # Thanksgiving week: Thu closed, so only Mon-Tue and Tue-Wed nights are overnight
        (
            ny(2026, 11, 23),
            {
                Phase.PRE_MARKET: 22,
                Phase.MARKET_HOURS: 26,
                Phase.AFTER_HOURS: 16,
                Phase.OVERNIGHT: 16,
                Phase.WEEKEND: 88,
            },
        ),
    ],
    ids=["ordinary", "dst-spring", "thanksgiving"],
)
def test_a_simulated_week_produces_the_expected_jobs_per_phase(
    start: datetime, hours: dict[Phase, float]
) -> None:
    end = datetime.combine(start.date() + timedelta(days=7), start.timetz())
    firings = plan_firings(CONFIG, start, end)
    assert dict(counts(firings)) == expected(hours)
    tickers = Counter(
        f.phase for f in firings if (f.exchange, f.data_type) == ("binance", "tickers")
    )
    assert tickers[Phase.MARKET_HOURS] == round(hours[Phase.MARKET_HOURS] * 3600 / 15)
    for f in firings:  # each firing carries the calendar's phase and interval at its instant
        assert f.phase is CONFIG.calendar.phase_at(f.at)
        assert f.interval_s == CONFIG.calendar.interval(f.phase, f.data_type)
        assert f.source == "calendar" and f.boost == 1.0


def by_key(firings: list[Firing]) -> dict[tuple[str, DataType], list[Firing]]:
    out: dict[tuple[str, DataType], list[Firing]] = defaultdict(list)
    for f in firings:
        out[(f.exchange, f.data_type)].append(f)
    return out


def test_no_key_waits_longer_than_its_published_interval_and_faster_phases_start_at_once() -> None:
    start = ny(2026, 3, 16)
    end = start + timedelta(days=7)
    firings = plan_firings(CONFIG, start, end)
    keyed = by_key(firings)
    for seq in keyed.values():
        for a, b in itertools.pairwise(seq):
            assert b.at - a.at <= timedelta(seconds=a.interval_s)
    for t, phase in CONFIG.calendar.transitions(start, end):
        for (_exchange, dt), seq in keyed.items():
            first = next(f for f in seq if f.at >= t)
            assert first.phase is phase
            assert first.at - t <= timedelta(seconds=CONFIG.calendar.interval(phase, dt))


def test_unaligned_start_and_transition_keep_the_rule() -> None:
    start = ny(2026, 3, 18, 9, 29, 53)  # 7 s before the open, off every grid
    firings = [
        f
        for f in plan_firings(CONFIG, start, start + timedelta(minutes=2))
        if (f.exchange, f.data_type) == ("binance", DataType.TICKERS)
    ]
    at = [(f.at - start).total_seconds() for f in firings]
    # fires at start (pre-market, 60 s), then the open reschedules to min(53 + 60, 7 + 15)
    assert at[:3] == [0, 22, 37]
    assert [f.phase for f in firings[:2]] == [Phase.PRE_MARKET, Phase.MARKET_HOURS]


def test_an_override_holds_its_phase_until_it_expires() -> None:
    sat = ny(2026, 3, 21, 12)
    ov = Override(Phase.MARKET_HOURS, until=sat + timedelta(minutes=30), set_at=sat)
    firings = plan_firings(
        CONFIG, sat - timedelta(hours=1), sat + timedelta(hours=1), overrides=[ov]
    )
    tickers = [f for f in firings if (f.exchange, f.data_type) == ("okx", DataType.TICKERS)]
    held = [f for f in tickers if sat <= f.at < ov.until]
    assert len(held) == 30 * 60 // 15
    assert all(f.phase is Phase.MARKET_HOURS and f.source == "override" for f in held)
    assert all(f.interval_s == 15 for f in held)
    after = [f for f in tickers if f.at >= ov.until]
    assert after and all(f.phase is Phase.WEEKEND and f.source == "calendar" for f in after)
    assert after[0].at == ov.until  # the pending 15 s warm comes before the slower grid


def test_boost_tightens_intervals_but_never_below_the_exchange_floor() -> None:
    wed = ny(2026, 3, 18, 10)
    hour = [(wed, 0.5), (wed + timedelta(hours=1), 1.0)]
    firings = plan_firings(
        CONFIG, wed - timedelta(minutes=30), wed + timedelta(hours=2), boosts=hour
    )
    boosted = [
        f
        for f in firings
        if wed <= f.at < wed + timedelta(hours=1)
        and (f.exchange, f.data_type) == ("binance", DataType.TICKERS)
    ]
    assert {f.interval_s for f in boosted} == {7.5}
    assert len(boosted) == 3600 / 7.5
    floored = dataclasses.replace(
        CONFIG,
        exchanges=tuple(dataclasses.replace(ex, min_interval_s=10) for ex in CONFIG.exchanges),
    )
    firings = plan_firings(floored, wed, wed + timedelta(hours=1), boosts=[(wed, 0.5)])
    tickers = [f for f in firings if f.data_type is DataType.TICKERS]
    assert {f.interval_s for f in tickers} == {10}
    assert all(f.interval_s >= 10 for f in firings)


def test_next_due_moves_earlier_never_later() -> None:
    c = datetime(2026, 3, 18, 13, 30, tzinfo=UTC)
    assert next_due(c + timedelta(seconds=50), c, 15) == c + timedelta(seconds=15)  # faster
    assert next_due(c + timedelta(seconds=5), c, 120) == c + timedelta(seconds=5)  # slower
    assert next_due(c - timedelta(seconds=2), c, 15) == c  # overdue: now
    assert next_due(None, c, 15) == c  # a clock that starts fires at once


def test_boost_hysteresis_and_staleness() -> None:
    b = Boost(threshold=0.01, factor=0.5, release_ratio=0.8, stale_after_s=60)
    assert boost_active(b, False, 0.01, 0) is True
    assert boost_active(b, False, 0.009, 0) is False
    assert boost_active(b, True, 0.009, 0) is True  # held until below 0.008
    assert boost_active(b, True, 0.0079, 0) is False
    assert boost_active(b, True, 0.5, 61) is False  # stale
    assert boost_active(dataclasses.replace(b, enabled=False), False, 0.5, 0) is False
    assert boost_active(b, False, None, 0) is False


def test_warm_job_carries_deadline_symbols_and_interval() -> None:
    config = dataclasses.replace(
        CONFIG,
        exchanges=(
            dataclasses.replace(
                CONFIG.exchanges[0],
                symbols=("BTC/USDT",),
                symbols_by_type={DataType.BOOKS: ("ETH/USDT", "SOL/USDT")},
            ),
        ),
    )
    at = datetime(2026, 3, 18, 14, tzinfo=UTC)
    job = warm_job(config, Firing(at, "binance", DataType.BOOKS, Phase.MARKET_HOURS, 15.0), "j1")
    assert job.symbols == ["ETH/USDT", "SOL/USDT"] and job.interval_s == 15.0
    assert job.deadline_ms - job.issued_ms == 8000  # min(interval, deadline_s)
    job = warm_job(config, Firing(at, "binance", DataType.TICKERS, Phase.WEEKEND, 5.0), "j2")
    assert job.symbols == ["BTC/USDT"] and job.deadline_ms - job.issued_ms == 5000
    assert job.phase == "weekend" and job.issued_ms == int(at.timestamp() * 1000)


def test_plan_of_an_empty_config_is_refused_by_validation() -> None:
    with pytest.raises(ValueError, match=r"warm\.exchanges"):
        from schedules import parse_config

        parse_config({"phases": {"intervals": {p.value: 1 for p in Phase}}})
    assert isinstance(PhaseConfig().calendar.intervals_s[Phase.WEEKEND], float)
