"""The phase calendar (pure) and the phase clock (APScheduler, one active, elected in Kafka).

    config = load_config(default_path())           # phases.toml, validated
    config.calendar.phase_at(t)                     # Phase.MARKET_HOURS ...
    config.calendar.next_transition(t)
    config.calendar.interval(Phase.WEEKEND, "tickers")   # 600.0
    plan_firings(config, start, end)                # the clock's decisions, without a clock
    await PhaseClock(config, bootstrap_servers=...).run(stop)
    await OverrideLog(bootstrap_servers).set(Phase.MARKET_HOURS, 1800)   # control.phase

Books and candles jobs name the fleet's hot set (``PhaseClock(..., hot_set=tiers.HeatView)``,
``schedules._warmset``); every job fires ``[warm.hot_set] pre_warm_lead_s`` before a change to a
faster phase (docs/clock.md).

Imports ``topics`` and nothing else of ours (``tiers`` only in tests: the TTL invariant and
the hot set, which the clock takes through a protocol).
"""

from __future__ import annotations

from schedules._calendar import DEFAULT_INTERVALS_S, INTERVAL_TYPES, Phase, PhaseCalendar, Sessions
from schedules._clock import CLOCK_HEADER, PhaseClock
from schedules._config import (
    DEFAULT_PATH,
    Boost,
    ExchangeWarm,
    HotSetWarm,
    PhaseConfig,
    default_path,
    load_config,
    parse_config,
)
from schedules._control import ClockError
from schedules._intervals import IntervalHistory
from schedules._leader import Claim, ClockElection, pick_leader
from schedules._overrides import OverrideLog, parse_override, read_latest
from schedules._plan import (
    Firing,
    JobKey,
    Override,
    PhaseState,
    boost_active,
    deadline_s,
    effective_interval,
    jobs,
    next_due,
    plan_firings,
    published_intervals,
    resolve,
    warm_job,
)
from schedules._takeover import LastWarm, last_warms, takeover_dues

__all__ = [
    "CLOCK_HEADER",
    "DEFAULT_INTERVALS_S",
    "DEFAULT_PATH",
    "INTERVAL_TYPES",
    "Boost",
    "Claim",
    "ClockElection",
    "ClockError",
    "ExchangeWarm",
    "Firing",
    "HotSetWarm",
    "IntervalHistory",
    "JobKey",
    "LastWarm",
    "Override",
    "OverrideLog",
    "Phase",
    "PhaseCalendar",
    "PhaseClock",
    "PhaseConfig",
    "PhaseState",
    "Sessions",
    "boost_active",
    "deadline_s",
    "default_path",
    "effective_interval",
    "jobs",
    "last_warms",
    "load_config",
    "next_due",
    "parse_config",
    "parse_override",
    "pick_leader",
    "plan_firings",
    "published_intervals",
    "read_latest",
    "resolve",
    "takeover_dues",
    "warm_job",
]
