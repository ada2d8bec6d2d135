"""Baseline for bench_agents_throughput: the same Faust app plumbing (transport, take_events
batches) doing nothing with the events, so the ratio shows what the agents' work costs."""

from __future__ import annotations

import os

import faust
from prometheus_client import Counter, start_http_server

from topics import MARKET_TICKERS
from workers.agents._progress import Progress
from workers.agents.app import AgentsApp

ns = os.environ["BENCH_NAMESPACE"]
EVENTS = Counter("bench_bare_events_total", "events", ["topic"])
app = AgentsApp(
    f"{ns}bare", broker=os.environ.get("WARMFLEET_KAFKA_URL", "kafka://127.0.0.1:9092"),
    store="memory://", topic_replication_factor=1, web_enabled=False, producer_acks=-1,
)  # fmt: skip
source = app.topic(
    MARKET_TICKERS.named(ns), partitions=MARKET_TICKERS.partitions, key_type=bytes,
    value_type=bytes, key_serializer="raw", value_serializer="raw",
)  # fmt: skip


@app.agent(source)
async def count(stream: faust.StreamT[bytes]) -> None:
    async for events in stream.take_events(2000, within=0.01):
        EVENTS.labels("tickers").inc(len(events))


@app.task
async def metrics() -> None:
    start_http_server(int(os.environ["WARMFLEET_METRICS_PORT"]))


class _NoRuntime:
    progress = Progress()  # guards nothing: commits pass through unchanged

    async def close(self) -> None:
        return None


app.runtime = _NoRuntime()  # type: ignore[assignment]
AgentsApp.on_first_start = faust.App.on_first_start  # type: ignore[method-assign]
