"""Per-tier counters as plain ints, exported to Prometheus lazily.

The hit path must stay tiny, so nothing here runs per L1 read: caches count in plain
attributes and ONE module-level collector sums every live cache (plus the totals of closed
ones) when Prometheus scrapes. Many caches in one process therefore never collide on
metric registration. Latency is observed for L2/L3 calls only; an L1 hit is a dict lookup
and timing it would cost more than the lookup.
"""

from __future__ import annotations

import bisect
import math
import weakref
from collections import deque
from collections.abc import Iterable, Iterator
from typing import Any, Protocol

from prometheus_client import REGISTRY
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

#: seconds; upper bounds of the latency histogram (the last is +Inf)
LATENCY_BUCKETS: tuple[float, ...] = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, math.inf,
)  # fmt: skip
COUNTERS = ("hits", "misses", "errors", "promotions", "skipped", "writes", "stale")


class TierStats:
    __slots__ = (
        "buckets", "errors", "hits", "latency_count", "latency_sum", "misses", "promotions",
        "recent", "skipped", "stale", "writes",
    )  # fmt: skip

    def __init__(self) -> None:
        self.hits = 0
        self.misses = 0
        self.errors = 0
        self.promotions = 0
        self.skipped = 0  # calls not made because the breaker was open
        self.writes = 0
        self.stale = 0  # writes refused because the tier held a newer as_of
        self.buckets = [0] * len(LATENCY_BUCKETS)
        self.latency_sum = 0.0
        self.latency_count = 0
        self.recent: deque[float] = deque(maxlen=4096)

    def observe(self, seconds: float) -> None:
        self.buckets[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.latency_sum += seconds
        self.latency_count += 1
        self.recent.append(seconds)

    def add(self, other: TierStats) -> None:
        for name in COUNTERS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.buckets = [a + b for a, b in zip(self.buckets, other.buckets, strict=True)]
        self.latency_sum += other.latency_sum
        self.latency_count += other.latency_count

    def snapshot(self) -> dict[str, Any]:
        out: dict[str, Any] = {name: getattr(self, name) for name in COUNTERS}
        lookups = self.hits + self.misses
        out["hit_ratio"] = self.hits / lookups if lookups else None
        out["latency_count"] = self.latency_count
        out["latency_mean_ms"] = (
            self.latency_sum / self.latency_count * 1000 if self.latency_count else None
        )
        if self.recent:
            ordered = sorted(self.recent)
            out["latency_p99_ms"] = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000
        else:
            out["latency_p99_ms"] = None
        return out


class MetricSource(Protocol):
    def metric_rows(self) -> Iterable[tuple[str, TierStats, bool]]:
        """(tier name, its stats, breaker open?) per tier."""
        ...


_sources: weakref.WeakSet[Any] = weakref.WeakSet()
_retired: dict[str, TierStats] = {}


def track(source: MetricSource) -> None:
    _sources.add(source)


def retire(source: MetricSource) -> None:
    """Keep a closing cache's counts so Prometheus counters never go backwards."""
    if source in _sources:
        for tier, stats, _open in source.metric_rows():
            _retired.setdefault(tier, TierStats()).add(stats)
        _sources.discard(source)


class _CacheCollector(Collector):
    def collect(self) -> Iterator[Any]:
        totals: dict[str, TierStats] = {}
        breaker: dict[str, float] = {}
        for tier, stats in _retired.items():
            totals.setdefault(tier, TierStats()).add(stats)
        for source in list(_sources):
            for tier, stats, is_open in source.metric_rows():
                totals.setdefault(tier, TierStats()).add(stats)
                breaker[tier] = max(breaker.get(tier, 0.0), 1.0 if is_open else 0.0)
        families = {
            name: CounterMetricFamily(f"warmfleet_cache_{name}", help_, labels=["tier"])
            for name, help_ in (
                ("hits", "Cache lookups answered by this tier"),
                ("misses", "Cache lookups this tier could not answer"),
                ("errors", "Tier calls that failed or timed out"),
                ("promotions", "Lower-tier hits copied up into this tier"),
            )
        }
        latency = HistogramMetricFamily(
            "warmfleet_cache_latency_seconds", "Latency of L2/L3 tier calls", labels=["tier"]
        )
        open_gauge = GaugeMetricFamily(
            "warmfleet_cache_breaker_open", "1 while the tier's circuit breaker is open",
            labels=["tier"],
        )  # fmt: skip
        for tier, stats in sorted(totals.items()):
            for name, family in families.items():
                family.add_metric([tier], getattr(stats, name))
            if stats.latency_count:
                cumulative, acc = [], 0
                for bound, count in zip(LATENCY_BUCKETS, stats.buckets, strict=True):
                    acc += count
                    cumulative.append(("+Inf" if math.isinf(bound) else repr(bound), acc))
                latency.add_metric([tier], cumulative, stats.latency_sum)
            open_gauge.add_metric([tier], breaker.get(tier, 0.0))
        yield from families.values()
        yield latency
        yield open_gauge


COLLECTOR = _CacheCollector()
REGISTRY.register(COLLECTOR)
