"""The phase clock: APScheduler fires one interval job per (exchange, data type); each firing
publishes a WarmJob to ``warm.jobs``; every change of phase, override or boost reschedules
the jobs (the rule in ``schedules._plan``) and publishes a PhaseChange to ``control.phase``.

Only the holder of the Redis leader lease fires: the others keep their scheduler paused,
poll the lease and take over within about one lease TTL when the leader dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import socket
import time
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import redis.asyncio as aioredis
import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from schedules import _metrics as metrics
from schedules._config import PhaseConfig
from schedules._control import (
    ClockError,
    ControlKeys,
    LeaderLease,
    OverrideStore,
    write_state,
)
from schedules._plan import (
    JobKey,
    Override,
    PhaseState,
    boost_active,
    effective_interval,
    fire,
    jobs,
    next_due,
    resolve,
    to_ms,
    warm_job,
)
from topics import ANALYSIS_OVERVIEW, CONTROL_PHASE, KEY_PREFIX, WARM_JOBS
from topics.kafka import ensure_topics, start_producer
from topics.records import MarketOverview

log = structlog.get_logger(__name__)

TRANSITION_JOB = "phase-transition"
#: the Kafka header naming the clock that issued a job (pollers ignore it; tests and
#: operators use it to see which clock leads)
CLOCK_HEADER = "warmfleet-clock"
PHASE_KEY = b"phase"


def default_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class PhaseClock:
    """Run with ``await clock.run(stop_event)``; every dependency is an explicit parameter."""

    def __init__(
        self,
        config: PhaseConfig,
        *,
        bootstrap_servers: str | Sequence[str],
        redis_url: str,
        namespace: str = "",
        key_prefix: str = KEY_PREFIX,
        owner: str | None = None,
        lease_ttl_s: float = 5.0,
        renew_every_s: float = 1.5,
        poll_every_s: float = 1.0,
        watch_overview: bool = True,
        kafka_options: Mapping[str, Any] | None = None,
    ) -> None:
        if not 0 < renew_every_s < lease_ttl_s:
            raise ValueError("renew_every_s must be positive and shorter than lease_ttl_s")
        self.config = config
        self.owner = owner or default_owner()
        self.namespace = namespace
        self.keys = ControlKeys.for_fleet(key_prefix, namespace)
        self._bootstrap = bootstrap_servers
        self._kafka_options = dict(kafka_options or {})  # security settings, never logged
        self._redis_url = redis_url
        self._lease_ttl_s = lease_ttl_s
        self._tick_s = min(renew_every_s, poll_every_s)
        self._watch_overview = watch_overview
        self._jobs = {key.job_id: key for key in jobs(config)}
        self._warm_topic = WARM_JOBS.named(namespace)
        self._phase_topic = CONTROL_PHASE.named(namespace)
        self._overview_topic = ANALYSIS_OVERVIEW.named(namespace)
        self.leader = False
        self.override: Override | None = None
        self.boost = 1.0
        self.volatility_index: float | None = None
        self._volatility_seen = 0.0  # monotonic
        self._published: PhaseState | None = None
        self._scheduler = AsyncIOScheduler(
            timezone=UTC,
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )
        self._producer: AIOKafkaProducer | None = None
        self._redis: aioredis.Redis | None = None
        self._lock = asyncio.Lock()  # serialises leadership changes and reschedules

    # -- lifecycle ------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event | None = None) -> None:
        stop = stop or asyncio.Event()
        self._redis = aioredis.Redis.from_url(self._redis_url)
        lease = LeaderLease(self._redis, self.keys.leader, self.owner, self._lease_ttl_s)
        overrides = OverrideStore(self._redis, self.keys.override)
        await ensure_topics(
            self._bootstrap,
            self.namespace,
            [WARM_JOBS, CONTROL_PHASE, ANALYSIS_OVERVIEW],
            kafka_options=self._kafka_options,
        )
        self._producer = await start_producer(self._bootstrap, self._kafka_options)
        self._scheduler.start(paused=True)
        watcher = asyncio.create_task(self._watch_volatility()) if self._watch_overview else None
        log.info(
            "clock_started",
            owner=self.owner,
            namespace=self.namespace,
            config=self.config.source,
            jobs=len(self._jobs),
        )
        try:
            while not stop.is_set():
                await self._tick(lease, overrides)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self._tick_s)
        finally:
            log.info("clock_stopping", owner=self.owner, leader=self.leader)
            if watcher is not None:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
            if self.leader:
                await self._step_down("shutdown")
            await lease.release()
            self._scheduler.shutdown(wait=False)
            await self._producer.stop()
            await self._redis.aclose()

    async def _tick(self, lease: LeaderLease, overrides: OverrideStore) -> None:
        """Once a second or so: the lease, the override, boost staleness, the shown state."""
        try:
            override = await overrides.get()
        except ClockError as exc:
            metrics.ERRORS.labels(kind="override").inc()
            log.warning("override_unreadable", error=str(exc))
            override = self.override  # keep what we knew
        leading = await lease.hold()
        async with self._lock:
            if leading and not self.leader:
                self.override = override
                await self._take_lead()
            elif not leading and self.leader:
                await self._step_down("lease_lost")
            changed = override != self.override
            self.override = override
            age = time.monotonic() - self._volatility_seen
            boost_on = boost_active(
                self.config.boost, self.boost != 1.0, self.volatility_index, age
            )
            new_boost = self.config.boost.factor if boost_on else 1.0
            changed |= new_boost != self.boost
            self.boost = new_boost
            state = self.state()
            if self.leader and (changed or self._differs(state)):
                await self._reschedule(state, "change" if changed else "drift")
        metrics.IS_LEADER.set(1 if self.leader else 0)
        metrics.show_phase(state.phase, state.intervals_s, state.boost)
        if self.leader and self._redis is not None:
            await write_state(
                self._redis, self.keys.state, self._state_body(state), self._lease_ttl_s * 2
            )

    def state(self, now: datetime | None = None) -> PhaseState:
        now = now or datetime.now(UTC)
        return resolve(self.config, now, override=self.override, boost=self.boost)

    def _differs(self, state: PhaseState) -> bool:
        last = self._published
        return last is None or (state.phase, state.intervals_s, state.boost) != (
            last.phase,
            last.intervals_s,
            last.boost,
        )

    # -- leadership -----------------------------------------------------------------------

    async def _take_lead(self) -> None:
        now = datetime.now(UTC)
        state = self.state(now)
        for job_id, key in self._jobs.items():
            interval = self._interval(key, state)
            self._scheduler.add_job(
                self._fire,
                IntervalTrigger(seconds=interval, start_date=now, timezone=UTC),
                args=[key],
                id=job_id,
                name=job_id,
                next_run_time=now,
                replace_existing=True,
            )
        self._arm_transition(state)
        self.leader = True
        self._scheduler.resume()
        log.info("clock_leading", owner=self.owner, phase=state.phase.value, source=state.source)
        await self._publish_phase(state)

    async def _step_down(self, reason: str) -> None:
        self.leader = False
        self._scheduler.pause()
        self._scheduler.remove_all_jobs()
        self._published = None
        log.warning("clock_not_leading", owner=self.owner, reason=reason)

    # -- scheduling -----------------------------------------------------------------------

    def _interval(self, key: JobKey, state: PhaseState) -> float:
        exchange = self.config.exchange(key.exchange)
        return effective_interval(self.config, state.phase, key.data_type, exchange, state.boost)

    def _arm_transition(self, state: PhaseState) -> None:
        if state.next_change is None:
            with contextlib.suppress(Exception):
                self._scheduler.remove_job(TRANSITION_JOB)
            return
        self._scheduler.add_job(
            self._on_transition,
            DateTrigger(run_date=state.next_change, timezone=UTC),
            id=TRANSITION_JOB,
            name=TRANSITION_JOB,
            replace_existing=True,
        )

    async def _on_transition(self) -> None:
        async with self._lock:
            if self.leader:
                await self._reschedule(self.state(), "transition")

    async def _reschedule(self, state: PhaseState, reason: str) -> None:
        """Every job to ``min(old due, now + new interval)``; publish the new state."""
        for job_id, key in self._jobs.items():
            job = self._scheduler.get_job(job_id)
            if job is None:
                continue
            interval = self._interval(key, state)
            due = next_due(job.next_run_time, state.at, interval)
            self._scheduler.modify_job(
                job_id,
                trigger=IntervalTrigger(seconds=interval, start_date=due, timezone=UTC),
                next_run_time=due,
            )
        self._arm_transition(state)
        log.info(
            "phase_rescheduled",
            reason=reason,
            phase=state.phase.value,
            source=state.source,
            boost=state.boost,
            next_change=_iso(state.next_change),
        )
        await self._publish_phase(state)

    async def _fire(self, key: JobKey) -> None:
        if not self.leader or self._producer is None:
            return
        now = datetime.now(UTC)
        firing = fire(self.config, key, now, self.override, self.boost)
        job = self._scheduler.get_job(key.job_id)
        if job is not None and not math.isclose(
            job.trigger.interval.total_seconds(), firing.interval_s
        ):
            # the state moved between scheduling and firing (a transition not processed yet):
            # the next warm follows the interval this job publishes, as the planner does
            due = now + timedelta(seconds=firing.interval_s)
            self._scheduler.modify_job(
                key.job_id,
                next_run_time=due,
                trigger=IntervalTrigger(seconds=firing.interval_s, start_date=due, timezone=UTC),
            )
        record = warm_job(self.config, firing, uuid.uuid4().hex)
        try:
            await self._producer.send_and_wait(
                self._warm_topic,
                record.dumps(),
                key=key.exchange.encode(),
                headers=[(CLOCK_HEADER, self.owner.encode())],
            )
        except KafkaError as exc:
            metrics.ERRORS.labels(kind="publish").inc()
            log.error(
                "warm_job_publish_failed",
                exchange=key.exchange,
                data_type=key.data_type.value,
                error=str(exc),
            )
            return
        metrics.JOBS_PUBLISHED.labels(exchange=key.exchange, data_type=key.data_type.value).inc()
        log.debug(
            "warm_job_published",
            exchange=key.exchange,
            data_type=key.data_type.value,
            phase=firing.phase.value,
            interval_s=firing.interval_s,
        )

    async def _publish_phase(self, state: PhaseState) -> None:
        if self._producer is None:
            return
        try:
            await self._producer.send_and_wait(
                self._phase_topic,
                state.to_record().dumps(),
                key=PHASE_KEY,
                headers=[(CLOCK_HEADER, self.owner.encode())],
            )
        except KafkaError as exc:
            metrics.ERRORS.labels(kind="publish").inc()
            log.error("phase_publish_failed", phase=state.phase.value, error=str(exc))
            return
        self._published = state
        log.info(
            "phase_published",
            phase=state.phase.value,
            source=state.source,
            intervals_s=state.intervals_s,
            boost=state.boost,
        )

    def _state_body(self, state: PhaseState) -> dict[str, Any]:
        return {
            "owner": self.owner,
            "phase": state.phase.value,
            "source": state.source,
            "boost": state.boost,
            "volatility_index": self.volatility_index,
            "intervals_s": state.intervals_s,
            "next_change_ms": None if state.next_change is None else to_ms(state.next_change),
            "at_ms": to_ms(state.at),
        }

    # -- volatility boost -----------------------------------------------------------------

    async def _watch_volatility(self) -> None:
        """Follow ``analysis.overview`` (scope ``all``). Never crashes the clock: a bad record
        is counted and skipped, a Kafka failure is retried."""
        while True:
            consumer = AIOKafkaConsumer(
                bootstrap_servers=self._bootstrap,
                **self._kafka_options,
                group_id=None,
                enable_auto_commit=False,
                auto_offset_reset="latest",
            )
            try:
                await consumer.start()
                parts = consumer.partitions_for_topic(self._overview_topic) or {0}
                tps = [TopicPartition(self._overview_topic, p) for p in sorted(parts)]
                consumer.assign(tps)
                ends = await consumer.end_offsets(tps)
                for tp in tps:  # the latest overview is among the last few records
                    consumer.seek(tp, max(ends[tp] - 20, 0))
                async for msg in consumer:
                    await self._on_overview(msg.value)
            except asyncio.CancelledError:
                raise
            except KafkaError as exc:
                metrics.ERRORS.labels(kind="overview").inc()
                log.warning("overview_watch_failed", error=str(exc))
                await asyncio.sleep(5)
            finally:
                await consumer.stop()

    async def _on_overview(self, raw: bytes | None) -> None:
        try:
            overview = MarketOverview.loads(raw or b"")
            if overview.scope != "all":
                return
            index = float(overview.volatility_index)
            age_s = max(time.time() - int(overview.computed_ms) / 1000, 0.0)
        except Exception as exc:  # any garbage in the record: counted, skipped
            metrics.OVERVIEW_SKIPPED.labels(reason="malformed").inc()
            log.warning("overview_skipped", reason="malformed", error=repr(exc)[:200])
            return
        if not math.isfinite(index) or index < 0:
            metrics.OVERVIEW_SKIPPED.labels(reason="bad_index").inc()
            log.warning("overview_skipped", reason="bad_index", volatility_index=index)
            return
        self.volatility_index = index
        self._volatility_seen = time.monotonic() - age_s
        metrics.VOLATILITY_INDEX.set(index)
        async with self._lock:
            was = self.boost != 1.0
            on = boost_active(self.config.boost, was, index, age_s)
            if on != was:
                self.boost = self.config.boost.factor if on else 1.0
                log.info(
                    "volatility_boost",
                    on=on,
                    volatility_index=index,
                    factor=self.config.boost.factor,
                )
                if self.leader:
                    await self._reschedule(self.state(), "boost")


def _iso(t: datetime | None) -> str | None:
    return None if t is None else t.isoformat()
