"""Prometheus metrics of the pollers (names shared with the dashboard and `warmfleet status`)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

REQUESTS = Counter(
    "warmfleet_poller_requests",
    "REST requests made to exchanges (each attempt counts).",
    ["exchange", "endpoint"],
)
ERRORS = Counter(
    "warmfleet_poller_errors",
    "Failed exchange requests, by ccxt error class (or DeadlineExceeded, BreakerOpen).",
    ["exchange", "error"],
)
REQUEST_SECONDS = Histogram(
    "warmfleet_poller_request_seconds",
    "Latency of exchange requests as ccxt sees it (rate-limiter wait included).",
    ["exchange", "endpoint"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
EVENTS_PUBLISHED = Counter(
    "warmfleet_poller_events_published",
    "Records published to the market topics.",
    ["exchange", "data_type"],
)
JOBS_DROPPED = Counter(
    "warmfleet_poller_jobs_dropped",
    "Warm jobs not polled: past their deadline, breaker open, malformed, unknown exchange, "
    "fenced (from a deposed clock).",
    ["exchange", "reason"],
)
PAYLOADS_REJECTED = Counter(
    "warmfleet_poller_payloads_rejected",
    "Exchange payloads (one per symbol) that failed validation and were not published.",
    ["exchange", "reason"],
)
JOBS_DONE = Counter(
    "warmfleet_poller_jobs",
    "Warm jobs polled to the end, by outcome (complete / partial / failed).",
    ["exchange", "data_type", "outcome"],
)
BREAKER_OPEN = Gauge(
    "warmfleet_poller_breaker_open",
    "1 while the exchange's circuit breaker is open.",
    ["exchange"],
)
JOB_SECONDS = Histogram(
    "warmfleet_poller_job_seconds",
    "Time from a warm job's issue to its last event published.",
    ["exchange", "data_type"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0),
)
