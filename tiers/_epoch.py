"""Tier epochs: notice a lower tier that came back empty, and refill it.

A Redis restarted without persistence, a Memcached server restarted, a server added to the
pool: each answers again as if nothing happened, only empty, and stays cold until the next
warm (up to 600 s at weekends). So each tier carries an **epoch marker**: a key per server
(per Memcached server of the ketama ring, per Redis Cluster primary, the one key of a
single Redis) holding a random epoch id. ``EpochWatch.check()`` reads the markers; a marker
that is **missing** means that server is new (restarted empty, added, or flushed), one whose
id **changed** means another process found it new first and marked it. Either way the
tier's name is returned once, and the caller refills it with what it holds
(``EpochWatch.refill``), each entry with the TTL it has left, so a refill restores what the
tier held rather than making old data look fresh for longer.

A refill can never replace newer data: it goes through the tier's monotonic write (Lua
compare in Redis, gets/cas in Memcached), which refuses an ``as_of`` older than the one held,
so a value the stream wrote after the restart stays. A marker evicted by memory pressure
costs one needless refill (the same monotonic writes), never a wrong value.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterable, Sequence
from dataclasses import KW_ONLY, dataclass, field
from typing import Any, NamedTuple

import structlog
from redis.asyncio.cluster import RedisCluster

from tiers._calls import Slot, TierCalls
from tiers._envelope import encode_body, now_ms
from tiers._errors import CacheError
from tiers._hit import Write
from tiers._memcached import MemcachedTier
from tiers._protocol import StoreItem
from tiers._redis import RedisTier
from tiers._ttl import TierLevel, TTLPolicy

log = structlog.get_logger(__name__)

MARKER_PREFIX = "warmfleet:epoch"
#: a marker lives this long and is renewed (same id) long before: one missing marker is one
#: refill, so it must not expire under a tier that kept its data
MARKER_TTL_S = 7 * 86_400.0
RENEW_EVERY_S = 3_600.0
#: entries per refill write (one batched call to the tier)
REFILL_CHUNK = 500


class Kept(NamedTuple):
    """What a writer remembers of one write, to refill a tier with it later."""

    write: Write
    written_ms: int  # when it was first written (wall ms): the TTL runs from there
    warm_interval: float | None


class Refilled(NamedTuple):
    """What one refill did: entries written, refused (the tier held a newer ``as_of``),
    expired (nothing left of their TTL), failed (the tier did not take them)."""

    written: int = 0
    refused: int = 0
    expired: int = 0
    failed: int = 0

    def __add__(self, other: object) -> Refilled:
        assert isinstance(other, Refilled)
        return Refilled(*(a + b for a, b in zip(self, other, strict=True)))


def marker_keys(tier: Any, prefix: str = MARKER_PREFIX) -> list[str]:
    """One marker key per server of ``tier``: a key the ring puts on each Memcached server,
    a key in a slot of each Redis Cluster primary, else one key."""
    if isinstance(tier, MemcachedTier) and len(tier.servers) > 1:
        found: dict[int, str] = {}
        n = 0
        while len(found) < len(tier.servers) and n < 100_000:
            key = f"{prefix}:{n}"
            found.setdefault(tier._ring.index_for(key.encode()), key)
            n += 1
        return [found[i] for i in sorted(found)]
    if isinstance(tier, RedisTier) and isinstance(tier.client, RedisCluster):
        slots = getattr(getattr(tier.client, "nodes_manager", None), "slots_cache", None) or {}
        owners: dict[str, str] = {}
        primaries = {nodes[0].name for nodes in slots.values() if nodes}
        n = 0
        while len(owners) < len(primaries) and n < 100_000:
            key = f"{prefix}:{{{n}}}"
            nodes = slots.get(tier.client.keyslot(key))
            if nodes:
                owners.setdefault(nodes[0].name, key)
            n += 1
        if owners:
            return sorted(owners.values())
    return [prefix]


@dataclass(eq=False, repr=False)
class EpochWatch:
    """Reads every lower tier's epoch markers; ``check()`` names the tiers found new."""

    slots: Sequence[Slot]
    calls: TierCalls
    policy: TTLPolicy
    levels: tuple[TierLevel, ...]
    _: KW_ONLY
    timeout_s: float
    write_timeout_s: float
    source: str
    max_value_bytes: int
    prefix: str = MARKER_PREFIX
    #: (tier, marker key) -> the epoch id last seen there
    known: dict[tuple[str, str], str] = field(default_factory=dict, init=False)
    #: tier -> monotonic time of the last renewal
    _renewed: dict[str, float] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self.slots = list(self.slots)  # a copy: the watch keeps the tiers it was made with

    def _slot(self, name: str) -> Slot:
        for slot in self.slots:
            if slot.name == name:
                return slot
        raise KeyError(name)

    async def check(self) -> list[str]:
        """The names of the tiers that are new since the last check (a marker missing or
        changed). A tier that cannot be read now is skipped: unknown is not new."""
        new: list[str] = []
        for slot in self.slots:
            if await self._check(slot):
                new.append(slot.name)
        return new

    async def _check(self, slot: Slot) -> bool:
        tier = slot.tier
        if isinstance(tier, RedisTier) and isinstance(tier.client, RedisCluster):
            # the slot map is loaded by the first command: without it there is one marker
            # for the whole cluster, and the per-node ones would look missing later
            ok, _ = await self.calls.call(
                slot, "get", tier.client.initialize, limit_s=self.write_timeout_s
            )
            if not ok:
                return False
        keys = marker_keys(tier, self.prefix)
        ok, envelopes = await self.calls.call(
            slot, "get", slot.tier.get_many, keys, limit_s=self.timeout_s
        )
        if not ok:
            return False
        missing: list[str] = []
        is_new = False
        for key, env in zip(keys, envelopes, strict=True):
            value = None if env is None else env.value
            seen = value.get("epoch") if isinstance(value, dict) else None
            known = self.known.get((slot.name, key))
            if not isinstance(seen, str):
                missing.append(key)
            elif known is None:
                self.known[slot.name, key] = seen  # first sighting: nothing to compare with
            elif seen != known:
                log.warning("tier_epoch_changed", tier=slot.name, marker=key)
                self.known[slot.name, key] = seen
                is_new = True
        if missing:
            # at a process's first look, a missing marker is most often a fresh deployment
            first = slot.name not in self._renewed
            (log.info if first else log.warning)(
                "tier_epoch_missing", tier=slot.name, markers=len(missing), first_check=first
            )
            await self._mark(slot, missing)
            is_new = True
        elif time.monotonic() - self._renewed.get(slot.name, 0.0) > RENEW_EVERY_S:
            await self._mark(slot, keys, renew=True)
        return is_new

    async def _mark(self, slot: Slot, keys: list[str], *, renew: bool = False) -> None:
        """Write a new epoch id to ``keys`` (or renew the known one), then adopt what the
        tier holds: when two processes mark at once, the later write wins for both."""
        now = now_ms()
        items = []
        for key in keys:
            epoch = self.known.get((slot.name, key)) if renew else None
            body = encode_body(
                key, {"epoch": epoch or secrets.token_hex(8)}, as_of=now, written_at=now,
                source=self.source,
            )  # fmt: skip
            items.append(StoreItem(key, body, MARKER_TTL_S, now + int(MARKER_TTL_S * 1000)))
        ok, _ = await self.calls.call(
            slot, "set", slot.tier.set_many, items, limit_s=self.write_timeout_s
        )
        if not ok:
            return  # the next check finds the marker missing again
        self._renewed[slot.name] = time.monotonic()
        ok, envelopes = await self.calls.call(
            slot, "get", slot.tier.get_many, keys, limit_s=self.timeout_s
        )
        if ok:
            for key, env in zip(keys, envelopes, strict=True):
                value = None if env is None else env.value
                if isinstance(value, dict) and isinstance(value.get("epoch"), str):
                    self.known[slot.name, key] = value["epoch"]

    async def refill(self, tier: str, entries: Iterable[Kept]) -> Refilled:
        """Write ``entries`` into ``tier`` alone, each with the TTL it has left (from when
        it was first written), skipping those already expired. Monotonic: the tier refuses
        an entry older than what it holds."""
        slot = self._slot(tier)
        at = self.levels.index(TierLevel(slot.tier.level))
        deepest = slot is self.slots[-1]
        done = Refilled()
        chunk: list[Kept] = []
        for entry in entries:
            chunk.append(entry)
            if len(chunk) >= REFILL_CHUNK:
                done = done + await self._refill_chunk(slot, at, deepest, chunk)
                chunk = []
        if chunk:
            done = done + await self._refill_chunk(slot, at, deepest, chunk)
        return done

    async def _refill_chunk(
        self, slot: Slot, at: int, deepest: bool, chunk: Sequence[Kept]
    ) -> Refilled:
        now = now_ms()
        items: list[StoreItem] = []
        for kept, ttl in zip(chunk, self._ttls(chunk, at), strict=True):
            w, born = kept.write, kept.written_ms
            fresh_until = born + int(ttl * 1000)
            expires_at = fresh_until
            if deepest:  # the deepest tier keeps the stale window behind the fresh TTL
                expires_at += int(self.policy.stale_for(w.data_type) * 1000)
            left_s = (expires_at - now) / 1000.0
            if left_s < 1.0:
                continue  # gone by now anyway
            try:
                body = encode_body(
                    w.key, w.value, as_of=w.as_of, written_at=born, source=self.source,
                    max_bytes=self.max_value_bytes,
                )  # fmt: skip
            except (CacheError, ValueError) as exc:  # it was written once, so unlikely
                log.warning("refill_entry_skipped", key=w.key, error=str(exc))
                continue
            items.append(StoreItem(w.key, body, left_s, expires_at, fresh_until if deepest else 0))
        expired = len(chunk) - len(items)
        if not items:
            return Refilled(expired=expired)
        ok, stored = await self.calls.call(
            slot, "set", slot.tier.set_many, items, limit_s=self.write_timeout_s
        )
        if not ok:
            return Refilled(expired=expired, failed=len(items))
        written = sum(1 for s in stored if s)
        slot.stats.writes += written
        slot.stats.stale += len(stored) - written
        return Refilled(written, len(stored) - written, expired)

    def _ttls(self, chunk: Sequence[Kept], at: int) -> list[float]:
        """The fresh TTL of each entry in this tier, as the write path's policy gives it
        (per warm interval, since coverage depends on it; with the keys' measured heat)."""
        out: list[float] = [0.0] * len(chunk)
        by_interval: dict[float | None, list[int]] = {}
        for i, kept in enumerate(chunk):
            by_interval.setdefault(kept.warm_interval, []).append(i)
        for interval, positions in by_interval.items():
            rows = self.policy.ttls_many(
                [(chunk[i].write.data_type, chunk[i].write.volatility) for i in positions],
                self.levels, warm_interval=interval,
                keys=None if self.policy.heat is None else [chunk[i].write.key for i in positions],
            )  # fmt: skip
            for i, row in zip(positions, rows, strict=True):
                out[i] = row[at]
        return out
