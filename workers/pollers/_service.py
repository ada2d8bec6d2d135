"""The poller service: warm jobs in from Kafka, market events out to Kafka.

A plain aiokafka process rather than a Faust agent: pollers scale and restart on their own
(their load is exchange rate limits, not event volume), hold no table state, and need
exactly two things from Kafka — a consumer group over ``warm.jobs`` (key = exchange, so one
consumer owns an exchange's partition and its rate limiter means something) and an
idempotent producer (``acks=all``). The exchange logic lives in
``workers.pollers._exchange``; ``warmfleet poller`` (``workers.cli._poller``) is the shell.

Delivery is at-least-once: a job's offset is committed only once every event it produced
is acknowledged by Kafka. Jobs run concurrently (bounded per exchange), so commits advance
to the lowest offset still in flight per partition. Duplicates are harmless downstream:
agents compare ``as_of``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import defaultdict
from collections.abc import Collection
from typing import Any

import ccxt
import orjson
import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError

from demand import DEMAND
from topics import (
    MARKET_BOOKS,
    MARKET_OHLCV,
    MARKET_TICKERS,
    POLLED,
    WARM_JOBS,
    DataType,
    WarmfleetError,
    symbol_key,
)
from topics.kafka import ensure_topics, start_producer
from topics.records import WarmJob
from workers.pollers import _metrics as metrics
from workers.pollers._budgeted import BudgetedPoller, OriginBudget
from workers.pollers._coalesce import TickerCoalescer
from workers.pollers._exchange import ExchangePoller, PollerConfig, PollResult
from workers.pollers._priority import DEMAND_FIRST, SCHEDULED, PriorityGate
from workers.settings import Settings

log = structlog.get_logger(__name__)

GROUP = "warmfleet.pollers"
_JOB_FIELDS: dict[str, tuple[type, ...]] = {
    "job_id": (str,), "exchange": (str,), "data_type": (str,), "symbols": (list,),
    "phase": (str,), "interval_s": (int, float), "issued_ms": (int,), "deadline_ms": (int,),
}  # fmt: skip


PRIORITIES = frozenset({"scheduled", DEMAND})


class MalformedJob(WarmfleetError, ValueError):
    """A message on ``warm.jobs`` is not a usable WarmJob."""


def parse_job(raw: bytes | None) -> WarmJob:
    """A validated ``WarmJob`` from a message value, or ``MalformedJob`` saying why."""
    if not raw:
        raise MalformedJob("empty message")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise MalformedJob(f"not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise MalformedJob(f"not a JSON object: {type(data).__name__}")
    fields: dict[str, Any] = {}
    for name, types in _JOB_FIELDS.items():
        value = data.get(name)
        if isinstance(value, bool) or not isinstance(value, types):
            raise MalformedJob(f"field {name!r} missing or not {types[0].__name__}: {value!r}")
        fields[name] = value
    if not all(isinstance(s, str) and s for s in fields["symbols"]):
        raise MalformedJob("symbols must be a list of non-empty strings")
    if DataType.parse(fields["data_type"]) not in POLLED:
        raise MalformedJob(f"data_type {fields['data_type']!r} is not one a poller fetches")
    if fields["exchange"] not in ccxt.exchanges:
        raise MalformedJob(f"exchange {fields['exchange']!r} is not a ccxt exchange id")
    token = data.get("fencing_token", 0)  # absent: a clock from before fencing
    if type(token) is not int or token < 0:
        raise MalformedJob(f"field 'fencing_token' not a non-negative int: {token!r}")
    priority = data.get("priority", "scheduled")  # absent: a job from before demand jobs
    if priority not in PRIORITIES:
        raise MalformedJob(f"field 'priority' not one of {sorted(PRIORITIES)}: {priority!r}")
    return WarmJob(**fields, fencing_token=token, priority=priority)


class Fence:
    """The highest clock fencing token seen on ``warm.jobs``: a job with a lower one comes
    from a clock that was deposed since, and is dropped. Forgotten when the highest has not
    been seen for ``memory_s`` (a leader publishes at least every interval, so a token that
    old belongs to no living clock; this lets a fleet whose election group was deleted,
    after days without any clock, start again from generation 1)."""

    def __init__(self, memory_s: float = 3600.0, clock: Any = time.monotonic) -> None:
        self.memory_s, self._clock = memory_s, clock
        self.highest = 0
        self._seen_at = 0.0

    def admits(self, token: int) -> bool:
        now = self._clock()
        forgotten = now - self._seen_at > self.memory_s
        if token < self.highest and not forgotten:
            return False
        if token > self.highest or forgotten:
            self.highest = token
        self._seen_at = now
        return True


class _Offsets:
    """Per partition: offsets in flight. Everything below the lowest in-flight offset is
    done, because offsets start in order."""

    def __init__(self) -> None:
        self.inflight: dict[TopicPartition, set[int]] = defaultdict(set)
        self.next: dict[TopicPartition, int] = {}
        self.committed: dict[TopicPartition, int] = {}

    def started(self, tp: TopicPartition, offset: int) -> None:
        self.inflight[tp].add(offset)
        self.next[tp] = max(self.next.get(tp, 0), offset + 1)

    def finished(self, tp: TopicPartition, offset: int) -> None:
        self.inflight[tp].discard(offset)

    def committable(self) -> dict[TopicPartition, int]:
        out = {}
        for tp, nxt in self.next.items():
            position = min(self.inflight[tp]) if self.inflight[tp] else nxt
            if position > self.committed.get(tp, -1):
                out[tp] = position
        return out

    def forget(self, tps: Collection[TopicPartition]) -> None:
        for tp in tps:
            self.inflight.pop(tp, None)
            self.next.pop(tp, None)
            self.committed.pop(tp, None)


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, service: PollerService) -> None:
        self.service = service

    async def on_partitions_revoked(self, revoked: Collection[TopicPartition]) -> None:
        await self.service._drain(revoked)

    async def on_partitions_assigned(self, assigned: Collection[TopicPartition]) -> None:
        log.info("partitions_assigned", partitions=sorted(tp.partition for tp in assigned))
        self.service.ready.set()


class PollerService:
    """The Kafka shell around one ``ExchangePoller`` per exchange."""

    def __init__(
        self,
        settings: Settings,
        *,
        config: PollerConfig | None = None,
        offset_reset: str = "latest",
        jobs_per_exchange: int = 4,
        max_inflight: int = 256,
        budget: OriginBudget | None = None,
        markets_every_s: float = 60.0,
    ) -> None:
        """``budget``: take a fleet-wide token for every origin request and share the
        listed markets through Redis (docs/demand.md); None: ccxt's own limiter only."""
        self.settings = settings
        self.config = config or PollerConfig()
        ns = settings.namespace
        self.jobs_topic = WARM_JOBS.named(ns)
        self.topics = {
            DataType.TICKERS: MARKET_TICKERS.named(ns),
            DataType.CANDLES: MARKET_OHLCV.named(ns),
            DataType.BOOKS: MARKET_BOOKS.named(ns),
        }
        self.group_id = f"{ns}{GROUP}"
        self.offset_reset = offset_reset
        self.jobs_per_exchange = jobs_per_exchange
        self.max_inflight = max_inflight
        self.ready = asyncio.Event()  # set when the group gave us partitions
        self.pollers: dict[str, ExchangePoller] = {}
        self._gates: dict[str, PriorityGate] = {}  # demand jobs get the next free slot
        self._coalescers: dict[str, TickerCoalescer] = {}
        self.budget = budget
        self.markets_every_s = markets_every_s
        self._markets_task: asyncio.Task[None] | None = None
        self._offsets = _Offsets()
        self._tasks: dict[asyncio.Task[None], TopicPartition] = {}
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self.jobs_seen = 0
        self.fence = Fence()

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        servers = list(self.settings.kafka_servers)
        specs = (WARM_JOBS, MARKET_TICKERS, MARKET_OHLCV, MARKET_BOOKS)
        security = self.settings.kafka_client_options()
        await ensure_topics(servers, self.settings.namespace, specs, kafka_options=security)
        self._producer = await start_producer(servers, security, request_timeout_ms=15_000)
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=servers,
            **security,
            group_id=self.group_id,
            enable_auto_commit=False,
            auto_offset_reset=self.offset_reset,
            max_poll_interval_ms=300_000,
        )
        self._consumer.subscribe([self.jobs_topic], listener=_Rebalance(self))
        await self._consumer.start()
        if self.budget is not None:
            self._markets_task = asyncio.create_task(self._share_markets(), name="markets")
        log.info("poller_started", topic=self.jobs_topic, group=self.group_id,
                 exchange_urls=sorted(self.settings.exchange_urls))  # fmt: skip

    async def stop(self) -> None:
        if self._markets_task is not None:
            self._markets_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._markets_task
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=30)
        if self._consumer is not None:
            await self._commit()
            await self._consumer.stop()
        if self._producer is not None:
            await self._producer.stop()
        for poller in self.pollers.values():
            await poller.close()
        if self.budget is not None:
            await self.budget.close()
        log.info("poller_stopped", jobs_seen=self.jobs_seen)

    async def __aenter__(self) -> PollerService:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- the loop ---------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        assert self._consumer is not None, "start() first"
        while not stop.is_set():
            batches = await self._consumer.getmany(timeout_ms=200, max_records=100)
            for tp, messages in batches.items():
                for message in messages:
                    self._dispatch(tp, message.offset, message.key, message.value)
            await self._commit()
            while len(self._tasks) >= self.max_inflight:
                await asyncio.wait(list(self._tasks), return_when=asyncio.FIRST_COMPLETED)

    def _dispatch(
        self, tp: TopicPartition, offset: int, key: bytes | None, value: bytes | None
    ) -> None:
        self.jobs_seen += 1
        self._offsets.started(tp, offset)
        try:
            job = parse_job(value)
        except MalformedJob as exc:
            exchange = key.decode("utf-8", "replace")[:40] if key else "unknown"
            metrics.JOBS_DROPPED.labels(exchange, "malformed").inc()
            log.warning("job_malformed", partition=tp.partition, offset=offset,
                        exchange=exchange, problem=str(exc)[:200])  # fmt: skip
            self._offsets.finished(tp, offset)
            return
        if not self.fence.admits(job.fencing_token):
            metrics.JOBS_DROPPED.labels(job.exchange, "fenced").inc()
            log.warning("job_fenced", exchange=job.exchange, job_id=job.job_id,
                        token=job.fencing_token, highest=self.fence.highest)  # fmt: skip
            self._offsets.finished(tp, offset)
            return
        task = asyncio.create_task(self._handle(tp, offset, job), name=f"job-{job.job_id}")
        self._tasks[task] = tp
        task.add_done_callback(self._tasks.pop)

    def _poller(self, exchange: str) -> ExchangePoller:
        poller = self.pollers.get(exchange)
        if poller is None:
            url = self.settings.exchange_urls.get(exchange)
            if self.budget is None:
                poller = ExchangePoller(exchange, url=url, config=self.config)
            else:
                poller = BudgetedPoller(exchange, url=url, config=self.config, budget=self.budget)
            self.pollers[exchange] = poller
            self._gates[exchange] = PriorityGate(self.jobs_per_exchange)
            log.info("exchange_client_created", exchange=exchange,
                     url=url or "(the real exchange)")  # fmt: skip
        return poller

    async def _handle(self, tp: TopicPartition, offset: int, job: WarmJob) -> None:
        published = False
        try:
            try:
                poller = self._poller(job.exchange)
            except WarmfleetError as exc:
                metrics.JOBS_DROPPED.labels(job.exchange, "bad_exchange").inc()
                log.error("exchange_unusable", exchange=job.exchange, problem=str(exc))
                published = True  # nothing to publish; the job is done with
                return
            gate = self._gates[job.exchange]
            if job.priority == DEMAND and job.data_type == DataType.TICKERS:
                coalescer = self._coalescers.get(job.exchange)
                if coalescer is None:
                    coalescer = TickerCoalescer(poller, lambda: gate.slot(DEMAND_FIRST))
                    self._coalescers[job.exchange] = coalescer
                result = await coalescer.poll(job)  # one request for the waiting ones
            else:
                async with gate.slot(DEMAND_FIRST if job.priority == DEMAND else SCHEDULED):
                    result = await poller.poll(job)
            published = await self._publish(job, result)
        except Exception:  # a bug must not take the worker down: log it, keep consuming
            log.exception("job_crashed", exchange=job.exchange, job_id=job.job_id)
            published = True
        finally:
            if published:
                self._offsets.finished(tp, offset)
            # else: the offset stays in flight, commits stop below it, and a restart
            # re-polls the job (at-least-once)

    async def _publish(self, job: WarmJob, result: PollResult) -> bool:
        if not result.records:
            return True
        assert self._producer is not None
        topic = self.topics[DataType.parse(job.data_type)]
        try:
            futures = [
                await self._producer.send(
                    topic,
                    value=record.dumps(),
                    key=symbol_key(job.exchange, record.symbol).encode(),
                )
                for record in result.records
            ]
            await asyncio.gather(*futures)
        except KafkaError as exc:
            log.error("publish_failed", exchange=job.exchange, job_id=job.job_id,
                      topic=topic, error=repr(exc))  # fmt: skip
            return False
        metrics.EVENTS_PUBLISHED.labels(job.exchange, job.data_type).inc(len(result.records))
        elapsed = time.time() - job.issued_ms / 1000
        metrics.JOB_SECONDS.labels(job.exchange, job.data_type).observe(max(0.0, elapsed))
        log.debug("job_published", exchange=job.exchange, data_type=job.data_type,
                  job_id=job.job_id, events=len(result.records),
                  rejected=len(result.rejected), failed=len(result.failed))  # fmt: skip
        return True

    async def _share_markets(self) -> None:
        """Load each budgeted exchange's markets at start and share them (readers answer an
        unlisted symbol with a fast 404 from them), again every ``markets_every_s``."""
        assert self.budget is not None
        exchanges = sorted(set(self.budget.rates) | set(self.settings.exchange_urls))
        while True:
            for exchange in exchanges:
                try:
                    poller = self._poller(exchange)
                    markets = await poller.markets(time.time() + 30.0)
                    if isinstance(poller, BudgetedPoller):
                        await poller.publish_markets(markets)
                except Exception as exc:  # an exchange that is down now is retried next round
                    log.warning("markets_not_loaded", exchange=exchange, error=str(exc)[:200])
            await asyncio.sleep(self.markets_every_s)

    async def _commit(self) -> None:
        positions = self._offsets.committable()
        if not positions or self._consumer is None:
            return
        assignment = self._consumer.assignment()
        positions = {tp: pos for tp, pos in positions.items() if tp in assignment}
        if not positions:
            return
        try:
            await self._consumer.commit(positions)
        except KafkaError as exc:  # e.g. a rebalance in progress: the next round retries
            log.warning("commit_failed", error=repr(exc))
            return
        self._offsets.committed.update(positions)

    async def _drain(self, revoked: Collection[TopicPartition]) -> None:
        """Before partitions go to another consumer: finish their jobs and commit."""
        revoked = set(revoked)
        pending = [task for task, tp in self._tasks.items() if tp in revoked]
        if pending:
            await asyncio.wait(pending, timeout=30)
        await self._commit()
        self._offsets.forget(revoked)
