"""The per-symbol agents: ``market.tickers`` and ``market.ohlcv`` -> table state ->
volatility and signals in all three tiers -> ``analysis.symbols``.

One batch (``take_events``) is handled in an order that makes a crash at any point safe
under at-least-once delivery:

1. decode and validate each event (bad ones -> dead-letter topic, the batch carries on);
   skip any event whose ``as_of_ms`` is not newer than the table's for its key, so
   replays and reorders never double count or regress;
2. fold the rest into per-key states (only the newest state per key leaves the batch);
3. write every tier in one ``set_many`` per data type;
4. publish ``analysis.symbols`` (queued on the producer, not awaited);
5. set the table keys (their changelog records the state as done).

Faust acks the batch after the body returns, and commits offsets only after flushing the
producer, so the changelog is never behind a committed offset. A replay after a crash
re-derives the same state from the changelog and skips what it already counted.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from typing import Any

import faust
import structlog
from faust.types import EventT, StreamT

from tiers import CacheError, Write
from topics import ANALYSIS_SYMBOLS, DEAD_LETTER, MARKET_OHLCV, MARKET_TICKERS
from topics.records import DeadLetter, SymbolAnalysis
from workers.agents._decode import InvalidEvent, decode_candles, decode_ticker_document
from workers.agents._metrics import EVENTS, STALE, TIER_WRITES, WRITE_ERRORS, WRITE_SECONDS
from workers.agents._runtime import Runtime, current_event, now_ms, record_bytes
from workers.analytics import (
    CandleState,
    TickerState,
    candle_state,
    observe_ticker,
    symbol_analysis,
)
from workers.deadletter import dead_letter, send_dead_letter

log = structlog.get_logger(__name__)

States = dict[str, tuple[TickerState | None, CandleState | None]]


def ticker_state(value: dict[str, Any] | None) -> TickerState | None:
    if value is None:
        return None
    fields = dict(value)
    fields.pop("partition", None)
    return TickerState.from_dict(fields)


def candles_state(value: dict[str, Any] | None) -> CandleState | None:
    return None if value is None else CandleState.from_dict(value)


def count_tier_writes(*answers: list[dict[str, float]]) -> None:
    counts: dict[str, int] = {}
    for answer in answers:
        for written in answer:
            for tier in written:
                counts[tier] = counts.get(tier, 0) + 1
    for tier, n in counts.items():
        TIER_WRITES.labels(tier).inc(n)


class SymbolAgents:
    """Declares the topics, tables and agents on ``app``; holds what they share."""

    def __init__(self, app: faust.App, rt: Runtime) -> None:
        self.app, self.rt = app, rt
        raw = {"key_type": bytes, "value_type": bytes}
        raw_codecs = {"key_serializer": "raw", "value_serializer": "raw"}
        self.tickers = app.topic(
            rt.tickers_topic, partitions=MARKET_TICKERS.partitions, **raw, **raw_codecs
        )
        self.ohlcv = app.topic(
            rt.ohlcv_topic, partitions=MARKET_OHLCV.partitions, **raw, **raw_codecs
        )
        self.analyses = app.topic(
            rt.symbols_topic, partitions=ANALYSIS_SYMBOLS.partitions, **raw, **raw_codecs
        )
        self.dead = app.topic(
            rt.dead_letter_topic,
            partitions=DEAD_LETTER.partitions,
            key_type=bytes,
            value_type=DeadLetter,
            key_serializer="raw",
        )
        schema = faust.Schema(key_type=str, key_serializer="json", value_serializer="json")
        # co-partitioned with their source topics: the same key lives on the same worker
        self.ticks = app.Table(
            "symbol-ticks", default=None, partitions=MARKET_TICKERS.partitions, schema=schema,
            help="TickerState per exchange:symbol (+ the source partition)",
        )  # fmt: skip
        self.candles = app.Table(
            "symbol-candles", default=None, partitions=MARKET_OHLCV.partitions, schema=schema,
            help="CandleState per exchange:symbol",
        )  # fmt: skip
        app.agent(self.tickers, name="analyse_tickers")(self.analyse_tickers)
        app.agent(self.ohlcv, name="analyse_candles")(self.analyse_candles)

    # ---- agents -------------------------------------------------------------------------

    async def analyse_tickers(self, stream: StreamT[bytes]) -> None:
        async for events in stream.take_events(self.rt.batch_max, within=self.rt.batch_within_s):
            await self.on_tickers(events)
            self.rt.progress.mark(events)

    async def analyse_candles(self, stream: StreamT[bytes]) -> None:
        async for events in stream.take_events(self.rt.batch_max, within=self.rt.batch_within_s):
            await self.on_candles(events)
            self.rt.progress.mark(events)

    # ---- batches ------------------------------------------------------------------------

    async def on_tickers(self, events: Sequence[EventT]) -> None:
        topic = self.rt.tickers_topic
        if not events:
            return
        EVENTS.labels(topic).inc(len(events))
        touched: dict[str, tuple[EventT, TickerState]] = {}
        documents: dict[str, dict[str, Any]] = {}
        for event in events:
            message = event.message
            try:
                key, view, document = decode_ticker_document(message.key, message.value)
            except InvalidEvent as exc:
                await self.reject(event, exc)
                continue
            held = touched.get(key)
            state = held[1] if held is not None else ticker_state(self.ticks.get(key))
            if state is not None and view.as_of_ms <= state.as_of_ms:
                STALE.labels(topic).inc()
                continue
            touched[key] = (event, observe_ticker(state, view))
            documents[key] = document
        if not touched:
            return
        states: States = {
            key: (state, candles_state(self.candles.get(key)))
            for key, (_, state) in touched.items()
        }
        await self.write_and_publish(states, documents)
        for key, (event, state) in touched.items():
            with current_event(event):
                self.ticks[key] = {**state.to_dict(), "partition": event.message.partition}

    async def on_candles(self, events: Sequence[EventT]) -> None:
        topic = self.rt.ohlcv_topic
        if not events:
            return
        EVENTS.labels(topic).inc(len(events))
        touched: dict[str, tuple[EventT, CandleState]] = {}
        for event in events:
            message = event.message
            try:
                key, view = decode_candles(message.key, message.value)
            except InvalidEvent as exc:
                await self.reject(event, exc)
                continue
            held = touched.get(key)
            state = held[1] if held is not None else candles_state(self.candles.get(key))
            if state is not None and view.as_of_ms <= state.as_of_ms:
                STALE.labels(topic).inc()
                continue
            new = candle_state(
                view.exchange, view.symbol, view.timeframe, view.rows, view.as_of_ms, state
            )
            touched[key] = (event, new)
        if not touched:
            return
        states: States = {
            key: (ticker_state(self.ticks.get(key)), state) for key, (_, state) in touched.items()
        }
        await self.write_and_publish(states)
        for key, (event, state) in touched.items():
            with current_event(event):
                self.candles[key] = state.to_dict()

    async def reject(self, event: EventT, exc: InvalidEvent) -> None:
        message = event.message
        letter = dead_letter(
            source_topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            key=message.key,
            payload=message.value,
            reason=exc.reason,
        )
        await send_dead_letter(self.dead, letter, exc.kind)

    async def write_and_publish(
        self, states: States, tickers: Mapping[str, dict[str, Any]] | None = None
    ) -> None:
        """Write each symbol's analysis, signals and (from the ticker agent) its latest ticker
        through all tiers, then publish ``analysis.symbols``."""
        rt = self.rt
        computed = now_ms()
        analyses: list[tuple[str, dict[str, Any]]] = []
        volatility: list[Write] = []
        signals: list[Write] = []
        latest: list[Write] = []
        for key, (ticks, candles) in states.items():
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
            document = tickers.get(key) if tickers else None
            if document is not None:
                latest.append(
                    Write(
                        rt.key("tickers", ex, sym), document, "tickers", document["as_of_ms"], vol
                    )
                )
            analyses.append((key, analysis))
        started = time.perf_counter()
        try:
            answers = await asyncio.gather(
                rt.cache.set_many(volatility, warm_interval=rt.interval("volatility")),
                rt.cache.set_many(signals, warm_interval=rt.interval("signals")),
                rt.cache.set_many(latest, warm_interval=rt.interval("tickers")),
            )
            count_tier_writes(*answers)
        except (CacheError, ValueError) as exc:
            # one bad value must not stop the stream; the tiers count their own failures
            WRITE_ERRORS.labels(type(exc).__name__).inc()
            log.error("cache_write_failed", error=str(exc), keys=len(states))
        WRITE_SECONDS.observe(time.perf_counter() - started)
        # Not awaiting delivery: the producer is flushed before any offset commit, so a
        # record can only be missing after a SIGKILL, and then a newer one supersedes it.
        for key, a in analyses:
            await self.analyses.send(key=key.encode(), value=record_bytes(SymbolAnalysis, a))
