"""The market overview, per exchange and ``all``, at the overview interval.

The ticker table is partitioned across workers, and the overview needs every symbol.
Design: each worker, at the overview interval, publishes one snapshot per *active*
ticker partition it owns (the compact overview rows of that partition, even when empty)
to a single-partition topic. One agent (the single partition goes to exactly one worker
of the group) keeps the newest snapshot per partition and computes the overviews from
their union with the pure ``overviews()``. Nothing per event crosses workers; a rebalance
just changes who sends a partition's snapshot (the newest ``computed_ms`` wins), and the
merger waits until every partition has reported once (or two intervals have passed)
before its first overview, so a restart never publishes an overview of a partial market.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

import faust
import orjson
import structlog
from faust.types import EventT, StreamT

from tiers import CacheError, Write
from topics import ANALYSIS_OVERVIEW, MARKET_TICKERS, now_ms
from topics.records import MarketOverview
from workers.agents._metrics import FRESHNESS, LAG, OVERVIEWS, WRITE_ERRORS
from workers.agents._refill import NO_PARTITION
from workers.agents._runtime import OVERVIEW_PARTS, Runtime, record_bytes
from workers.agents._symbol_stream import SymbolStream, count_tier_writes
from workers.analytics import OverviewRow, overview_row, overviews

log = structlog.get_logger(__name__)

TICK_S = 0.5  # how often the timer checks whether a snapshot is due


class OverviewAgents:
    def __init__(self, app: faust.App, rt: Runtime, symbols: SymbolStream) -> None:
        self.app, self.rt, self.symbols = app, rt, symbols
        self.parts = app.topic(
            rt.parts_topic, partitions=OVERVIEW_PARTS.partitions, key_type=bytes,
            value_type=bytes, key_serializer="raw", value_serializer="raw",
        )  # fmt: skip
        self.out = app.topic(
            rt.overview_topic, partitions=ANALYSIS_OVERVIEW.partitions, key_type=bytes,
            value_type=bytes, key_serializer="raw", value_serializer="raw",
        )  # fmt: skip
        self.last_snapshot = 0.0
        #: merger state: partition -> (computed_ms, rows)
        self.latest: dict[int, tuple[int, list[OverviewRow]]] = {}
        self.merger_started = 0.0
        self.computed = 0
        app.timer(TICK_S, name="snapshot_partitions")(self.snapshot_partitions)
        app.agent(self.parts, name="compute_overview")(self.compute_overview)

    # ---- every worker: snapshots of its own partitions ---------------------------------

    async def snapshot_partitions(self) -> None:
        self.observe_lag()
        if not self.rt.phase.due("overview", self.last_snapshot):  # the clock's rule, see _phase
            return
        store = self.symbols.store
        if store.recovering:
            return  # the tables are being rebuilt; the next tick will do
        owned = set(store.owned)
        if not owned:
            return
        self.last_snapshot = time.monotonic()
        rows: dict[int, list[dict[str, Any]]] = {p: [] for p in owned}
        ages: list[int] = []
        for partition, state in store.rows():
            if partition in rows:
                rows[partition].append(overview_row(state).to_dict())
                ages.append(state.as_of_ms)
        computed = now_ms()
        for partition, members in sorted(rows.items()):
            body = {"partition": partition, "computed_ms": computed, "rows": members}
            await self.parts.send(key=str(partition).encode(), value=orjson.dumps(body))
        if ages:
            FRESHNESS.labels("volatility", "freshest").set((computed - max(ages)) / 1000)
            FRESHNESS.labels("volatility", "stalest").set((computed - min(ages)) / 1000)

    def observe_lag(self) -> None:
        monitor = self.app.monitor
        ends, reads = monitor.tp_end_offsets or {}, monitor.tp_read_offsets or {}
        lag: dict[str, int] = {}
        for tp, end in ends.items():
            read = reads.get(tp)
            if read is not None:
                lag[tp.topic] = lag.get(tp.topic, 0) + max(end - read - 1, 0)
        for topic, value in lag.items():
            LAG.labels(topic).set(value)

    # ---- one worker: the merge ----------------------------------------------------------

    async def compute_overview(self, stream: StreamT[bytes]) -> None:
        self.merger_started = time.monotonic()
        # Faust's StreamT protocol lacks take_events, which its Stream has
        async for events in stream.take_events(500, within=0.2):  # type: ignore[attr-defined]
            self.take(events)
            if self.ready():
                await self.publish()
            self.rt.progress.mark(events)

    def take(self, events: Sequence[EventT[Any]]) -> None:
        for event in events:
            try:
                body = orjson.loads(event.message.value or b"")
                partition, computed = int(body["partition"]), int(body["computed_ms"])
                rows = [OverviewRow.from_dict(r) for r in body["rows"]]
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                log.warning("overview_snapshot_rejected", error=str(exc))
                continue
            held = self.latest.get(partition)
            if held is None or computed >= held[0]:
                self.latest[partition] = (computed, rows)

    def ready(self) -> bool:
        if len(self.latest) >= MARKET_TICKERS.partitions:
            return True
        waited = time.monotonic() - self.merger_started
        return waited >= 2 * self.rt.interval("overview")

    async def publish(self) -> None:
        rt = self.rt
        rows = [row for _, members in self.latest.values() for row in members]
        every = overviews(rows, computed_ms=now_ms())
        writes = [
            Write(rt.key("overview", scope), overview, "overview", overview["as_of_ms"])
            for scope, overview in every.items()
            if overview["symbols"] > 0
        ]
        interval = rt.interval("overview")
        rt.kept.remember(writes, [NO_PARTITION] * len(writes), now_ms(), interval)
        try:
            count_tier_writes(await rt.cache.set_many(writes, warm_interval=interval))
        except (CacheError, ValueError) as exc:
            WRITE_ERRORS.labels(type(exc).__name__).inc()
            log.error("overview_write_failed", error=str(exc))
        sent = []
        for scope, overview in every.items():
            if overview["symbols"] == 0:
                continue
            OVERVIEWS.labels(scope).inc()
            value = record_bytes(MarketOverview, overview)
            sent.append(await self.out.send(key=scope.encode(), value=value))
        await asyncio.gather(*sent)
        self.computed += 1
