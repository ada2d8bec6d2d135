"""The demand path's Prometheus metrics (rows in docs/metrics.md)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

DEMAND_JOBS = Counter(
    "warmfleet_demand_jobs_total",
    "Reads that asked the fleet for a cold (or about-to-expire) key, by outcome: asked (a "
    "demand job was published), deduplicated (another reader's job or lease covers it), "
    "refused (over the exchange's budget: 503 Retry-After), unlisted (404, no job), "
    "unavailable (Redis or Kafka unreachable: 503)",
    ["exchange", "data_type", "outcome"],
)
DEMAND_WAITS = Counter(
    "warmfleet_demand_waits_total",
    "Readers that waited for a demanded value, by result: value (200) or timeout (503)",
    ["exchange", "data_type", "result"],
)
DEMAND_SECONDS = Histogram(
    "warmfleet_demand_seconds",
    "Demand to value: from a reader's miss to the value being readable, seconds",
    ["exchange", "data_type"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0),
)
EARLY_REFRESHES = Counter(
    "warmfleet_demand_early_refreshes_total",
    "Reads whose copy XFetch decided to refresh early, by what came of it: asked, "
    "deduplicated (a lease was held), refused (over budget), unavailable",
    ["exchange", "data_type", "outcome"],
)
ORIGIN_REQUESTS = Counter(
    "warmfleet_budget_requests_total",
    "Origin (exchange) requests the pollers took a budget token for, by job priority",
    ["exchange", "priority"],
)
ORIGIN_DENIED = Counter(
    "warmfleet_budget_denied_total",
    "Origin requests not sent because the exchange's budget had no token before the job's deadline",
    ["exchange", "priority"],
)
ORIGIN_BUDGET = Gauge(
    "warmfleet_budget_requests_per_second",
    "The exchange's fleet-wide origin budget (phases.toml requests_per_s)",
    ["exchange"],
)
BUDGET_FALLBACKS = Counter(
    "warmfleet_budget_fallbacks_total",
    "Origin tokens taken from the poller's local bucket because Redis was unreachable",
    ["exchange"],
)
