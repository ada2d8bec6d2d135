"""The clock's Prometheus metrics (shared names; the Grafana dashboard is built on them)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

from schedules._calendar import Phase

PHASE = Gauge("warmfleet_phase", "1 for the current market phase, 0 for the others", ["phase"])
PHASE_INTERVAL = Gauge(
    "warmfleet_phase_interval_seconds",
    "current warm interval per data type (boost and floors included)",
    ["data_type"],
)
JOBS_PUBLISHED = Counter(
    "warmfleet_clock_jobs_published_total",
    "warm jobs published to warm.jobs",
    ["exchange", "data_type"],
)
JOBS_SKIPPED = Counter(
    "warmfleet_clock_jobs_skipped_total",
    "warm jobs not published because they would name no symbol (hot_set_empty, "
    "hot_set_unknown, no_budget)",
    ["exchange", "data_type", "reason"],
)
JOB_SYMBOLS = Gauge(
    "warmfleet_clock_job_symbols",
    "symbols the last hot-set warm job of an exchange and data type named",
    ["exchange", "data_type"],
)
PREWARMED = Counter(
    "warmfleet_clock_prewarm_jobs_total",
    "warm jobs fired early, ahead of a change to a faster phase",
    ["exchange", "data_type"],
)
IS_LEADER = Gauge(
    "warmfleet_clock_is_leader", "1 while this clock leads (elected through Kafka, confirmed)"
)
FENCING_TOKEN = Gauge(
    "warmfleet_clock_fencing_token", "the group generation this clock was last elected in"
)
ERRORS = Counter(
    "warmfleet_clock_errors_total",
    "clock operations that failed (publish, election, claim, override, overview, unconfirmed_lead)",
    ["kind"],
)
VOLATILITY_BOOST = Gauge(
    "warmfleet_clock_volatility_boost", "interval factor from the volatility boost (1 = off)"
)
VOLATILITY_INDEX = Gauge(
    "warmfleet_clock_volatility_index", "latest market overview volatility index (scope all)"
)
OVERVIEW_SKIPPED = Counter(
    "warmfleet_clock_overview_skipped_total",
    "analysis.overview records the clock could not use",
    ["reason"],
)


def show_phase(phase: Phase, intervals_s: dict[str, float], boost: float) -> None:
    for p in Phase:
        PHASE.labels(phase=p.value).set(1 if p is phase else 0)
    for data_type, seconds in intervals_s.items():
        PHASE_INTERVAL.labels(data_type=data_type).set(seconds)
    VOLATILITY_BOOST.set(boost)
