"""How one batch of the symbol stream folds its events: decode or reject each, skip what is
not newer than the key's state, and keep the newest state per key (``Folded``)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from aiokafka import ConsumerRecord

from topics import Limits
from workers.agents._decode import CandlesView, InvalidEvent
from workers.agents._store import CandleSeries, Stamped, SymbolStore, series_key
from workers.analytics import CandleState, TickerState

#: the data types the stream writes, in the order of their writes in a batch
WRITTEN = ("volatility", "signals", "tickers", "books", "candles")


S = TypeVar("S", bound=Stamped)
D = TypeVar("D")


def accepted(
    decoder: Callable[..., D],
    records: Iterable[ConsumerRecord[bytes, bytes]],
    now: int,
    limits: Limits,
    rejected: list[tuple[ConsumerRecord[bytes, bytes], InvalidEvent]],
) -> Iterator[tuple[ConsumerRecord[bytes, bytes], D]]:
    """The records ``decoder`` accepts, each with its answer; the others go to ``rejected``."""
    for record in records:
        try:
            decoded = decoder(
                record.key, record.value, now_ms=now, timestamp_ms=record.timestamp, limits=limits
            )
        except InvalidEvent as exc:
            rejected.append((record, exc))
            continue
        yield record, decoded


def newer(
    key: str,
    as_of_ms: int,
    pending: dict[str, S],
    table: dict[str, S],
    heal: Callable[[str], None],
    horizon: int,
) -> tuple[bool, S | None]:
    """``(fold it, the state it folds into)``: an event not newer than the key's state (of
    this batch, else of the table) is a duplicate or a reorder and is skipped; a state from
    the future (beyond ``horizon``) never blocks: it is healed away."""
    state = pending.get(key) or table.get(key)
    if state is not None and as_of_ms <= state.as_of_ms:
        if state.as_of_ms <= horizon:
            return False, state
        heal(key)
        return True, None
    return True, state


class Folded:
    """What one batch folds into: the newest state per key and what it writes."""

    __slots__ = ("books", "candles", "documents", "partition_of", "rejected", "series",
                 "stamps", "ticks")  # fmt: skip

    def __init__(self) -> None:
        self.ticks: dict[str, TickerState] = {}
        self.candles: dict[str, CandleState] = {}
        #: ``exchange:symbol:timeframe`` -> (merged rows, source partition)
        self.series: dict[str, tuple[CandleSeries, int]] = {}
        #: ``exchange:symbol`` -> (book document, as_of_ms, source partition)
        self.books: dict[str, tuple[dict[str, Any], int, int]] = {}
        self.documents: dict[str, dict[str, Any]] = {}  # validated tickers, as cached
        #: the symbols whose analysis changes -> their source partition
        self.partition_of: dict[str, int] = {}
        self.stamps: list[int] = []  # Kafka timestamps (ms) of the events folded in
        self.rejected: list[tuple[ConsumerRecord[bytes, bytes], InvalidEvent]] = []


def merge_series(
    folded: Folded, store: SymbolStore, cview: CandlesView, partition: int, horizon: int
) -> bool:
    """Merge a poll's rows into the kept candle rows of its timeframe, if the poll is
    newer (a later poll of the same last candle revises it); True when it was."""
    skey = series_key(cview.exchange, cview.symbol, cview.timeframe)
    pending = folded.series.get(skey)
    kept = pending[0] if pending is not None else store.series.get(skey)
    if kept is not None and kept.as_of_ms > horizon:
        store.heal_series(skey)  # a state from the future never blocks
        kept = None
    if not cview.newer_than(kept):
        return False
    folded.series[skey] = (cview.merged(kept), partition)
    return True
