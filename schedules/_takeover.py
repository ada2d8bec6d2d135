"""Where a new leader picks the schedule up: from the warm jobs already on ``warm.jobs``.

A clock that takes the lead reads the tail of ``warm.jobs`` and learns, per (exchange, data
type), when the last job was issued and with which interval (only jobs a poller would take:
a job with a lower fencing token than one before it in its partition was dropped). Then:

* a job that is not overdue continues the old leader's schedule — next at ``last issued +
  published interval``, moved earlier by the rescheduling rule if the interval in force now
  is shorter (``next_due``). The old leader's jobs were spread over their intervals, so the
  new leader's are too: no burst after a leader change;
* a job that is overdue (its key is living on the TTL's grace) or that nobody ever issued
  is fired in a ramp: the ``n`` of them at ``now + k * min(ramp_s, interval) / n``, so a
  cold start does not hit every exchange at the same instant, and a key overdue by less than
  its grace minus ``ramp_s`` is warm again before its TTL ends.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from schedules._config import PhaseConfig
from schedules._plan import JobKey, PhaseState, effective_interval, jobs, next_due
from topics import DataType
from topics.records import WarmJob

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class LastWarm:
    issued: datetime
    interval_s: float


def last_warms(partitions: Iterable[Sequence[WarmJob]]) -> dict[JobKey, LastWarm]:
    """The latest job per (exchange, data type) that a poller would take, from each
    partition's jobs in log order."""
    out: dict[JobKey, LastWarm] = {}
    for records in partitions:
        highest = 0
        for job in records:
            if job.fencing_token < highest:
                continue  # fenced: a poller dropped it, it warmed nothing
            highest = job.fencing_token
            try:
                key = JobKey(job.exchange, DataType(job.data_type))
            except ValueError:
                continue
            issued = datetime.fromtimestamp(job.issued_ms / 1000, tz=UTC)
            held = out.get(key)
            if held is None or issued > held.issued:
                out[key] = LastWarm(issued, float(job.interval_s))
    return out


def takeover_dues(
    config: PhaseConfig,
    state: PhaseState,
    last: Mapping[JobKey, LastWarm],
    *,
    ramp_s: float = 10.0,
) -> dict[JobKey, datetime]:
    """When each job first fires under a leader that takes over at ``state.at``."""
    now = state.at
    dues: dict[JobKey, datetime] = {}
    ramp: list[tuple[JobKey, float]] = []
    for key in jobs(config):
        interval = effective_interval(
            config, state.phase, key.data_type, config.exchange(key.exchange), state.boost
        )
        warm = last.get(key)
        if warm is not None and warm.issued <= now:
            due = warm.issued + timedelta(seconds=warm.interval_s)
            if due >= now:
                dues[key] = next_due(due, now, interval)
                continue
        ramp.append((key, interval))
    for k, (key, interval) in enumerate(ramp):
        dues[key] = now + timedelta(seconds=k * min(ramp_s, interval) / len(ramp))
    return dues


async def read_last_warms(
    bootstrap_servers: str | Sequence[str],
    topic: str,
    kafka_options: Mapping[str, Any] | None = None,
    *,
    per_partition: int = 200,
    timeout_s: float = 10.0,
) -> dict[JobKey, LastWarm]:
    """``last_warms`` of the last ``per_partition`` jobs of every partition of ``topic``.
    Kafka trouble or a timeout gives what was read so far (the ramp covers the rest)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        **(kafka_options or {}),
        group_id=None,
        enable_auto_commit=False,
    )
    seen: dict[int, list[WarmJob]] = {}
    skipped = 0
    try:
        async with asyncio.timeout(timeout_s):
            await consumer.start()
            await consumer.topics()  # metadata for every topic, so the partitions are known
            tps = [
                TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())
            ]
            if not tps:
                return {}
            consumer.assign(tps)
            ends = await consumer.end_offsets(tps)
            starts = await consumer.beginning_offsets(tps)
            todo = {tp for tp in tps if ends[tp] > starts[tp]}
            for tp in todo:
                consumer.seek(tp, max(ends[tp] - per_partition, starts[tp]))
            while todo:
                batch = await consumer.getmany(*todo, timeout_ms=500)
                for tp, messages in batch.items():
                    for message in messages:
                        try:
                            seen.setdefault(tp.partition, []).append(WarmJob.loads(message.value))
                        except Exception:  # not a WarmJob: it warmed nothing
                            skipped += 1
                for tp in list(todo):
                    if await consumer.position(tp) >= ends[tp]:
                        todo.discard(tp)
    except (KafkaError, TimeoutError) as exc:
        log.warning("warm_history_unreadable", topic=topic, error=repr(exc)[:200])
    finally:
        with contextlib.suppress(KafkaError):
            await consumer.stop()
    if skipped:
        log.info("warm_history_skipped", topic=topic, records=skipped)
    return last_warms(seen.values())
