"""The market-phase calendar: which phase it is at an instant, and when that changes (pure).

The rule, in the calendar's local time (``America/New_York`` by default). A trading day is
one of ``trading_days`` (Monday to Friday) that is not a holiday. Sessions exist only on
trading days: ``pre_market`` [04:00, 09:30), ``market_hours`` [09:30, 16:00),
``after_hours`` [16:00, 20:00). Time outside the sessions is ``overnight`` when it lies
between 20:00 on a trading day and 04:00 on the next calendar day that is also a trading
day; all other time is ``weekend``. So a weekend runs from Friday 20:00 to Monday 04:00, and
the evening before (and the night after) a holiday is already ``weekend``.

Session boundaries are wall-clock times, so they follow DST: the phase changes only at a
boundary instant, found by converting each local boundary to an absolute time (both folds
of an ambiguous wall time are candidates, so a boundary inside a repeated hour is seen twice).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from topics import DataType


class Phase(StrEnum):
    MARKET_HOURS = "market_hours"
    PRE_MARKET = "pre_market"
    AFTER_HOURS = "after_hours"
    OVERNIGHT = "overnight"
    WEEKEND = "weekend"


#: data types that carry an interval (the ``phases.multipliers`` rows)
INTERVAL_TYPES: tuple[DataType, ...] = (
    DataType.TICKERS,
    DataType.BOOKS,
    DataType.CANDLES,
    DataType.OVERVIEW,
    DataType.SIGNALS,
    DataType.VOLATILITY,
    DataType.DEFAULT,
)

DEFAULT_INTERVALS_S: Mapping[Phase, float] = {
    Phase.MARKET_HOURS: 15.0,
    Phase.PRE_MARKET: 60.0,
    Phase.AFTER_HOURS: 120.0,
    Phase.OVERNIGHT: 300.0,
    Phase.WEEKEND: 600.0,
}

#: weekday numbers as ``date.weekday()`` counts them: Monday 0 ... Sunday 6
WEEKDAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

#: how far ahead ``next_transition`` looks before it answers "never" (a calendar whose
#: every day is a holiday, or one without trading days)
_HORIZON_DAYS = 400


@dataclass(frozen=True, slots=True)
class Sessions:
    """Local wall-clock session boundaries; ``pre_market < open < close < after_hours_end``."""

    pre_market: time = time(4, 0)
    open: time = time(9, 30)
    close: time = time(16, 0)
    after_hours_end: time = time(20, 0)

    def boundaries(self) -> tuple[time, time, time, time]:
        return (self.pre_market, self.open, self.close, self.after_hours_end)


@dataclass(frozen=True, slots=True)
class PhaseCalendar:
    """When each phase holds and how often each data type is re-warmed in it.

    Build it with ``schedules.load_config(path).calendar`` (validated) or directly (tests).
    Every method is a pure function of its arguments; time is always a parameter.
    """

    timezone: ZoneInfo = field(default_factory=lambda: ZoneInfo("America/New_York"))
    sessions: Sessions = field(default_factory=Sessions)
    trading_days: frozenset[int] = frozenset(range(5))
    holidays: frozenset[date] = frozenset()
    intervals_s: Mapping[Phase, float] = field(default_factory=lambda: dict(DEFAULT_INTERVALS_S))
    multipliers: Mapping[DataType, float] = field(default_factory=dict)

    # -- the phase rule -------------------------------------------------------------------

    def is_trading_day(self, day: date) -> bool:
        return day.weekday() in self.trading_days and day not in self.holidays

    def phase_at(self, t: datetime) -> Phase:
        """The phase at ``t`` (a timezone-aware datetime)."""
        if t.tzinfo is None or t.utcoffset() is None:
            raise ValueError(f"phase_at needs a timezone-aware datetime, got {t!r}")
        local = t.astimezone(self.timezone)
        day, clock = local.date(), local.time().replace(tzinfo=None)
        s = self.sessions
        if self.is_trading_day(day):
            if s.pre_market <= clock < s.open:
                return Phase.PRE_MARKET
            if s.open <= clock < s.close:
                return Phase.MARKET_HOURS
            if s.close <= clock < s.after_hours_end:
                return Phase.AFTER_HOURS
            if clock >= s.after_hours_end and self.is_trading_day(day + timedelta(days=1)):
                return Phase.OVERNIGHT
            if clock < s.pre_market and self.is_trading_day(day - timedelta(days=1)):
                return Phase.OVERNIGHT
        return Phase.WEEKEND

    def _boundary_instants(self, day: date) -> list[datetime]:
        """Every absolute instant (UTC) at which ``day``'s local session boundaries fall."""
        out: set[datetime] = set()
        for wall in self.sessions.boundaries():
            naive = datetime.combine(day, wall)
            out.update(naive.replace(tzinfo=self.timezone, fold=f).astimezone(UTC) for f in (0, 1))
        # a DST change moves the wall clock past a boundary (spring-forward gap) or back
        # before one (the repeated hour): the change itself is a candidate too
        start = datetime.combine(day, time(0), tzinfo=self.timezone).astimezone(UTC)
        end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=self.timezone)
        end_utc = end.astimezone(UTC)
        if self._offset(start) != self._offset(end_utc):
            out.add(self._offset_change(start, end_utc))
        return sorted(out)

    def _offset(self, t: datetime) -> timedelta | None:
        return t.astimezone(self.timezone).utcoffset()

    def _offset_change(self, lo: datetime, hi: datetime) -> datetime:
        """The first instant in (lo, hi] with ``hi``'s UTC offset (binary search, to 1 s)."""
        target = self._offset(hi)
        while hi - lo > timedelta(seconds=1):
            mid = lo + (hi - lo) / 2
            if self._offset(mid) == target:
                hi = mid
            else:
                lo = mid
        return hi.replace(microsecond=0)

    def transitions(self, start: datetime, end: datetime) -> Iterator[tuple[datetime, Phase]]:
        """Each instant in ``(start, end]`` at which the phase changes, with the new phase."""
        current = self.phase_at(start)
        day = start.astimezone(self.timezone).date() - timedelta(days=1)
        last_day = end.astimezone(self.timezone).date() + timedelta(days=1)
        while day <= last_day:
            for instant in self._boundary_instants(day):
                if start < instant <= end:
                    phase = self.phase_at(instant)
                    if phase is not current:
                        yield instant, phase
                        current = phase
            day += timedelta(days=1)

    def next_transition(self, t: datetime) -> datetime | None:
        """The first instant after ``t`` at which the phase differs from ``phase_at(t)``
        (UTC), or None when it never changes within the next ~year."""
        for instant, _ in self.transitions(t, t + timedelta(days=_HORIZON_DAYS)):
            return instant
        return None

    # -- intervals ------------------------------------------------------------------------

    def multiplier(self, data_type: DataType | str) -> float:
        dt = DataType.parse(str(data_type))
        return self.multipliers.get(dt, self.multipliers.get(DataType.DEFAULT, 1.0))

    def interval(self, phase: Phase | str, data_type: DataType | str) -> float:
        """Seconds between two warms of ``data_type`` in ``phase`` (before boost and floors)."""
        return self.intervals_s[Phase(phase)] * self.multiplier(data_type)
