"""Warm intervals across a change, for whoever follows ``control.phase`` (pure).

The clock's rule (``schedules._plan``) keeps the keys it warms covered across a change: the
last warm under interval I is followed within I by one that publishes the new I'. A process
that warms on its own timer (the agents' overview) and sizes TTLs from the intervals it
follows needs the same two things, which this history gives it:

* ``next_write(data_type, last_at)``: never later than the interval in force when it last
  wrote — after a lengthening change (15 s -> 60 s) it writes once more on the old cadence,
  and that write already carries the new interval's TTL. Without it the overview written
  with a 15 s TTL just before the change was next written 60 s later: 404 in between;
* ``ttl_interval(data_type)``: the longer of the current and the previous interval for one
  previous interval after a change, so a write whose data was asked for under the old,
  longer interval (a job issued just before a shortening change) keeps a TTL for it.

Time is a monotonic clock, injectable.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

Lookup = Callable[[Mapping[str, float], str], float]


def _lookup(intervals: Mapping[str, float], data_type: str) -> float:
    return intervals.get(data_type) or intervals.get("default") or intervals["tickers"]


class IntervalHistory:
    """The intervals in force now and the few before, with when they changed."""

    def __init__(
        self,
        intervals: Mapping[str, float],
        *,
        clock: Callable[[], float] = time.monotonic,
        lookup: Lookup = _lookup,
        keep: int = 8,
    ) -> None:
        self._clock, self._lookup, self._keep = clock, lookup, keep
        #: (since, intervals), oldest first; the first entry holds since -inf
        self._steps: list[tuple[float, dict[str, float]]] = [(float("-inf"), dict(intervals))]

    @property
    def current(self) -> dict[str, float]:
        return self._steps[-1][1]

    def update(self, intervals: Mapping[str, float]) -> bool:
        """The intervals from now on; False (nothing recorded) if they did not change."""
        new = dict(intervals)
        if new == self.current:
            return False
        self._steps.append((self._clock(), new))
        del self._steps[: -self._keep]
        return True

    def interval(self, data_type: str) -> float:
        return self._lookup(self.current, data_type)

    def ttl_interval(self, data_type: str) -> float:
        """What a TTL written now must cover: the current interval, or the previous one
        while it is longer and its last warm may still be landing (one previous interval
        after the change)."""
        now, current = self._clock(), self.interval(data_type)
        if len(self._steps) < 2:
            return current
        changed, _ = self._steps[-1]
        previous = self._lookup(self._steps[-2][1], data_type)
        return max(current, previous) if now < changed + previous else current

    def next_write(self, data_type: str, last_at: float) -> float:
        """When a key written at ``last_at`` (monotonic) is next due: ``last_at`` plus the
        interval in force then, moved to ``min(due, change + new interval)`` (never before
        the change) by every change since — the clock's rescheduling rule."""
        due: float | None = None
        for since, intervals in self._steps:
            interval = self._lookup(intervals, data_type)
            if since <= last_at:
                due = last_at + interval
            elif due is not None:
                due = max(since, min(due, since + interval))
        assert due is not None  # the first step holds since -inf
        return due

    def due(self, data_type: str, last_at: float) -> bool:
        return self._clock() >= self.next_write(data_type, last_at)
