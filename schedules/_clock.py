"""The phase clock: APScheduler fires one interval job per (exchange, data type); each firing
publishes a WarmJob to ``warm.jobs``; every change of phase, override or boost reschedules
the jobs (the rule in ``schedules._plan``) and publishes a PhaseChange to ``control.phase``.

Only the clock that Kafka elects fires (``schedules._leader``: a consumer group on
``control.clock``), and every job it publishes carries its fencing token. The others keep
their scheduler paused and take over within about one session timeout when the leader dies,
continuing its schedule from what it left on ``warm.jobs`` (``schedules._takeover``). Redis
plays no part: the override lives in ``control.phase`` (``schedules._overrides``).
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

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from schedules import _metrics as metrics
from schedules._calendar import Phase
from schedules._config import PhaseConfig
from schedules._leader import ClockElection
from schedules._overrides import PHASE_KEY, OverrideFollower
from schedules._plan import (
    Firing,
    JobKey,
    Override,
    PhaseState,
    boost_active,
    effective_interval,
    fire,
    jobs,
    next_due,
    resolve,
    warm_job,
)
from schedules._takeover import read_last_warms, takeover_dues
from schedules._warmset import HotSet, job_symbols, prewarm_at
from topics import ANALYSIS_OVERVIEW, CONTROL_CLOCK, CONTROL_PHASE, WARM_JOBS
from topics.kafka import ensure_topics, start_producer
from topics.records import MarketOverview
from topics.tasks import cancel_and_wait

log = structlog.get_logger(__name__)

TRANSITION_JOB = "phase-transition"
PREWARM_JOB = "phase-prewarm"
#: the Kafka header naming the clock that issued a job (pollers fence on the job's
#: ``fencing_token``; tests and operators use the header to see which clock leads)
CLOCK_HEADER = "warmfleet-clock"


def default_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class PhaseClock:
    """Run with ``await clock.run(stop_event)``; every dependency is an explicit parameter.

    ``session_timeout_s``: how long a dead leader keeps the lead (the consumer group's
    session timeout; Kafka's default floor is 6 s); ``heartbeat_s``: how often the leader
    renews it; ``catch_up_ramp_s``: over how long a new leader spreads the jobs that are
    overdue when it takes over. ``hot_set`` (``tiers.HeatView``): the fleet's hot set; books
    and candles jobs then name its hottest symbols within each exchange's budget
    (``schedules._warmset``), and the clock runs the view's refresh loop.
    """

    def __init__(
        self,
        config: PhaseConfig,
        *,
        bootstrap_servers: str | Sequence[str],
        namespace: str = "",
        owner: str | None = None,
        session_timeout_s: float = 6.0,
        heartbeat_s: float = 1.5,
        poll_every_s: float = 1.0,
        catch_up_ramp_s: float = 10.0,
        watch_overview: bool = True,
        kafka_options: Mapping[str, Any] | None = None,
        hot_set: HotSet | None = None,
    ) -> None:
        self.config = config
        self.owner = owner or default_owner()
        self.namespace = namespace
        self._bootstrap = bootstrap_servers
        self._kafka_options = dict(kafka_options or {})  # security settings, never logged
        self._tick_s = min(heartbeat_s, poll_every_s)
        self._ramp_s = catch_up_ramp_s
        self._watch_overview = watch_overview
        self.hot_set = hot_set
        self._last_fired: dict[JobKey, float] = {}  # monotonic, per job: what pre-warm skips
        self._jobs = {key.job_id: key for key in jobs(config)}
        self._warm_topic = WARM_JOBS.named(namespace)
        self._phase_topic = CONTROL_PHASE.named(namespace)
        self._overview_topic = ANALYSIS_OVERVIEW.named(namespace)
        self.election = ClockElection(
            bootstrap_servers,
            owner=self.owner,
            namespace=namespace,
            session_timeout_s=session_timeout_s,
            heartbeat_s=heartbeat_s,
            kafka_options=self._kafka_options,
            on_revoked=self._suspend,
        )
        self.overrides = OverrideFollower(bootstrap_servers, self._phase_topic, self._kafka_options)
        self.leader = False
        self._suspended_at: float | None = None  # monotonic, while a rebalance is running
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
        self._lock = asyncio.Lock()  # serialises leadership changes and reschedules

    # -- lifecycle ------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event | None = None) -> None:
        stop = stop or asyncio.Event()
        await ensure_topics(
            self._bootstrap,
            self.namespace,
            [WARM_JOBS, CONTROL_PHASE, CONTROL_CLOCK, ANALYSIS_OVERVIEW],
            kafka_options=self._kafka_options,
        )
        self._producer = await start_producer(self._bootstrap, self._kafka_options)
        tasks = [asyncio.create_task(self.overrides.run(), name="clock-overrides")]
        if self.hot_set is not None:
            tasks.append(asyncio.create_task(self.hot_set.run(), name="clock-hot-set"))
        if self._watch_overview:
            tasks.append(asyncio.create_task(self._watch_volatility(), name="clock-volatility"))
        try:
            # the override in force before leading, so a new leader never announces the
            # calendar's phase for a moment while an override holds
            await asyncio.wait_for(self.overrides.caught_up.wait(), 30)
        except TimeoutError:
            metrics.ERRORS.labels(kind="override").inc()
            log.warning("override_log_unread", topic=self._phase_topic)
        self._scheduler.start(paused=True)
        await self.election.start(self._producer)
        # the lead is renewed on its own beat, so a slow takeover (reading warm.jobs) or a
        # slow reschedule never lets it lapse
        renewing = asyncio.create_task(self._renew(stop), name="clock-election")
        tasks.append(renewing)
        log.info(
            "clock_started",
            owner=self.owner,
            namespace=self.namespace,
            config=self.config.source,
            jobs=len(self._jobs),
            group=self.election.group_id,
        )
        try:
            while not stop.is_set():
                if renewing.done():  # a bug, not Kafka trouble (hold() absorbs that)
                    renewing.result()
                await self._tick()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self._tick_s)
        finally:
            log.info("clock_stopping", owner=self.owner, leader=self.leader)
            for task in tasks:
                await cancel_and_wait(task)
            if self.leader:
                await self._step_down("shutdown")
            await self.election.stop()  # leaves the group: a standby takes over at once
            self._scheduler.shutdown(wait=False)
            await self._producer.stop()

    async def _renew(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.election.hold()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._tick_s)

    async def _tick(self) -> None:
        """Once a second or so: leadership, the override, boost staleness."""
        override = self.overrides.current()
        leading = self.election.leading
        async with self._lock:
            if leading and not self.leader:
                self.override = override
                await self._take_lead()
            elif leading and self._suspended_at is not None:
                self._resume()
            elif not leading and self.leader and not self._rebalancing():
                await self._step_down("not_elected")
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
            if self.leader and leading and (changed or self._differs(state)):
                await self._reschedule(state, "change" if changed else "drift")
        metrics.IS_LEADER.set(1 if self.leader and leading else 0)
        metrics.FENCING_TOKEN.set(self.election.token or 0)
        metrics.show_phase(state.phase, state.intervals_s, state.boost)

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

    def _suspend(self) -> None:
        """A rebalance started (or a newer leader was seen): publish nothing until the
        group says whether the partition stays with us. Due jobs wait in the paused
        scheduler and fire (coalesced) if it does."""
        if self.leader and self._suspended_at is None:
            self._scheduler.pause()
            self._suspended_at = time.monotonic()
            log.info("clock_suspended", owner=self.owner, token=self.election.token)

    def _rebalancing(self) -> bool:
        """Suspended by a rebalance that has not answered yet (for less than a session
        timeout): wait for the group's answer before dropping the schedule."""
        at = self._suspended_at
        return (
            at is not None
            and self.election.rebalancing
            and time.monotonic() - at < self.election.session_timeout_s
        )

    def _resume(self) -> None:
        self._suspended_at = None
        self._scheduler.resume()
        log.info("clock_resumed", owner=self.owner, token=self.election.token)

    async def _take_lead(self) -> None:
        last = await read_last_warms(self._bootstrap, self._warm_topic, self._kafka_options)
        state = self.state()
        dues = takeover_dues(self.config, state, last, ramp_s=self._ramp_s)
        for job_id, key in self._jobs.items():
            due = dues[key]
            self._scheduler.add_job(
                self._fire,
                IntervalTrigger(seconds=self._interval(key, state), start_date=due, timezone=UTC),
                args=[key],
                id=job_id,
                name=job_id,
                next_run_time=due,
                replace_existing=True,
            )
        self._arm_transition(state)
        self.leader = True
        self._suspended_at = None
        self._scheduler.resume()
        log.info(
            "clock_leading",
            owner=self.owner,
            token=self.election.token,
            phase=state.phase.value,
            source=state.source,
            resumed=sum(1 for key in self._jobs.values() if key in last),
            first_due_s=round(min((d - state.at).total_seconds() for d in dues.values()), 3)
            if dues
            else None,
        )
        await self._publish_phase(state)

    async def _step_down(self, reason: str) -> None:
        self.leader = False
        self._suspended_at = None
        self._scheduler.pause()
        self._scheduler.remove_all_jobs()
        self._published = None
        log.warning("clock_not_leading", owner=self.owner, reason=reason)

    # -- scheduling -----------------------------------------------------------------------

    def _interval(self, key: JobKey, state: PhaseState) -> float:
        exchange = self.config.exchange(key.exchange)
        return effective_interval(self.config, state.phase, key.data_type, exchange, state.boost)

    def _arm_transition(self, state: PhaseState) -> None:
        self._arm_prewarm(state)
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

    def _arm_prewarm(self, state: PhaseState) -> None:
        planned = prewarm_at(self.config, state, self.override)
        if planned is None:
            with contextlib.suppress(Exception):
                self._scheduler.remove_job(PREWARM_JOB)
            return
        at, coming = planned
        self._scheduler.add_job(
            self._on_prewarm,
            DateTrigger(run_date=at, timezone=UTC),
            args=[coming],
            id=PREWARM_JOB,
            name=PREWARM_JOB,
            replace_existing=True,
        )

    async def _on_prewarm(self, coming: Phase) -> None:
        """Fire every job now, ahead of the change to the faster phase ``coming``, unless it
        fired within the lead anyway; each continues its schedule from now (the change
        then moves it to ``min(due, change + new interval)``, as for any job)."""
        lead = self.config.hot_set.pre_warm_lead_s
        async with self._lock:
            if not self.leader:
                return
            fired = 0
            for job_id, key in self._jobs.items():
                last = self._last_fired.get(key)
                if last is not None and time.monotonic() - last < lead:
                    continue
                firing = await self._fire(key, budget_phase=coming)
                if firing is None:
                    continue
                fired += 1
                metrics.PREWARMED.labels(exchange=key.exchange, data_type=key.data_type.value).inc()
                due = firing.at + timedelta(seconds=firing.interval_s)
                self._scheduler.modify_job(
                    job_id,
                    trigger=IntervalTrigger(
                        seconds=firing.interval_s, start_date=due, timezone=UTC
                    ),
                    next_run_time=due,
                )
        log.info("phase_prewarmed", coming=coming.value, jobs=fired, lead_s=lead)

    async def _on_transition(self) -> None:
        async with self._lock:
            if self.leader:
                await self._reschedule(self.state(), "transition")

    async def _reschedule(self, state: PhaseState, reason: str) -> None:
        """Publish the new state, then every job to ``min(old due, now + new interval)``.
        The PhaseChange goes first so the agents know the new intervals before any job
        issued under them can reach them (their TTLs follow it)."""
        await self._publish_phase(state)
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

    async def _fire(self, key: JobKey, budget_phase: Phase | None = None) -> Firing | None:
        """Publish one warm job of ``key`` now; what it fired, or None. ``budget_phase``
        caps its hot-set symbols by that phase's budget (a pre-warm: the faster one)."""
        if not self.leader or self._producer is None:
            return None
        token = self.election.token
        if not self.election.leading or token is None:
            # the lead is no longer confirmed (a rebalance, Kafka unreachable): a job now
            # could be a deposed leader's; the tick decides whether we still lead
            metrics.ERRORS.labels(kind="unconfirmed_lead").inc()
            log.info("warm_job_withheld", exchange=key.exchange, data_type=key.data_type.value)
            return None
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
        symbols, skipped = job_symbols(
            self.config, key, budget_phase or firing.phase, firing.boost, self.hot_set
        )
        if skipped is not None:
            metrics.JOBS_SKIPPED.labels(key.exchange, key.data_type.value, skipped).inc()
            log.debug(
                "warm_job_skipped",
                exchange=key.exchange,
                data_type=key.data_type.value,
                reason=skipped,
            )
            return None
        record = warm_job(
            self.config, firing, uuid.uuid4().hex, fencing_token=token, symbols=symbols
        )
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
            return None
        self._last_fired[key] = time.monotonic()
        metrics.JOBS_PUBLISHED.labels(exchange=key.exchange, data_type=key.data_type.value).inc()
        if self.hot_set is not None and record.symbols:
            metrics.JOB_SYMBOLS.labels(key.exchange, key.data_type.value).set(len(record.symbols))
        log.debug(
            "warm_job_published",
            exchange=key.exchange,
            data_type=key.data_type.value,
            phase=firing.phase.value,
            interval_s=firing.interval_s,
            token=token,
            symbols=len(record.symbols),
        )
        return firing

    async def _publish_phase(self, state: PhaseState) -> None:
        if self._producer is None or not self.election.leading:
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
            log.error("phase_publish_failed", error=str(exc))
            return
        self._published = state
        log.info(
            "phase_published",
            phase=state.phase.value,
            source=state.source,
            intervals_s=state.intervals_s,
            boost=state.boost,
        )

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
