"""The agents' Prometheus metrics (names shared with the Grafana dashboard)."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable

from prometheus_client import Counter, Gauge, Histogram

EVENTS = Counter("warmfleet_agent_events_total", "Events consumed by the agents", ["topic"])
PROCESSED = Counter(
    "warmfleet_agent_events_processed_total",
    "Events fully handled: every tier written, records acknowledged by Kafka, or dead-lettered",
    ["topic"],
)
STALE = Counter(
    "warmfleet_agent_stale_skipped_total",
    "Events skipped because their as_of is not newer than the table's (duplicates, reorders)",
    ["topic"],
)
WRITE_SECONDS = Histogram(
    "warmfleet_agent_write_seconds",
    "One batch write through all cache tiers",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
TIER_LATENCY = Histogram(
    "warmfleet_agent_event_to_tiers_seconds",
    "From an event's Kafka timestamp (its producer's send) to its result written in every tier",
    buckets=(
        0.001, 0.002, 0.003, 0.004, 0.005, 0.0075, 0.01, 0.0125, 0.015, 0.0175, 0.02, 0.025,
        0.03, 0.04, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    ),
)  # fmt: skip
WRITE_ERRORS = Counter(
    "warmfleet_agent_write_errors_total", "Batch cache writes that raised", ["error"]
)
LAG = Gauge("warmfleet_agent_consumer_lag", "End offset minus read offset", ["topic"])
FRESHNESS = Gauge(
    "warmfleet_freshness_seconds",
    "Age of the freshest / stalest value the agents hold, by data type",
    ["data_type", "which"],
)
OVERVIEWS = Counter(
    "warmfleet_agent_overviews_total", "Market overviews computed and written", ["scope"]
)
TIER_WRITES = Counter(
    "warmfleet_agent_tier_writes_total",
    "Values the agents wrote that each tier accepted (set_many's answer)",
    ["tier"],
)
REFILLS = Counter(
    "warmfleet_agent_refills_total",
    "Cold-tier refills: a tier found new (epoch marker missing or changed) and refilled",
    ["tier", "stage"],
)
REFILL_KEYS = Counter(
    "warmfleet_agent_refill_keys_total",
    "Keys a refill offered a tier: written, or refused because the tier held a newer as_of",
    ["tier", "outcome"],
)
REFILL_SECONDS = Histogram(
    "warmfleet_agent_refill_seconds",
    "From a tier found new to every key this worker holds written into it",
    ["tier"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0),
)


def observe_many(histogram: Histogram, amounts: Iterable[float]) -> None:
    """``histogram.observe(amount)`` for each of ``amounts``, as one increment per bucket
    and one of the sum: observed one by one (two locked increments each), the event-to-tiers
    latency of every event was ~8 % of the worker's CPU. It adds to prometheus_client's own
    bucket and sum values (``_upper_bounds``, ``_buckets``, ``_sum``: no public call adds n
    observations); tests/workers/agents/test_metrics.py pins that the exposition is what
    ``observe`` one by one gives, so a library change that breaks this fails there."""
    bounds: list[float] = histogram._upper_bounds
    counts = [0] * len(bounds)
    total = 0.0
    for amount in amounts:
        # observe() counts an amount in the first bucket whose upper bound is >= it
        counts[bisect_left(bounds, amount)] += 1
        total += amount
    histogram._sum.inc(total)
    for bucket, n in zip(histogram._buckets, counts, strict=True):
        if n:
            bucket.inc(n)
