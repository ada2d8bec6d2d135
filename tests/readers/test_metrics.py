from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from readers._metrics import RequestStats


def test_request_counts_and_latency_become_prometheus_families() -> None:
    stats = RequestStats()
    for seconds in (0.0001, 0.0005, 0.003, 0.7):
        stats.record("/v2/overview", 200, seconds)
    stats.record("/v2/overview", 404, 0.002)
    stats.record("unmatched", 404, 0.0002)
    registry = CollectorRegistry()
    registry.register(stats)
    text = generate_latest(registry).decode()
    assert 'warmfleet_reader_requests_total{route="/v2/overview",status="200"} 4.0' in text
    assert 'warmfleet_reader_requests_total{route="/v2/overview",status="404"} 1.0' in text
    # histograms are per route over all statuses, cumulative, le-inclusive
    assert 'warmfleet_reader_request_seconds_bucket{le="0.0005",route="/v2/overview"} 2.0' in text
    assert 'warmfleet_reader_request_seconds_bucket{le="0.0025",route="/v2/overview"} 3.0' in text
    assert 'warmfleet_reader_request_seconds_bucket{le="0.5",route="/v2/overview"} 4.0' in text
    assert 'warmfleet_reader_request_seconds_bucket{le="+Inf",route="/v2/overview"} 5.0' in text
    assert 'warmfleet_reader_request_seconds_count{route="/v2/overview"} 5.0' in text
    assert "warmfleet_reader_connection_cap_reached_total 0.0" in text
