"""The per-symbol hot path: ``market.tickers``, ``market.ohlcv`` and ``market.books`` ->
table state -> volatility, signals, the latest ticker, book top and candle rows in all
three tiers -> ``analysis.symbols``. What it wrote is kept for the cold-tier refill
(``workers/agents/_refill.py``), which runs beside it.

It is a service of the Faust app (started and stopped with the worker), but it reads its
topics with one aiokafka consumer and ``getmany`` batches rather than through a Faust
agent: Faust hands an agent one message at a time, and a Faust agent that does nothing
with its events tops out at 12,000-15,000 events/s on this 2-core machine (25,000 on a
quiet one; ``bench/bench_agents_throughput.py``), below the 20,000/s one worker must
sustain. README.md has the figures.

Delivery is at-least-once with exactly-once effects:

- The consumer group ``<app id>-symbols`` subscribes to the source topics with the range
  assignor, which gives the same partition numbers of all three (co-partitioned by key)
  to the same worker. The tables of those partitions are read from their changelogs
  (``workers/agents/_store.py``) before any of their events is processed.
- One batch: decode and validate each event (bad ones -> dead-letter topic with the reason
  and the original bytes); skip any whose ``as_of_ms`` is not newer than the state's, so
  duplicates and reorders never double count or regress; fold the rest (only the newest
  state per key leaves the batch); write every tier with one ``set_many`` per warm
  interval; queue ``analysis.symbols``, the dead letters and the changelog records as one
  Kafka batch per partition. The next batch is handled while they travel; a batch's
  offsets count as processed once its records and every earlier batch's are acknowledged.
- Offsets are committed every second, before a rebalance takes partitions away, and on
  shutdown -- only what was processed. A replay after a crash re-reads the changelog, which
  is never behind a committed offset, and skips what it already counted.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

import mode
import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.errors import KafkaError
from aiokafka.partitioner import DefaultPartitioner

from tiers import CacheError, Write
from topics import (
    ANALYSIS_SYMBOLS,
    DEAD_LETTER,
    MARKET_BOOKS,
    MARKET_OHLCV,
    MARKET_TICKERS,
    now_ms,
    symbol_key,
)
from topics.kafka import start_producer
from topics.records import DeadLetter, SymbolAnalysis
from topics.tasks import cancel_and_wait
from workers.agents._deadletter import count_dead_letter, dead_letter
from workers.agents._decode import InvalidEvent, decode_book, decode_candles, decode_ticker
from workers.agents._fold import WRITTEN, Folded, accepted, merge_series, newer
from workers.agents._metrics import (
    EVENTS,
    LAG,
    PROCESSED,
    STALE,
    TIER_LATENCY,
    TIER_WRITES,
    WRITE_ERRORS,
    WRITE_SECONDS,
    observe_many,
)  # fmt: skip
from workers.agents._outbox import Outbox
from workers.agents._refill import Refill
from workers.agents._runtime import Runtime, record_bytes
from workers.agents._store import SymbolStore, candles_value, ticker_value
from workers.analytics import (
    candle_state,
    observe_ticker,
    symbol_analysis,
)

log = structlog.get_logger(__name__)

# analysis.symbols is published to the source partition, which is the key's partition there
assert ANALYSIS_SYMBOLS.partitions == MARKET_TICKERS.partitions
# one worker owns a symbol's ticker, candles and book: the range assignor needs equal counts
assert MARKET_TICKERS.partitions == MARKET_OHLCV.partitions == MARKET_BOOKS.partitions

Batch = Mapping[TopicPartition, Sequence[ConsumerRecord[bytes, bytes]]]

COMMIT_EVERY_S = 1.0
#: batches whose records may be on their way to Kafka while the next batch is handled
MAX_IN_FLIGHT = 4
_PARTITIONER = DefaultPartitioner()
_DEAD_LETTER_PARTITIONS = list(range(DEAD_LETTER.partitions))


def count_tier_writes(*answers: list[dict[str, float]]) -> None:
    counts: dict[str, int] = {}
    for answer in answers:
        for written in answer:
            for tier in written:
                counts[tier] = counts.get(tier, 0) + 1
    for tier, n in counts.items():
        TIER_WRITES.labels(tier).inc(n)


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, stream: SymbolStream) -> None:
        self.stream = stream

    async def on_partitions_revoked(self, revoked: Sequence[TopicPartition]) -> None:
        await self.stream.revoke({tp.partition for tp in revoked})

    async def on_partitions_assigned(self, assigned: Sequence[TopicPartition]) -> None:
        await self.stream.assign({tp.partition for tp in assigned})


class SymbolStream(mode.Service):
    """Consumes the source topics in batches for as long as the worker runs."""

    def __init__(self, rt: Runtime, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.rt = rt
        self.store = SymbolStore(rt.settings.namespace, rt.settings.contract_limits)
        self.group_id = f"{rt.app_id}-symbols"
        #: the batch in flight and every commit / rebalance step take turns
        self.lock = asyncio.Lock()
        #: (topic, partition) -> next offset to process, for the batches fully handled
        self.processed: dict[TopicPartition, int] = {}
        self.committed: dict[TopicPartition, int] = {}
        self.batches = 0
        self._consumer: AIOKafkaConsumer | None = None
        self._reader: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self.refill: Refill | None = None
        self._refill_task: asyncio.Task[None] | None = None
        #: deliveries of handled batches, oldest first; each waits for the one before it
        self._deliveries: deque[asyncio.Task[None]] = deque()
        self._undelivered = False
        self._committing: asyncio.Task[None] | None = None
        self._stopping = False

    # ---- lifecycle ----------------------------------------------------------------------

    async def on_start(self) -> None:
        settings = self.rt.settings
        common: dict[str, Any] = {
            "bootstrap_servers": ",".join(settings.kafka_servers),
            **settings.kafka_client_options(),
        }
        self._producer = await start_producer(
            settings.kafka_servers, settings.kafka_client_options(), linger_ms=2,
            max_batch_size=1024 * 1024, max_request_size=4 * 1024 * 1024,
        )  # fmt: skip
        self._reader = AIOKafkaConsumer(
            **common, group_id=None, enable_auto_commit=False, auto_offset_reset="earliest"
        )
        self._consumer = AIOKafkaConsumer(
            **common,
            group_id=self.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            partition_assignment_strategy=(RangePartitionAssignor,),
            session_timeout_ms=10_000,  # a killed worker's partitions move within ~10 s
            heartbeat_interval_ms=2_000,
            max_partition_fetch_bytes=4 * 1024 * 1024,
        )
        await self._reader.start()
        await self._consumer.start()
        self._consumer.subscribe(
            [self.rt.tickers_topic, self.rt.ohlcv_topic, self.rt.books_topic],
            listener=_Rebalance(self),
        )
        # Everything built so far (modules, Faust's app, the clients) lives as long as the
        # worker; out of the collector's sight, a full collection no longer walks it in the
        # middle of a batch (p99 produce -> tiers at 1,000 events/s: ~28 -> ~22 ms here).
        gc.collect()
        gc.freeze()
        self._loop_task = asyncio.create_task(self._run(), name="symbol-stream")
        self.refill = Refill(self.rt.cache, self.rt.kept, prefix=self.rt.settings.key_prefix)
        self._refill_task = asyncio.create_task(self.refill.run(), name="tier-refill")
        loop = type(asyncio.get_running_loop()).__module__.partition(".")[0]
        log.info("symbol_stream_started", group=self.group_id, loop=loop)

    async def on_stop(self) -> None:
        # before mode cancels anything: let the batch in flight finish, then commit it
        self._stopping = True
        await cancel_and_wait(self._refill_task)
        if self._loop_task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._loop_task), timeout=30)
            except TimeoutError:
                log.error("symbol_stream_stop_timeout", waited_s=30)
                self._loop_task.cancel()
        async with self.lock:
            await self._commit()
        for client in (self._consumer, self._reader, self._producer):
            if client is not None:
                try:
                    await client.stop()
                except KafkaError as exc:
                    log.warning("kafka_client_stop_failed", error=str(exc))
        log.info("symbol_stream_stopped", batches=self.batches, committed=len(self.committed))

    # ---- the loop -----------------------------------------------------------------------

    async def _run(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        last_commit = time.monotonic()
        while not self._stopping:
            try:
                batch = await consumer.getmany(timeout_ms=100, max_records=self.rt.batch_max)
                if batch:
                    async with self.lock:
                        await self._guarded(batch)
                if time.monotonic() - last_commit >= COMMIT_EVERY_S:
                    # off the loop: what is processed (delivered) is committed while the
                    # next batches are handled; a rebalance or shutdown waits for it
                    if self._committing is None or self._committing.done():
                        self._committing = asyncio.create_task(self._commit(drain=False))
                    self._observe_lag()
                    last_commit = time.monotonic()
            except KafkaError as exc:
                log.warning("consume_failed", error=str(exc), retry_in_s=1.0)
                await asyncio.sleep(1.0)
            except Exception:
                # never a silent stop: the worker stays up, logs, and tries again
                log.exception("symbol_stream_error", retry_in_s=1.0)
                await asyncio.sleep(1.0)

    async def _guarded(self, batch: Batch) -> None:
        """``handle(batch)``; if it fails for an unforeseen reason, the consumer goes back
        to the batch's first offsets so nothing is skipped, and the failure is logged."""
        consumer, reader = self._consumer, self._reader
        assert consumer is not None and reader is not None
        try:
            # partitions whose tables could not be recovered at assignment (Kafka trouble)
            missing = {tp.partition for tp in consumer.assignment()} - self.store.owned
            if missing:
                await self.store.recover(reader, missing)
            await self.handle(batch)
        except Exception as exc:
            if isinstance(exc, KafkaError):
                log.warning("batch_deferred", error=str(exc), retry_in_s=1.0)
            else:
                log.exception("batch_failed", partitions=len(batch), retry_in_s=1.0)
            owned = consumer.assignment()
            for tp, records in batch.items():
                if tp in owned and records:
                    consumer.seek(tp, records[0].offset)
            await asyncio.sleep(1.0)

    async def handle(self, batch: Batch) -> None:
        store, rt = self.store, self.rt
        tickers_topic, ohlcv_topic, books_topic = rt.tickers_topic, rt.ohlcv_topic, rt.books_topic
        folded = Folded()
        ticks, candles, series, books = folded.ticks, folded.candles, folded.series, folded.books
        stamps, partition_of, rejected = folded.stamps, folded.partition_of, folded.rejected
        processed: dict[TopicPartition, int] = {}
        limits = rt.settings.contract_limits
        now = now_ms()
        horizon = now + limits.max_ahead_ms  # a state newer than this came from the future
        for tp, records in batch.items():
            if tp.partition not in store.owned or not records:
                continue  # revoked after the fetch: the new owner reads these again
            processed[tp] = records[-1].offset + 1
            EVENTS.labels(tp.topic).inc(len(records))
            stale = 0
            if tp.topic == tickers_topic:
                for record, (key, view, document) in accepted(
                    decode_ticker, records, now, limits, rejected
                ):
                    fold, state = newer(
                        key, view.as_of_ms, ticks, store.ticks, store.heal_ticks, horizon
                    )
                    if not fold:
                        stale += 1
                        continue
                    ticks[key] = observe_ticker(state, view)
                    stamps.append(record.timestamp)
                    folded.documents[key] = document
                    partition_of[key] = tp.partition
            elif tp.topic == ohlcv_topic:
                for record, (key, cview) in accepted(
                    decode_candles, records, now, limits, rejected
                ):
                    merged = merge_series(folded, store, cview, tp.partition, horizon)
                    fold, previous = newer(
                        key, cview.as_of_ms, candles, store.candles, store.heal_candles, horizon
                    )
                    if fold:
                        candles[key] = candle_state(
                            cview.exchange, cview.symbol, cview.timeframe, cview.rows,
                            cview.as_of_ms, previous,
                        )  # fmt: skip
                        partition_of[key] = tp.partition
                    if fold or merged:
                        stamps.append(record.timestamp)
                    else:
                        stale += 1
            elif tp.topic == books_topic:
                for record, (key, document, as_of) in accepted(
                    decode_book, records, now, limits, rejected
                ):
                    held = books.get(key)
                    newest = held[1] if held is not None else store.books.get(key)
                    if newest is not None and as_of <= newest <= horizon:
                        stale += 1
                        continue
                    books[key] = (document, as_of, tp.partition)
                    stamps.append(record.timestamp)
            if stale:
                STALE.labels(tp.topic).inc(stale)
        assert self._producer is not None
        outbox = Outbox(self._producer)
        for bad, why in rejected:
            self._dead_letter(outbox, bad, why)
        if partition_of or books or series:
            if await self._write_tiers(folded, outbox):
                written = time.time() * 1000.0
                observe_many(TIER_LATENCY, [(written - stamp) / 1000.0 for stamp in stamps])
            for key, state in ticks.items():
                outbox.add(
                    store.ticks_changelog, partition_of[key], key.encode(),
                    ticker_value(state, partition_of[key]),
                )  # fmt: skip
            for key, cstate in candles.items():
                outbox.add(
                    store.candles_changelog, partition_of[key], key.encode(), candles_value(cstate)
                )
            for skey, (kept, partition) in series.items():
                outbox.add(store.series_changelog, partition, skey.encode(), kept.to_bytes())
                store.series[skey] = kept
                store.series_partition[skey] = partition
            for key, (_, as_of, partition) in books.items():
                store.books[key] = as_of
                store.partition_of.setdefault(key, partition)
            store.ticks.update(ticks)
            store.candles.update(candles)
            store.partition_of.update(partition_of)
        # The next batch is handled while this one's records travel; its offsets count as
        # processed once they and every earlier batch's records are acknowledged.
        counts = {tp: len(records) for tp, records in batch.items() if tp in processed}
        before = self._deliveries[-1] if self._deliveries else None
        self._deliveries.append(
            asyncio.create_task(self._deliver(outbox, processed, counts, before))
        )
        while len(self._deliveries) > MAX_IN_FLIGHT:
            await self._deliveries.popleft()

    async def _deliver(
        self,
        outbox: Outbox,
        processed: dict[TopicPartition, int],
        counts: dict[TopicPartition, int],
        previous: asyncio.Task[None] | None,
    ) -> None:
        try:
            delivered = await outbox.deliver(should_stop=lambda: self._stopping)
        except Exception:
            log.exception("batch_delivery_failed", records=len(outbox))
            delivered = False
        if previous is not None:
            await previous
        if not delivered or self._undelivered:
            # only when shutting down with Kafka unreachable (or a bug, logged above): no
            # later offset may count as processed; a replay redoes these from the changelog
            if not self._undelivered:
                log.error("batch_not_delivered", records=sum(counts.values()))
            self._undelivered = True
            return
        self.processed.update(processed)
        self.batches += 1
        for tp, n in counts.items():
            PROCESSED.labels(tp.topic).inc(n)

    async def _drain_deliveries(self) -> None:
        while self._deliveries:
            await self._deliveries.popleft()

    async def _write_tiers(self, folded: Folded, outbox: Outbox) -> bool:
        """Each symbol's analysis, signals and (for a new ticker) its latest ticker, and
        every new book top and candle series, through all tiers; then the symbols'
        ``analysis.symbols`` records into ``outbox``. False when a tier write raised
        (counted and logged; the stream carries on)."""
        rt, store = self.rt, self.store
        computed = now_ms()
        analyses: list[tuple[str, dict[str, Any]]] = []
        # data type -> its writes and, for the refill, the source partition of each
        writes: dict[str, tuple[list[Write], list[int]]] = {
            data_type: ([], []) for data_type in WRITTEN
        }
        volatility, vol_at = writes["volatility"]
        signals, signals_at = writes["signals"]
        latest, latest_at = writes["tickers"]
        partition_of, documents = folded.partition_of, folded.documents
        for key, partition in partition_of.items():
            ticks = folded.ticks.get(key) or store.ticks.get(key)
            candles = folded.candles.get(key) or store.candles.get(key)
            analysis = symbol_analysis(ticks, candles, computed_ms=computed)
            ex, sym, as_of = analysis["exchange"], analysis["symbol"], analysis["as_of_ms"]
            vol = analysis["volatility"]
            volatility.append(
                Write(rt.key("volatility", ex, sym), analysis, "volatility", as_of, vol)
            )
            summary = {
                "exchange": ex, "symbol": sym, "signals": analysis["signals"],
                "momentum": analysis["momentum"], "volatility": vol, "rsi": analysis["rsi"],
                "ema_fast": analysis["ema_fast"], "ema_slow": analysis["ema_slow"],
                "as_of_ms": as_of, "computed_ms": computed,
            }  # fmt: skip
            signals.append(Write(rt.key("signals", ex, sym), summary, "signals", as_of, vol))
            vol_at.append(partition)
            signals_at.append(partition)
            document = documents.get(key)
            if document is not None:
                latest.append(
                    Write(
                        rt.key("tickers", ex, sym), document, "tickers", document["as_of_ms"], vol
                    )
                )
                latest_at.append(partition)
            analyses.append((key, analysis))
        if folded.books or folded.series:
            self._market_writes(folded, writes)
        started = time.perf_counter()
        ok = True
        try:
            # one set_many per warm interval (one for all of them in the usual phases)
            by_interval: dict[float, tuple[list[Write], list[int]]] = {}
            for data_type, (these, partitions) in writes.items():
                if these:
                    group = by_interval.setdefault(rt.interval(data_type), ([], []))
                    group[0].extend(these)
                    group[1].extend(partitions)
            for interval, (these, partitions) in by_interval.items():
                rt.kept.remember(these, partitions, computed, interval)
            answers = await asyncio.gather(
                *(
                    rt.cache.set_many(these, warm_interval=interval)
                    for interval, (these, _) in by_interval.items()
                )
            )
            count_tier_writes(*answers)
        except (CacheError, ValueError) as exc:
            # one bad value must not stop the stream; the tiers count their own failures
            WRITE_ERRORS.labels(type(exc).__name__).inc()
            keys = sum(len(these) for these, _ in writes.values())
            log.error("cache_write_failed", error=str(exc), keys=keys)
            ok = False
        WRITE_SECONDS.observe(time.perf_counter() - started)
        topic = rt.symbols_topic
        for key, analysis in analyses:
            outbox.add(
                topic, partition_of[key], key.encode(), record_bytes(SymbolAnalysis, analysis)
            )
        return ok

    def _market_writes(
        self, folded: Folded, writes: dict[str, tuple[list[Write], list[int]]]
    ) -> None:
        """The book tops and candle series of ``folded``, with their symbol's volatility
        (0 before its first ticker) for the TTL."""
        rt, store = self.rt, self.store

        def vol_of(exchange: str, symbol: str) -> float:
            key = symbol_key(exchange, symbol)
            state = folded.ticks.get(key) or store.ticks.get(key)
            return state.volatility if state is not None else 0.0

        books, books_at = writes["books"]
        for document, as_of, partition in folded.books.values():
            ex, sym = document["exchange"], document["symbol"]
            books.append(Write(rt.key("books", ex, sym), document, "books", as_of, vol_of(ex, sym)))
            books_at.append(partition)
        rows, rows_at = writes["candles"]
        for kept, partition in folded.series.values():
            ex, sym = kept.exchange, kept.symbol
            rows.append(
                Write(
                    rt.key("candles", ex, sym, kept.timeframe), kept.value(), "candles",
                    kept.as_of_ms, vol_of(ex, sym),
                )
            )  # fmt: skip
            rows_at.append(partition)

    def _dead_letter(
        self, outbox: Outbox, record: ConsumerRecord[bytes, bytes], exc: InvalidEvent
    ) -> None:
        letter = dead_letter(
            source_topic=record.topic, partition=record.partition, offset=record.offset,
            key=record.key, payload=record.value, reason=exc.reason,
        )  # fmt: skip
        count_dead_letter(letter, exc.kind)
        key = record.topic.encode()  # keyed by source topic, partitioned as Kafka's clients do
        partition = _PARTITIONER(key, _DEAD_LETTER_PARTITIONS, _DEAD_LETTER_PARTITIONS)
        outbox.add(
            self.rt.dead_letter_topic, partition, key,
            record_bytes(DeadLetter, letter.asdict()),
        )  # fmt: skip

    # ---- commits and rebalances ---------------------------------------------------------

    async def _commit(self, *, drain: bool = True) -> None:
        """Commit what was processed since the last commit; with ``drain`` (``self.lock``
        held: rebalance, shutdown) after the batches on their way are delivered."""
        consumer = self._consumer
        if consumer is None:
            return
        if drain:
            if self._committing is not None:
                await self._committing  # never let an older commit land after this one
            await self._drain_deliveries()
        owned = consumer.assignment()
        due = {
            tp: offset
            for tp, offset in self.processed.items()
            if tp in owned and self.committed.get(tp) != offset
        }
        if not due:
            return
        try:
            await consumer.commit(due)
        except KafkaError as exc:
            # a rebalance in between: the next owner replays from the last commit, and
            # skips what the changelog already holds
            log.warning("commit_failed", error=str(exc), partitions=len(due))
            return
        self.committed.update(due)

    async def revoke(self, partitions: set[int]) -> None:
        async with self.lock:  # the batch in flight finishes first
            await self._commit()
            self.store.drop(partitions)
            self.rt.kept.drop(partitions)  # their new owner refills them
            for tp in [tp for tp in self.processed if tp.partition in partitions]:
                del self.processed[tp]
                self.committed.pop(tp, None)
        log.info("partitions_revoked", partitions=sorted(partitions))

    async def assign(self, partitions: set[int]) -> None:
        assert self._reader is not None
        async with self.lock:
            self.store.drop(self.store.owned - partitions)
            try:
                await self.store.recover(self._reader, partitions)
            except KafkaError as exc:
                # their events wait: the next batch retries the recovery first
                log.warning("recovery_deferred", partitions=sorted(partitions), error=str(exc))
        log.info("partitions_assigned", partitions=sorted(partitions))

    def _observe_lag(self) -> None:
        consumer = self._consumer
        if consumer is None:
            return
        lag: dict[str, int] = {}
        for tp in consumer.assignment():
            end = consumer.highwater(tp)
            done = self.processed.get(tp)
            if end is not None and done is not None:
                lag[tp.topic] = lag.get(tp.topic, 0) + max(end - done, 0)
        for topic, value in lag.items():
            LAG.labels(topic).set(value)
