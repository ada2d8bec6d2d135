"""One active clock, elected through Kafka instead of a Redis lease.

Every clock joins the consumer group ``{namespace}warmfleet.clock`` on the one-partition,
compacted topic ``control.clock``; the member the group assigns that partition leads. A
clock that cannot reach Kafka cannot publish warm jobs anyway, so the election now fails
exactly when publishing does, and Redis (a cache tier) going down no longer stops warming.

* **Fencing token**: the group generation in which the partition was assigned. The
  coordinator only ever increases it, and the clocks commit an offset so the group (and its
  generation) outlives a moment with no clock at all; a deposed leader's jobs therefore carry
  a lower token than its successor's, and a poller that has seen the newer token drops them.
* **Self-fencing**: the leader commits its position every ``heartbeat_s``. A commit succeeds
  only for a member of the current generation, and the coordinator counts it as a sign of
  life, so no other member can be handed the partition sooner than one session timeout after
  a commit succeeded (a new generation needs this member to rejoin — it sees the revocation
  first — or to expire). The leader acts only within ``0.8 * session_timeout`` of the moment
  it *sent* the last commit that succeeded; past that it stops publishing by itself.
* **Sticky**: a custom assignor keeps the partition with the member that leads (its join
  metadata says so), so a standby joining or leaving never moves the leadership; without a
  leader, the longest-running member takes it.
* On every assignment the leader writes a claim (owner, token, since) to ``control.clock``
  (key ``leader``), which ``warmfleet phase show`` prints.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.coordinator.protocol import (
    ConsumerProtocolMemberAssignment,
    ConsumerProtocolMemberMetadata,
)
from aiokafka.errors import KafkaError

from schedules import _metrics as metrics
from schedules._control import ClockError
from topics import CONTROL_CLOCK

log = structlog.get_logger(__name__)

GROUP = "warmfleet.clock"
ASSIGNOR = "warmfleet-clock-sticky"
LEADER_KEY = b"leader"
#: the share of the session timeout a leader trusts a successful commit for (clock drift,
#: the request's own travel time)
TRUST = 0.8


def group_id(namespace: str = "") -> str:
    return f"{namespace}{GROUP}"


@dataclass(frozen=True, slots=True)
class Claim:
    """Who leads, from which generation on (the record on ``control.clock``)."""

    owner: str
    token: int
    since_ms: int

    def dumps(self) -> bytes:
        return orjson.dumps({"owner": self.owner, "token": self.token, "since_ms": self.since_ms})

    @classmethod
    def loads(cls, raw: bytes | None) -> Claim | None:
        """The claim in a ``control.clock`` value, or None for anything else."""
        try:
            body = orjson.loads(raw or b"")
            owner, token, since = body["owner"], body["token"], body["since_ms"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return None
        if not (isinstance(owner, str) and type(token) is int and type(since) is int):
            return None
        return cls(owner, token, since)


@dataclass(frozen=True, slots=True)
class Candidate:
    """What a member says about itself when it joins (the assignor's user data)."""

    owner: str
    leading: bool
    token: int
    started_ms: int

    def dumps(self) -> bytes:
        return orjson.dumps(
            {"owner": self.owner, "leading": self.leading, "token": self.token,
             "started_ms": self.started_ms}
        )  # fmt: skip

    @classmethod
    def loads(cls, raw: bytes | None) -> Candidate | None:
        try:
            body = orjson.loads(raw or b"")
            return cls(
                str(body["owner"]), bool(body["leading"]), int(body["token"]),
                int(body["started_ms"]),
            )  # fmt: skip
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return None


def pick_leader(members: Mapping[str, Candidate | None]) -> str | None:
    """The member that gets the partition: the one leading now (the highest token if, after
    a partition, several think so), else the longest-running; a member whose metadata cannot
    be read (another version) only when nobody else is there."""
    if not members:
        return None

    def rank(item: tuple[str, Candidate | None]) -> tuple[int, int, int, str]:
        member_id, c = item
        if c is None:
            return (2, 0, 0, member_id)
        if c.leading:
            return (0, -c.token, c.started_ms, member_id)
        return (1, 0, c.started_ms, member_id)

    return min(members.items(), key=rank)[0]


class StickyAssignor:
    """The group's assignor (duck-typed like aiokafka's): one partition, to ``pick_leader``.
    An instance, not a class, so its join metadata can carry this clock's state."""

    name = ASSIGNOR
    version = 0

    def __init__(self, me: Callable[[], Candidate]) -> None:
        self._me = me

    def metadata(self, topics: Iterable[str]) -> ConsumerProtocolMemberMetadata:
        return ConsumerProtocolMemberMetadata(self.version, list(topics), self._me().dumps())

    def assign(
        self, cluster: Any, members: Mapping[str, ConsumerProtocolMemberMetadata]
    ) -> dict[str, ConsumerProtocolMemberAssignment]:
        candidates = {m: Candidate.loads(meta.user_data) for m, meta in members.items()}
        winner = pick_leader(candidates)
        topics = sorted({t for meta in members.values() for t in meta.subscription})
        out = {}
        for member in members:
            owned: list[tuple[str, list[int]]] = []
            if member == winner:
                for topic in topics:
                    partitions = cluster.partitions_for_topic(topic) or set()
                    owned.append((topic, sorted(partitions)))
            out[member] = ConsumerProtocolMemberAssignment(self.version, owned, b"")
        log.info("clock_election", members=len(members),
                 leader=(candidates.get(winner) or Candidate("?", False, 0, 0)).owner
                 if winner else None)  # fmt: skip
        return out

    def on_assignment(self, assignment: ConsumerProtocolMemberAssignment) -> None:
        pass  # the rebalance listener does the work


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, election: ClockElection) -> None:
        self.election = election

    async def on_partitions_revoked(self, revoked: Collection[TopicPartition]) -> None:
        self.election.revoked()

    async def on_partitions_assigned(self, assigned: Collection[TopicPartition]) -> None:
        await self.election.assigned(assigned)


class ClockElection:
    """``await hold()`` once per tick: True while this clock leads; ``token`` then is its
    fencing token. ``on_revoked`` runs at once when a rebalance starts (pause publishing)."""

    def __init__(
        self,
        bootstrap_servers: str | Sequence[str],
        *,
        owner: str,
        namespace: str = "",
        session_timeout_s: float = 6.0,
        heartbeat_s: float = 1.5,
        kafka_options: Mapping[str, Any] | None = None,
        on_revoked: Callable[[], None] | None = None,
    ) -> None:
        if not 0 < heartbeat_s < session_timeout_s:
            raise ValueError("heartbeat_s must be positive and shorter than session_timeout_s")
        self.owner = owner
        self.topic = CONTROL_CLOCK.named(namespace)
        self.group_id = group_id(namespace)
        self.session_timeout_s, self.heartbeat_s = session_timeout_s, heartbeat_s
        self._bootstrap = bootstrap_servers
        self._kafka_options = dict(kafka_options or {})  # security settings, never logged
        self._on_revoked = on_revoked
        self._tp = TopicPartition(self.topic, 0)
        self._started_ms = int(time.time() * 1000)
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._assigned = False
        self._was_leading = False  # through a rebalance: what the join metadata says
        self.rebalancing = False  # between a revocation and the next assignment
        self._valid_until = 0.0  # monotonic
        self._claimed: int | None = None
        self.token: int | None = None
        self.foreign_claim: Claim | None = None

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self, producer: AIOKafkaProducer) -> None:
        self._producer = producer
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap,
            **self._kafka_options,
            group_id=self.group_id,
            client_id=f"warmfleet-clock:{self.owner}",
            enable_auto_commit=False,
            auto_offset_reset="latest",
            session_timeout_ms=int(self.session_timeout_s * 1000),
            heartbeat_interval_ms=int(self.heartbeat_s * 1000),
            partition_assignment_strategy=(StickyAssignor(self._me),),
        )
        self._consumer.subscribe([self.topic], listener=_Listener(self))
        await self._consumer.start()

    async def stop(self) -> None:
        """Leave the group: a standby is assigned the partition at once, without waiting out
        the session timeout."""
        self._assigned, self._valid_until = False, 0.0
        if self._consumer is not None:
            with contextlib.suppress(KafkaError):
                await self._consumer.stop()

    def _me(self) -> Candidate:
        return Candidate(self.owner, self._was_leading, self.token or 0, self._started_ms)

    # -- the group's callbacks ------------------------------------------------------------

    def revoked(self) -> None:
        self.rebalancing = True
        self._was_leading = self._assigned
        self._assigned, self._valid_until = False, 0.0
        if self._was_leading and self._on_revoked is not None:
            self._on_revoked()

    async def assigned(self, assigned: Collection[TopicPartition]) -> None:
        self.rebalancing = False
        self._was_leading = False
        self._assigned = self._tp in set(assigned)
        if self._assigned:
            self.token = self._generation()
            self._valid_until = 0.0  # leading once the first commit of this generation lands
            log.info("clock_elected", owner=self.owner, token=self.token)

    def _generation(self) -> int:
        # aiokafka keeps the generation of the join on its (private) coordinator; it is set
        # before the assignment callback runs, and it is what every commit is checked against
        assert self._consumer is not None
        return int(self._consumer._coordinator.generation)

    # -- the tick -------------------------------------------------------------------------

    @property
    def leading(self) -> bool:
        """Checked before every publish: assigned, and within the trusted time of a commit."""
        return self._assigned and time.monotonic() < self._valid_until

    async def hold(self) -> bool:
        """Poll the group (a member that stops polling is evicted), renew by committing,
        write the claim once per generation. True while this clock leads."""
        consumer = self._consumer
        if consumer is None:
            return False
        try:
            batch = await consumer.getmany(timeout_ms=0)
        except KafkaError as exc:
            metrics.ERRORS.labels(kind="election").inc()
            log.warning("election_poll_failed", error=str(exc))
            batch = {}
        for messages in batch.values():
            for message in messages:
                self._observe(Claim.loads(message.value))
        if not self._assigned:
            return False
        sent = time.monotonic()
        try:
            position = await asyncio.wait_for(consumer.position(self._tp), self.heartbeat_s)
            await asyncio.wait_for(
                consumer.commit({self._tp: (position, self.owner)}), self.heartbeat_s
            )
        except (KafkaError, TimeoutError) as exc:
            metrics.ERRORS.labels(kind="election").inc()
            log.warning("election_renew_failed", error=repr(exc)[:200], leading=self.leading)
            return self.leading
        if self._assigned:  # not revoked while the commit was in flight
            self._valid_until = sent + self.session_timeout_s * TRUST
        if self.leading and self._claimed != self.token:
            await self._claim()
        return self.leading

    def _observe(self, claim: Claim | None) -> None:
        """A claim by another clock with a higher token: it was elected after us, so we are
        deposed whatever our group membership still says."""
        if claim is None or claim.owner == self.owner:
            return
        if self.token is not None and claim.token > self.token and self._assigned:
            log.warning("clock_fenced", owner=self.owner, token=self.token,
                        by=claim.owner, their_token=claim.token)  # fmt: skip
            self._assigned, self._valid_until = False, 0.0
            if self._on_revoked is not None:
                self._on_revoked()
        self.foreign_claim = claim

    async def _claim(self) -> None:
        assert self._producer is not None and self.token is not None
        claim = Claim(self.owner, self.token, int(time.time() * 1000))
        try:
            await self._producer.send_and_wait(self.topic, claim.dumps(), key=LEADER_KEY)
        except KafkaError as exc:  # the next tick tries again
            metrics.ERRORS.labels(kind="claim").inc()
            log.warning("claim_publish_failed", error=str(exc))
            return
        self._claimed = self.token


@dataclass(frozen=True, slots=True)
class Member:
    """A clock in the election group, as the group coordinator describes it."""

    owner: str
    leads: bool  # the one partition is assigned to it


async def members(
    bootstrap_servers: str | Sequence[str],
    namespace: str = "",
    kafka_options: Mapping[str, Any] | None = None,
) -> list[Member]:
    """The clocks in the group now (``warmfleet phase show``: who leads, who stands by)."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap_servers, request_timeout_ms=10_000, **(kafka_options or {})
    )
    try:
        await admin.start()
        responses = await admin.describe_consumer_groups([group_id(namespace)])
    except KafkaError as exc:
        raise ClockError(f"cannot describe the clock group in Kafka: {exc!r}") from exc
    finally:
        await admin.close()
    out = []
    for response in responses:
        for group in response.groups:
            # (error_code, group, state, protocol_type, protocol, members, ...) in every
            # version; a member is (member_id, client_id, client_host, metadata, assignment)
            for member in group[5]:
                candidate = Candidate.loads(_user_data(member[3]))
                owner = candidate.owner if candidate else member[1]
                try:
                    assignment = ConsumerProtocolMemberAssignment.decode(member[4]).assignment
                    leads = any(parts for _, parts in assignment)
                except Exception:  # an empty or foreign assignment
                    leads = False
                out.append(Member(owner, leads))
    return out


def _user_data(metadata: bytes) -> bytes:
    try:
        return bytes(ConsumerProtocolMemberMetadata.decode(metadata).user_data or b"")
    except Exception:  # another assignor's metadata
        return b""
