"""Demand warm jobs on ``warm.jobs``: a ``WarmJob`` marked ``priority="demand"``, keyed by
exchange as the clock's, from one idempotent producer started on first use."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from demand._config import DemandUnavailable
from topics import WARM_JOBS, WarmfleetError
from topics.kafka import start_producer
from topics.records import WarmJob

DEMAND = "demand"


def demand_job(
    exchange: str, data_type: str, symbols: Iterable[str], *, deadline_s: float,
    now_ms: int | None = None,
) -> WarmJob:  # fmt: skip
    issued = int(time.time() * 1000) if now_ms is None else now_ms
    return WarmJob(
        job_id=f"demand-{uuid.uuid4().hex[:12]}",
        exchange=exchange,
        data_type=data_type,
        symbols=list(symbols),
        phase="demand",
        interval_s=deadline_s,
        issued_ms=issued,
        deadline_ms=issued + int(deadline_s * 1000),
        priority=DEMAND,
    )


class JobPublisher:
    def __init__(
        self, servers: Iterable[str], namespace: str = "",
        kafka_options: Mapping[str, Any] | None = None,
    ) -> None:  # fmt: skip
        self.servers = list(servers)
        self.topic = WARM_JOBS.named(namespace)
        self.kafka_options = dict(kafka_options or {})
        self._producer: AIOKafkaProducer | None = None
        self._starting = asyncio.Lock()

    async def _ready(self) -> AIOKafkaProducer:
        async with self._starting:
            if self._producer is None:
                try:
                    self._producer = await start_producer(
                        self.servers, self.kafka_options, linger_ms=2, request_timeout_ms=5_000
                    )
                except WarmfleetError as exc:
                    raise DemandUnavailable(str(exc)) from exc
            return self._producer

    async def publish(self, job: WarmJob, timeout_s: float = 2.0) -> None:
        producer = await self._ready()
        try:
            async with asyncio.timeout(timeout_s):
                await producer.send_and_wait(
                    self.topic, value=job.dumps(), key=job.exchange.encode()
                )
        except (KafkaError, TimeoutError) as exc:
            raise DemandUnavailable(f"demand job not published: {exc!r}") from exc

    async def close(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None
