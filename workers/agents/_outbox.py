"""Records a batch publishes, sent as one Kafka record batch per topic-partition and awaited
as a whole; a failed delivery is sent again, so a batch is either fully delivered or the
caller never marks its offsets processed."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

log = structlog.get_logger(__name__)

Record = tuple[bytes | None, bytes]


class Outbox:
    def __init__(self, producer: AIOKafkaProducer) -> None:
        self.producer = producer
        self.records: dict[tuple[str, int], list[Record]] = {}

    def add(self, topic: str, partition: int, key: bytes | None, value: bytes) -> None:
        self.records.setdefault((topic, partition), []).append((key, value))

    def __len__(self) -> int:
        return sum(len(r) for r in self.records.values())

    async def deliver(
        self, *, retry_s: float = 1.0, should_stop: Callable[[], bool] = lambda: False
    ) -> bool:
        """Send everything added and wait for the broker's acks (``acks=all``, idempotent).
        A partition whose delivery fails is sent again after ``retry_s`` until it is
        delivered or ``should_stop()``; returns True when all was delivered."""
        pending = self.records
        self.records = {}
        while pending:
            sent = [(tp, await self._send(tp, records)) for tp, records in pending.items()]
            failed: dict[tuple[str, int], list[Record]] = {}
            for tp, futures in sent:
                for done in await asyncio.gather(*futures, return_exceptions=True):
                    if isinstance(done, BaseException):
                        if not isinstance(done, KafkaError):
                            raise done
                        failed[tp] = pending[tp]
                        log.warning("publish_failed", topic=tp[0], partition=tp[1], error=str(done))
                        break
            if failed and should_stop():
                return False
            if failed:
                await asyncio.sleep(retry_s)
            pending = failed
        return True

    async def _send(self, tp: tuple[str, int], records: list[Record]) -> list[asyncio.Future[Any]]:
        """``records`` in as few record batches as the producer's batch size allows."""
        topic, partition = tp
        futures: list[asyncio.Future[Any]] = []
        batch = self.producer.create_batch()
        for key, value in records:
            if batch.append(key=key, value=value, timestamp=None) is None:
                futures.append(await self.producer.send_batch(batch, topic, partition=partition))
                batch = self.producer.create_batch()
                if batch.append(key=key, value=value, timestamp=None) is None:
                    raise ValueError(f"a record of {len(value)} bytes exceeds the batch size")
        if batch.record_count():
            futures.append(await self.producer.send_batch(batch, topic, partition=partition))
        return futures
