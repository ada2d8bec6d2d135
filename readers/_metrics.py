"""The reader's Prometheus metrics, counted with plain ints on the hot path.

``prometheus_client``'s ``Counter.inc`` and ``Histogram.observe`` take a lock and walk the
buckets on every call; at tens of thousands of requests a second that is a visible share
of the reader's budget. The counts here are plain ints in dicts (one event loop per process:
no lock needed) and become the same metric families — ``warmfleet_reader_requests_total``
and ``warmfleet_reader_request_seconds`` — only when ``/metrics`` is scraped.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator

from prometheus_client import REGISTRY
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5)
#: served age, seconds: the freshness classes (15 s, 1 m, 5 m) are bucket bounds, so the
#: alert on p99 above the class (deploy/prometheus/alerts.yml) is exact at the class
AGE_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200)


class RequestStats(Collector):
    """Requests per (route, status) and latency per route, folded into metrics on scrape."""

    def __init__(self) -> None:
        # (route, status) -> [count per bucket ..., +Inf, sum of seconds]: one dict lookup
        # per request; requests and the per-route histogram are both sums of these rows
        self.rows: dict[tuple[str, int], list[float]] = {}
        # data type -> [count per age bucket ..., +Inf, sum of seconds], warm answers only
        self.ages: dict[str, list[float]] = {}
        self.open_connections = 0  # sampled by the connection watcher
        self.connection_cap = 0
        self.cap_reached = 0

    def record(self, route: str, status: int, seconds: float) -> None:
        row = self.rows.get((route, status))
        if row is None:
            row = self.row(route, status)
        row[bisect_left(BUCKETS, seconds)] += 1  # le: a value equal to a bound is in it
        row[-1] += seconds

    def row(self, route: str, status: int) -> list[float]:
        """The (route, status) row ``record`` counts into (the caller may keep it and count
        into it the same way: the reader's hot path does)."""
        row = self.rows.get((route, status))
        if row is None:
            row = self.rows[(route, status)] = [0.0] * (len(BUCKETS) + 2)
        return row

    def age_row(self, data_type: str) -> list[float]:
        """``data_type``'s served-age row, for ``served`` (the caller may keep it)."""
        row = self.ages.get(data_type)
        if row is None:
            row = self.ages[data_type] = [0.0] * (len(AGE_BUCKETS) + 2)
        return row

    def requests(self) -> dict[tuple[str, int], int]:
        return {pair: int(sum(row[:-1])) for pair, row in self.rows.items()}

    def latency(self) -> dict[str, list[float]]:
        """route -> [count per bucket ..., +Inf, sum], over all statuses."""
        out: dict[str, list[float]] = {}
        for (route, _), row in self.rows.items():
            total = out.setdefault(route, [0.0] * len(row))
            for i, value in enumerate(row):
                total[i] += value
        return out

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "warmfleet_reader_requests", "Reader HTTP requests", labels=["route", "status"]
        )
        for (route, status), n in sorted(self.requests().items()):
            requests.add_metric([route, str(status)], n)
        yield requests
        latency = HistogramMetricFamily(
            "warmfleet_reader_request_seconds", "Reader HTTP request latency", labels=["route"]
        )
        for route, row in sorted(self.latency().items()):
            latency.add_metric([route], _cumulative(BUCKETS, row), sum_value=row[-1])
        yield latency
        ages = HistogramMetricFamily(
            "warmfleet_reader_served_age_seconds",
            "Age (now - as_of) of the warm answers the reader served, per data type",
            labels=["data_type"],
        )
        for data_type, row in sorted(self.ages.items()):
            ages.add_metric([data_type], _cumulative(AGE_BUCKETS, row), sum_value=row[-1])
        yield ages
        yield GaugeMetricFamily(
            "warmfleet_reader_open_connections",
            "Client connections open on this reader process's port, sampled each second",
            value=self.open_connections,
        )
        yield GaugeMetricFamily(
            "warmfleet_reader_connection_cap",
            "The most client connections this reader process accepts at once",
            value=self.connection_cap,
        )
        yield CounterMetricFamily(
            "warmfleet_reader_connection_cap_reached",
            "Times the open connections reached the cap (new ones wait in the listen backlog)",
            value=self.cap_reached,
        )


def served(row: list[float], age_s: float) -> None:
    """A warm answer (200 or 304) was ``age_s`` old (now - as_of); ``row`` is its data
    type's ``RequestStats.age_row``. A future ``as_of`` counts as age 0."""
    if age_s > 0:
        row[bisect_left(AGE_BUCKETS, age_s)] += 1
        row[-1] += age_s
    else:
        row[0] += 1


def _cumulative(bounds: tuple[float, ...], row: list[float]) -> list[tuple[str, float]]:
    """Per-bucket counts (+Inf last, then the sum) -> Prometheus' cumulative buckets."""
    cumulative, buckets = 0.0, list[tuple[str, float]]()
    for bound, count in zip((*map(str, bounds), "+Inf"), row[:-1], strict=True):
        cumulative += count
        buckets.append((bound, cumulative))
    return buckets


STATS = RequestStats()
REGISTRY.register(STATS)
