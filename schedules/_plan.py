"""The scheduling rule (pure), shared by ``plan_firings`` and the running clock.

* The effective phase at ``t`` is the override's while one is active, else the calendar's.
* A job (exchange, data type) fired at ``t`` publishes the interval in force at ``t``:
  ``max(calendar.interval(phase, type) * boost, exchange.min_interval_s)``, and is next due
  at ``t + interval``.
* When anything that sets intervals changes at ``c`` (a phase transition, an override set,
  cleared or expiring, the volatility boost switching), every job is rescheduled: it is next
  due at ``min(its old due time, c + new interval)`` (never before ``c``).

So a job never waits longer than the interval it last published: a key warmed at ``t`` with
interval ``i`` is warmed again by ``t + i``, across every transition. Switching to a faster
phase takes effect within one new interval (09:30 open: the first 15 s warm comes at most
15 s after the open); switching to a slower one lets the pending faster warm happen first.
The TTL side does not read the WarmJob (the agents that write the tiers consume market
records, not jobs): it covers the interval ``control.phase`` publishes for the data type,
``published_intervals`` -- the longest interval any exchange warms it at in the phase
(``TTLPolicy`` via ``cache.set_many(..., warm_interval=...)``). That is never shorter than
the ``interval_s`` of any job fired in the same state, so the next warm of every key comes
within the interval its TTL covers. ``WarmJob.interval_s`` says which interval a job was
fired under (for the poller's logs and whoever reads ``warm.jobs``); its ``deadline_ms``
(at most one interval after ``issued_ms``) is what the poller acts on. A clock that takes
the lead continues the schedule it finds on ``warm.jobs`` (``schedules._takeover``).
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from schedules._calendar import INTERVAL_TYPES, Phase
from schedules._config import Boost, ExchangeWarm, PhaseConfig
from topics import DataType
from topics.records import PhaseChange, WarmJob

CALENDAR = "calendar"
OVERRIDE = "override"


@dataclass(frozen=True, slots=True)
class Override:
    """A manual phase, from ``set_at`` until ``until`` (both timezone-aware)."""

    phase: Phase
    until: datetime
    set_at: datetime | None = None

    def active(self, t: datetime) -> bool:
        return (self.set_at is None or self.set_at <= t) and t < self.until


@dataclass(frozen=True, slots=True)
class JobKey:
    exchange: str
    data_type: DataType

    @property
    def job_id(self) -> str:
        return f"warm:{self.exchange}:{self.data_type.value}"


@dataclass(frozen=True, slots=True)
class Firing:
    at: datetime
    exchange: str
    data_type: DataType
    phase: Phase
    interval_s: float
    source: str = CALENDAR
    boost: float = 1.0


@dataclass(frozen=True, slots=True)
class PhaseState:
    """What the clock shows and publishes on ``control.phase``."""

    at: datetime
    phase: Phase
    source: str  # calendar | override
    calendar_phase: Phase
    #: when the effective phase may next change: the override's end, else the calendar's
    #: next transition (None: never)
    next_change: datetime | None
    calendar_next_transition: datetime | None
    override_until: datetime | None
    boost: float
    intervals_s: dict[str, float]

    def to_record(self) -> PhaseChange:
        return PhaseChange(
            phase=self.phase.value,
            intervals_s=dict(self.intervals_s),
            at_ms=to_ms(self.at),
            next_transition_ms=None if self.next_change is None else to_ms(self.next_change),
            override_until_ms=None if self.override_until is None else to_ms(self.override_until),
            volatility_boost=self.boost,
        )


def to_ms(t: datetime) -> int:
    return round(t.timestamp() * 1000)


def jobs(config: PhaseConfig) -> list[JobKey]:
    """One job per (exchange, data type), in config order."""
    return [JobKey(ex.name, dt) for ex in config.exchanges for dt in ex.data_types]


def current_phase(
    config: PhaseConfig, t: datetime, override: Override | None = None
) -> tuple[Phase, str]:
    if override is not None and override.active(t):
        return override.phase, OVERRIDE
    return config.calendar.phase_at(t), CALENDAR


def effective_interval(
    config: PhaseConfig,
    phase: Phase,
    data_type: DataType,
    exchange: ExchangeWarm | None = None,
    boost: float = 1.0,
) -> float:
    """``calendar.interval * boost``, never below the exchange's floor (for a derived data
    type, not warmed by any one exchange, the highest floor: it follows the slowest feed)."""
    if exchange is None:
        floor = max((ex.min_interval_s for ex in config.exchanges), default=0.0)
    else:
        floor = exchange.min_interval_s
    return max(config.calendar.interval(phase, data_type) * boost, floor)


def published_intervals(config: PhaseConfig, phase: Phase, boost: float) -> dict[str, float]:
    """Per data type, the longest interval any exchange warms it at (what a TTL must cover)."""
    out: dict[str, float] = {}
    for dt in INTERVAL_TYPES:
        if dt is DataType.DEFAULT:
            continue
        warming = [ex for ex in config.exchanges if dt in ex.data_types]
        candidates = [effective_interval(config, phase, dt, ex, boost) for ex in warming]
        out[dt.value] = max(candidates or [effective_interval(config, phase, dt, None, boost)])
    return out


def resolve(
    config: PhaseConfig, t: datetime, *, override: Override | None = None, boost: float = 1.0
) -> PhaseState:
    """The full state at ``t`` (includes the next-transition search, so not for hot loops)."""
    phase, source = current_phase(config, t, override)
    cal_phase = config.calendar.phase_at(t)
    cal_next = config.calendar.next_transition(t)
    active = override if override is not None and override.active(t) else None
    return PhaseState(
        at=t,
        phase=phase,
        source=source,
        calendar_phase=cal_phase,
        next_change=active.until if active else cal_next,
        calendar_next_transition=cal_next,
        override_until=active.until if active else None,
        boost=boost,
        intervals_s=published_intervals(config, phase, boost),
    )


def next_due(due: datetime | None, changed_at: datetime, new_interval_s: float) -> datetime:
    """Where a job's next firing moves when intervals change at ``changed_at``."""
    candidate = changed_at + timedelta(seconds=new_interval_s)
    if due is None:
        return changed_at
    return max(changed_at, min(due, candidate))


def deadline_s(config: PhaseConfig, interval_s: float) -> float:
    return min(interval_s, config.deadline_s)


def warm_job(
    config: PhaseConfig,
    firing: Firing,
    job_id: str,
    *,
    fencing_token: int = 0,
    symbols: Sequence[str] | None = None,
) -> WarmJob:
    """The WarmJob a firing publishes (``symbols`` empty = all active markets; None = the
    config's list for the type, ``schedules._warmset`` chooses from the hot set), stamped
    with the issuing leader's ``fencing_token``."""
    issued = to_ms(firing.at)
    if symbols is None:
        symbols = config.exchange(firing.exchange).symbols_for(firing.data_type)
    return WarmJob(
        job_id=job_id,
        exchange=firing.exchange,
        data_type=firing.data_type.value,
        symbols=list(symbols),
        phase=firing.phase.value,
        interval_s=firing.interval_s,
        issued_ms=issued,
        deadline_ms=issued + round(deadline_s(config, firing.interval_s) * 1000),
        fencing_token=fencing_token,
    )


def fire(
    config: PhaseConfig, key: JobKey, t: datetime, override: Override | None, boost: float
) -> Firing:
    """What a job firing at ``t`` publishes."""
    phase, source = current_phase(config, t, override)
    interval = effective_interval(
        config, phase, key.data_type, config.exchange(key.exchange), boost
    )
    return Firing(t, key.exchange, key.data_type, phase, interval, source, boost)


def _at(timeline: Sequence[tuple[datetime, float]], t: datetime) -> float:
    value = 1.0
    for at, factor in timeline:
        if at <= t:
            value = factor
    return value


def _override_at(overrides: Sequence[Override], t: datetime) -> Override | None:
    current = None
    for ov in overrides:
        if ov.set_at is None or ov.set_at <= t:
            current = ov
    return current if current is not None and current.active(t) else None


def plan_firings(
    config: PhaseConfig,
    start: datetime,
    end: datetime,
    *,
    overrides: Sequence[Override] = (),
    boosts: Sequence[tuple[datetime, float]] = (),
) -> list[Firing]:
    """Every firing in ``[start, end)`` of a clock that starts (or takes the lease) at
    ``start``. ``overrides`` are set at their ``set_at`` (a later one replaces an earlier
    one; ``until == set_at`` clears); ``boosts`` are ``(at, factor)`` steps (1.0 = off)."""
    keys = jobs(config)
    changes: set[datetime] = {t for t, _ in config.calendar.transitions(start, end)}
    for ov in overrides:
        changes.update(t for t in (ov.set_at, ov.until) if t is not None and start < t < end)
    changes.update(t for t, _ in boosts if start < t < end)
    pending = sorted(changes)
    due: dict[int, datetime] = dict.fromkeys(range(len(keys)), start)
    heap = [(start, i) for i in range(len(keys))]
    out: list[Firing] = []
    while heap:
        t_fire, i = heap[0]
        if pending and pending[0] <= t_fire:
            changed_at = pending.pop(0)
            override, boost = _override_at(overrides, changed_at), _at(boosts, changed_at)
            phase, _ = current_phase(config, changed_at, override)
            for j, key in enumerate(keys):
                exchange = config.exchange(key.exchange)
                interval = effective_interval(config, phase, key.data_type, exchange, boost)
                due[j] = next_due(due[j], changed_at, interval)
            heap = [(d, j) for j, d in due.items()]
            heapq.heapify(heap)
            continue
        if t_fire >= end:
            break
        heapq.heappop(heap)
        firing = fire(config, keys[i], t_fire, _override_at(overrides, t_fire), _at(boosts, t_fire))
        out.append(firing)
        due[i] = t_fire + timedelta(seconds=firing.interval_s)
        heapq.heappush(heap, (due[i], i))
    return out


def boost_active(
    boost: Boost, was_active: bool, volatility_index: float | None, age_s: float
) -> bool:
    """Whether the volatility boost holds, given the latest index and how old it is
    (on at ``>= threshold``, off below ``threshold * release_ratio`` or when stale)."""
    if not boost.enabled or volatility_index is None or age_s > boost.stale_after_s:
        return False
    if volatility_index >= boost.threshold:
        return True
    return was_active and volatility_index >= boost.threshold * boost.release_ratio
