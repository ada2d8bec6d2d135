"""Per-tier counters and whole-read outcomes as plain ints, exported to Prometheus lazily.

The hit path must stay tiny, so nothing here runs per L1 read: caches count in plain
attributes and ONE module-level collector sums every live cache (plus the totals of closed
ones) when Prometheus scrapes. Many caches in one process therefore never collide on
metric registration. Latency is observed for L2/L3 calls only; an L1 hit is a dict lookup
and timing it would cost more than the lookup.

Whole reads (the seed's table): every read ends in exactly one outcome — answered by
``l1``, ``l2``, ``l3``, ``stale`` (a copy past its fresh TTL, accepted by the reader) or
``miss`` — so the shares of ``warmfleet_cache_reads_total{outcome}`` sum to 100 %.
``warmfleet_cache_read_seconds`` times each read below L1 from the miss to its answer; L1
hits are added to its first bucket (10 us) when scraped — an L1 hit takes well under
one microsecond, and timing each would cost more than the hit. ``read_summary()`` and
``summarize_text()`` turn these into shares, p50/p95/p99 and the error rate for
``warmfleet status``.
"""

from __future__ import annotations

import bisect
import math
import weakref
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, Protocol

from prometheus_client import REGISTRY
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

#: seconds; upper bounds of the latency histogram (the last is +Inf)
LATENCY_BUCKETS: tuple[float, ...] = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, math.inf,
)  # fmt: skip
COUNTERS = ("hits", "misses", "errors", "promotions", "skipped", "writes", "stale")
#: what a whole read ended as, shallow to deep; the shares of all reads sum to 1
OUTCOMES = ("l1", "l2", "l3", "stale", "miss")
#: seconds; upper bounds of the whole-read histogram (the last is +Inf)
READ_BUCKETS: tuple[float, ...] = (
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
    0.05, 0.1, 0.25, 0.5, 1.0, math.inf,
)  # fmt: skip


class ReadStats:
    """Outcomes, latency and errors of whole reads (``MultiTierCache.get``)."""

    __slots__ = ("buckets", "counts", "errors", "latency_sum")

    def __init__(self) -> None:
        self.counts = dict.fromkeys(OUTCOMES, 0)
        self.buckets = [0] * len(READ_BUCKETS)
        self.latency_sum = 0.0
        self.errors = 0  # reads during which a tier they needed failed

    def record(self, outcome: str, seconds: float) -> None:
        self.counts[outcome] += 1
        self.buckets[bisect.bisect_left(READ_BUCKETS, seconds)] += 1
        self.latency_sum += seconds

    def add(self, other: ReadStats) -> None:
        for outcome, n in other.counts.items():
            self.counts[outcome] += n
        self.buckets = [a + b for a, b in zip(self.buckets, other.buckets, strict=True)]
        self.latency_sum += other.latency_sum
        self.errors += other.errors

    def with_l1_hits(self, hits: int) -> ReadStats:
        """A copy with ``hits`` L1 hits added (in the first latency bucket)."""
        out = ReadStats()
        out.add(self)
        out.counts["l1"] += hits
        out.buckets[0] += hits
        return out

    def summary(self) -> dict[str, Any]:
        acc, cumulative = 0, []
        for bound, count in zip(READ_BUCKETS, self.buckets, strict=True):
            acc += count
            cumulative.append((bound, float(acc)))
        return summarize_reads(self.counts, cumulative, self.errors)


def summarize_reads(
    counts: Mapping[str, float], cumulative: Sequence[tuple[float, float]], errors: float
) -> dict[str, Any]:
    """``{"reads", "shares": {outcome: fraction}, "p50_ms", "p95_ms", "p99_ms", "errors",
    "error_rate"}`` from outcome counts and a cumulative histogram ((upper bound s, count)
    pairs, ascending, the last +Inf). Quantiles interpolate inside a bucket, as
    Prometheus' ``histogram_quantile`` does; None without reads."""
    total = float(sum(counts.get(o, 0) for o in OUTCOMES))
    out: dict[str, Any] = {
        "reads": int(total),
        "shares": {o: (counts.get(o, 0) / total if total else None) for o in OUTCOMES},
        "errors": int(errors),
        "error_rate": errors / total if total else None,
    }
    for name, q in (("p50_ms", 0.50), ("p95_ms", 0.95), ("p99_ms", 0.99)):
        out[name] = _quantile(q, cumulative) * 1000 if cumulative and cumulative[-1][1] else None
    return out


def _quantile(q: float, cumulative: Sequence[tuple[float, float]]) -> float:
    rank = q * cumulative[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in cumulative:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound  # beyond the last finite bucket: its bound, as Prometheus
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (
                count - lower_count
            )
        lower_bound, lower_count = bound, count
    return lower_bound


def summarize_text(text: str) -> dict[str, Any]:
    """``summarize_reads`` of one process's ``/metrics`` text (what ``warmfleet status``
    scrapes); sum several processes by concatenating their texts' samples first."""
    from prometheus_client.parser import text_string_to_metric_families

    counts: dict[str, float] = {}
    buckets: dict[float, float] = {}
    errors = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "warmfleet_cache_reads_total":
                outcome = sample.labels.get("outcome", "")
                counts[outcome] = counts.get(outcome, 0.0) + sample.value
            elif sample.name == "warmfleet_cache_read_seconds_bucket":
                bound = float(sample.labels["le"])
                buckets[bound] = buckets.get(bound, 0.0) + sample.value
            elif sample.name == "warmfleet_cache_read_errors_total":
                errors += sample.value
    return summarize_reads(counts, sorted(buckets.items()), errors)


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

    def read_stats(self) -> ReadStats:
        """Whole reads so far, L1 hits included."""
        ...


_sources: weakref.WeakSet[Any] = weakref.WeakSet()
_retired: dict[str, TierStats] = {}
_retired_reads = ReadStats()


def read_summary() -> dict[str, Any]:
    """Shares of all reads (l1, l2, l3, stale, miss), p50/p95/p99 ms and the error rate,
    over every cache of this process (closed ones included)."""
    return _read_totals().summary()


def _read_totals() -> ReadStats:
    totals = ReadStats()
    totals.add(_retired_reads)
    for source in list(_sources):
        totals.add(source.read_stats())
    return totals


def track(source: MetricSource) -> None:
    _sources.add(source)


def retire(source: MetricSource) -> None:
    """Keep a closing cache's counts so Prometheus counters never go backwards."""
    if source in _sources:
        for tier, stats, _open in source.metric_rows():
            _retired.setdefault(tier, TierStats()).add(stats)
        _retired_reads.add(source.read_stats())
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
        yield from _read_families(_read_totals())


def _read_families(reads: ReadStats) -> Iterator[Any]:
    outcomes = CounterMetricFamily(
        "warmfleet_cache_reads", "Whole reads by what answered them (l1, l2, l3, stale, miss)",
        labels=["outcome"],
    )  # fmt: skip
    for outcome in OUTCOMES:
        outcomes.add_metric([outcome], reads.counts[outcome])
    yield outcomes
    cumulative, acc = [], 0
    for bound, count in zip(READ_BUCKETS, reads.buckets, strict=True):
        acc += count
        cumulative.append(("+Inf" if math.isinf(bound) else repr(bound), acc))
    latency = HistogramMetricFamily(
        "warmfleet_cache_read_seconds",
        "Whole-read latency; L1 hits are counted in the first bucket, untimed",
    )
    latency.add_metric([], cumulative, reads.latency_sum)
    yield latency
    errors = CounterMetricFamily(
        "warmfleet_cache_read_errors", "Reads during which a tier they needed failed"
    )
    errors.add_metric([], reads.errors)
    yield errors


COLLECTOR = _CacheCollector()
REGISTRY.register(COLLECTOR)
