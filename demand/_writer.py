"""``MarketWriter``: ``market.tickers`` / ``market.books`` -> every tier, what the analytics
agents do for the ticker and book keys the demand path loads.

It stands in for the agents where a Faust worker's start (its group join) would dominate
and a TTL policy of the caller's own choosing is needed: the demand tests
(tests/demand/conftest.py) and the demand benchmark (bench/_demand_fleet.py). It writes each
record's document through a real ``MultiTierCache`` (so the bus announces it and waiting
readers wake) under the same key the agents use. A record it cannot decode is counted and
logged, never a stopped writer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

import orjson
import structlog
from aiokafka import AIOKafkaConsumer

from tiers import MultiTierCache, Write
from topics import MARKET_BOOKS, MARKET_TICKERS, DataType, TopicSpec, key_for

log = structlog.get_logger(__name__)

#: ``(message key, message value) -> (document, as_of_ms)``; the document carries
#: ``exchange`` and ``symbol``. Raises ``ValueError`` / ``KeyError`` / ``TypeError`` (or an
#: error the caller lists in ``skip``) for a record it cannot use.
Decode = Callable[[bytes | None, bytes | None], tuple[dict[str, Any], int]]

TOPICS: dict[DataType, TopicSpec] = {DataType.TICKERS: MARKET_TICKERS, DataType.BOOKS: MARKET_BOOKS}


def ticker_document(_key: bytes | None, raw: bytes | None) -> tuple[dict[str, Any], int]:
    """A ``market.tickers`` record as the ticker key's value: its fields as published."""
    body = orjson.loads(raw or b"{}")
    body.pop("__faust", None)
    return body, int(body["as_of_ms"])


class MarketWriter:
    """Consumes the namespace's topic of each data type in ``decoders`` (from the start) and
    writes every record through ``cache`` until ``stop`` is set."""

    def __init__(
        self,
        bootstrap: str,
        namespace: str,
        cache: MultiTierCache,
        decoders: Mapping[DataType, Decode] | None = None,
        *,
        skip: tuple[type[Exception], ...] = (),
    ) -> None:
        self.bootstrap, self.namespace, self.cache = bootstrap, namespace, cache
        self.prefix = namespace.rstrip(".")
        self.decoders = dict(decoders or {DataType.TICKERS: ticker_document})
        unknown = set(self.decoders) - set(TOPICS)
        if unknown:
            raise ValueError(f"no market topic for {sorted(unknown)}; known: {sorted(TOPICS)}")
        self._by_topic = {TOPICS[t].named(namespace): t for t in self.decoders}
        self._skip: tuple[type[Exception], ...] = (ValueError, KeyError, TypeError, *skip)
        self.written = 0
        self.skipped = 0

    async def run(self, stop: asyncio.Event) -> None:
        consumer = AIOKafkaConsumer(
            *self._by_topic, bootstrap_servers=self.bootstrap, group_id=None,
            auto_offset_reset="earliest", fetch_max_wait_ms=50,
        )  # fmt: skip
        await consumer.start()
        try:
            while not stop.is_set():
                batch = await consumer.getmany(timeout_ms=50)
                writes = [
                    write
                    for tp, records in batch.items()
                    for record in records
                    if (write := self._write_of(self._by_topic[tp.topic], record)) is not None
                ]
                if writes:
                    await self.cache.set_many(writes)
                    self.written += len(writes)
        finally:
            await consumer.stop()

    def _write_of(self, data_type: DataType, record: Any) -> Write | None:
        try:
            document, as_of = self.decoders[data_type](record.key, record.value)
            key = key_for(data_type, document["exchange"], document["symbol"], prefix=self.prefix)
        except self._skip as exc:
            self.skipped += 1
            log.warning("market_writer_skipped", topic=record.topic, offset=record.offset,
                        error=str(exc)[:200])  # fmt: skip
            return None
        return Write(key, document, str(data_type), as_of)
