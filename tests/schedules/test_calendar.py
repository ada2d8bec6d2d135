"""The phase rule: every boundary +-1 s, weekends, holidays, DST, next_transition."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from schedules import DEFAULT_PATH, Phase, PhaseCalendar, Sessions, load_config

NY = ZoneInfo("America/New_York")
CAL = load_config(DEFAULT_PATH).calendar
S = timedelta(seconds=1)


def ny(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, s, tzinfo=NY)


# Wednesday 2026-03-18, an ordinary trading day between ordinary trading days
@pytest.mark.parametrize(
    ("hh", "mm", "before", "after"),
    [
        (4, 0, Phase.OVERNIGHT, Phase.PRE_MARKET),
        (9, 30, Phase.PRE_MARKET, Phase.MARKET_HOURS),
        (16, 0, Phase.MARKET_HOURS, Phase.AFTER_HOURS),
        (20, 0, Phase.AFTER_HOURS, Phase.OVERNIGHT),
    ],
)
def test_every_session_boundary_plus_minus_one_second(
    hh: int, mm: int, before: Phase, after: Phase
) -> None:
    boundary = ny(2026, 3, 18, hh, mm)
    assert CAL.phase_at(boundary - S) is before
    assert CAL.phase_at(boundary) is after  # start inclusive
    assert CAL.phase_at(boundary + S) is after
    assert CAL.next_transition(boundary - S) == boundary.astimezone(UTC)


def test_midnight_between_trading_days_is_overnight() -> None:
    assert CAL.phase_at(ny(2026, 3, 18, 23, 59, 59)) is Phase.OVERNIGHT
    assert CAL.phase_at(ny(2026, 3, 19, 0, 0, 0)) is Phase.OVERNIGHT
    assert CAL.next_transition(ny(2026, 3, 18, 20)) == ny(2026, 3, 19, 4).astimezone(UTC)


def test_weekend_runs_friday_2000_to_monday_0400() -> None:
    fri, mon = ny(2026, 3, 20, 20), ny(2026, 3, 23, 4)
    assert CAL.phase_at(fri - S) is Phase.AFTER_HOURS
    assert CAL.phase_at(fri) is Phase.WEEKEND
    for probe in (ny(2026, 3, 21, 12), ny(2026, 3, 22, 23, 59, 59), ny(2026, 3, 23, 0)):
        assert CAL.phase_at(probe) is Phase.WEEKEND
    assert CAL.phase_at(mon - S) is Phase.WEEKEND
    assert CAL.phase_at(mon) is Phase.PRE_MARKET
    assert CAL.next_transition(fri) == mon.astimezone(UTC)
    assert mon - fri == timedelta(hours=56)


def test_thanksgiving_evening_before_is_weekend_and_early_close_is_ordinary() -> None:
    # Thu 2026-11-26 closed; Fri 2026-11-27 is an early close (13:00), an ordinary day here
    assert CAL.phase_at(ny(2026, 11, 25, 19, 59, 59)) is Phase.AFTER_HOURS
    assert CAL.phase_at(ny(2026, 11, 25, 20)) is Phase.WEEKEND
    assert CAL.phase_at(ny(2026, 11, 26, 12)) is Phase.WEEKEND
    assert CAL.phase_at(ny(2026, 11, 27, 3, 59, 59)) is Phase.WEEKEND
    assert CAL.phase_at(ny(2026, 11, 27, 4)) is Phase.PRE_MARKET
    assert CAL.phase_at(ny(2026, 11, 27, 13, 30)) is Phase.MARKET_HOURS
    assert CAL.next_transition(ny(2026, 11, 25, 20)) == ny(2026, 11, 27, 4).astimezone(UTC)


def test_monday_holiday_extends_the_weekend_to_tuesday_0400() -> None:
    # Martin Luther King Jr. Day, Mon 2026-01-19
    assert CAL.phase_at(ny(2026, 1, 19, 10)) is Phase.WEEKEND
    assert CAL.phase_at(ny(2026, 1, 20, 3, 59, 59)) is Phase.WEEKEND
    assert CAL.phase_at(ny(2026, 1, 20, 4)) is Phase.PRE_MARKET
    assert CAL.next_transition(ny(2026, 1, 16, 20)) == ny(2026, 1, 20, 4).astimezone(UTC)


def test_good_friday_weekend_starts_thursday_evening() -> None:
    assert CAL.phase_at(ny(2026, 4, 2, 20)) is Phase.WEEKEND
    assert CAL.next_transition(ny(2026, 4, 2, 20)) == ny(2026, 4, 6, 4).astimezone(UTC)


@pytest.mark.parametrize(
    ("friday", "monday", "weekend_h", "monday_open"),
    [
        # clocks go forward Sun 2026-03-08 02:00 EST -> 03:00 EDT: an hour shorter
        (datetime(2026, 3, 7, 1, 0, tzinfo=UTC),  # Fri 2026-03-06 20:00 EST
         datetime(2026, 3, 9, 8, 0, tzinfo=UTC), 55,  # Mon 04:00 EDT
         datetime(2026, 3, 9, 13, 30, tzinfo=UTC)),
        # clocks go back Sun 2026-11-01 02:00 EDT -> 01:00 EST: an hour longer
        (datetime(2026, 10, 31, 0, 0, tzinfo=UTC),  # Fri 2026-10-30 20:00 EDT
         datetime(2026, 11, 2, 9, 0, tzinfo=UTC), 57,  # Mon 04:00 EST
         datetime(2026, 11, 2, 14, 30, tzinfo=UTC)),
    ],
    ids=["spring_forward_an_hour_shorter", "fall_back_an_hour_longer"],
)  # fmt: skip
def test_a_dst_change_over_the_weekend_moves_the_open_in_utc(
    friday: datetime, monday: datetime, weekend_h: int, monday_open: datetime
) -> None:
    assert CAL.phase_at(friday) is Phase.WEEKEND
    assert CAL.next_transition(friday) == monday
    assert monday - friday == timedelta(hours=weekend_h)
    # the open moves by an hour in UTC, not in local time
    assert CAL.phase_at(monday_open - timedelta(seconds=1)) is Phase.PRE_MARKET
    assert CAL.phase_at(monday_open) is Phase.MARKET_HOURS


def test_the_open_before_spring_forward_is_an_hour_later_in_utc() -> None:
    assert CAL.phase_at(datetime(2026, 3, 6, 14, 30, tzinfo=UTC)) is Phase.MARKET_HOURS
    assert CAL.phase_at(datetime(2026, 3, 6, 14, 29, 59, tzinfo=UTC)) is Phase.PRE_MARKET


def test_a_boundary_inside_the_dst_gap_and_the_repeated_hour() -> None:
    every_day = frozenset(range(7))
    spring = PhaseCalendar(
        sessions=Sessions(time(2, 30), time(9, 30), time(16), time(20)), trading_days=every_day
    )
    # 02:30 does not exist on 2026-03-08: pre-market starts when clocks jump to 03:00 EDT
    got = list(
        spring.transitions(datetime(2026, 3, 8, 5, tzinfo=UTC), datetime(2026, 3, 8, 9, tzinfo=UTC))
    )
    assert got == [(datetime(2026, 3, 8, 7, tzinfo=UTC), Phase.PRE_MARKET)]
    fall = PhaseCalendar(
        sessions=Sessions(time(1, 30), time(9, 30), time(16), time(20)), trading_days=every_day
    )
    # 01:30 happens twice on 2026-11-01: pre-market, back to overnight at 01:00 EST, again
    got = list(
        fall.transitions(datetime(2026, 11, 1, 4, tzinfo=UTC), datetime(2026, 11, 1, 9, tzinfo=UTC))
    )
    assert got == [
        (datetime(2026, 11, 1, 5, 30, tzinfo=UTC), Phase.PRE_MARKET),
        (datetime(2026, 11, 1, 6, 0, tzinfo=UTC), Phase.OVERNIGHT),
        (datetime(2026, 11, 1, 6, 30, tzinfo=UTC), Phase.PRE_MARKET),
    ]


def test_next_transition_agrees_with_phase_at_over_a_year_of_samples() -> None:
    t = ny(2026, 1, 1)
    while t < ny(2027, 1, 8):
        nxt = CAL.next_transition(t)
        assert nxt is not None
        assert CAL.phase_at(nxt) is not CAL.phase_at(t)
        assert CAL.phase_at(nxt - S) is CAL.phase_at(t)
        t = nxt + timedelta(minutes=7)


def test_transitions_alternate_and_cover_a_year() -> None:
    got = list(CAL.transitions(ny(2026, 1, 1), ny(2027, 1, 1)))
    for (_, a), (_, b) in itertools.pairwise(got):
        assert a is not b
    # 2026 has 261 weekdays; all ten listed 2026 holidays fall on weekdays: 251 opens
    opens = [t for t, p in got if p is Phase.MARKET_HOURS]
    assert len(opens) == 251


def test_phase_at_refuses_a_naive_datetime() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        CAL.phase_at(datetime(2026, 3, 18, 12))


def test_intervals_tickers_follow_the_issue_exactly() -> None:
    got = [
        CAL.interval(p, "tickers")
        for p in (
            Phase.MARKET_HOURS,
            Phase.PRE_MARKET,
            Phase.AFTER_HOURS,
            Phase.OVERNIGHT,
            Phase.WEEKEND,
        )
    ]
    assert got == [15, 60, 120, 300, 600]
    assert CAL.interval(Phase.WEEKEND, "candles") == 1200
    assert CAL.interval("market_hours", "something_else") == 15  # the default row


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> date:
    first = date(year, month, 1)
    return first + timedelta(days=(weekday - first.weekday()) % 7 + 7 * (n - 1))


def _last_weekday(year: int, month: int, weekday: int) -> date:
    nxt = date(year + month // 12, month % 12 + 1, 1)
    last = nxt - timedelta(days=1)
    return last - timedelta(days=(last.weekday() - weekday) % 7)


def _easter(year: int) -> date:  # anonymous Gregorian algorithm
    a, b, c = year % 19, year // 100, year % 100
    d, e = divmod(b, 4)
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    ll = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * ll) // 451
    month, day = divmod(h + ll - 7 * m + 114, 31)
    return date(year, month, day + 1)


def _observed(day: date) -> date | None:
    if day.weekday() == 5:  # Saturday -> Friday, except at a year end (NYSE rule 7.2)
        friday = day - timedelta(days=1)
        return None if (friday.month, friday.day) == (12, 31) else friday
    if day.weekday() == 6:
        return day + timedelta(days=1)
    return day


def nyse_holidays(year: int) -> set[date]:
    fixed = [date(year, 1, 1), date(year, 6, 19), date(year, 7, 4), date(year, 12, 25)]
    out = {d for d in (_observed(f) for f in fixed) if d is not None}
    out |= {
        _nth_weekday(year, 1, 0, 3),  # Martin Luther King Jr. Day
        _nth_weekday(year, 2, 0, 3),  # Washington's Birthday
        _easter(year) - timedelta(days=2),  # Good Friday
        _last_weekday(year, 5, 0),  # Memorial Day
        _nth_weekday(year, 9, 0, 1),  # Labor Day
        _nth_weekday(year, 11, 3, 4),  # Thanksgiving
    }
    return out


def test_default_holidays_are_the_nyse_rules_for_2026_and_2027() -> None:
    assert _easter(2026) == date(2026, 4, 5) and _easter(2027) == date(2027, 3, 28)
    assert set(CAL.holidays) == nyse_holidays(2026) | nyse_holidays(2027)
    # New Year's Day 2028 is a Saturday: Friday 2027-12-31 still trades
    assert date(2027, 12, 31) not in CAL.holidays
