"""The agents' Prometheus metrics (names shared with the Grafana dashboard)."""

from __future__ import annotations

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
