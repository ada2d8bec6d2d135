"""The read path below L1: single-flight, natural batching, promotion.

An L1 miss goes out at once unless ``max_batches`` lookups are in flight, else it queues and
the queue goes out as ONE multi-get per lower tier when a lookup returns; concurrent misses
on one key share one lookup (single-flight). A lower-tier hit is promoted into the tiers
above it with a TTL no longer than what is left at the source.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import structlog

from tiers._calls import Parts, Slot, TierPath
from tiers._envelope import Body, Envelope, encode_body, now_ms
from tiers._errors import CacheError
from tiers._hit import Hit
from tiers._metrics import ReadStats
from tiers._protocol import StoreItem
from tiers._ttl import TierLevel
from topics import data_type_of

log = structlog.get_logger(__name__)

#: what a lookup found per key: (index of the lower tier, envelope), shallow to deep
Found = dict[str, list[tuple[int, Envelope]]]
_GONE = 1 << 62  # a key deleted while its lookup was in flight: promote nothing


class _Waiter(NamedTuple):
    """One reader: its own future (a cancelled reader cancels only itself), its freshness
    floor (``as_of`` ms; 0 = any), how stale a copy it accepts (ms past the fresh TTL; -1 =
    fresh only) and when it started waiting (for the read-latency histogram)."""

    fut: asyncio.Future[Hit | None]
    floor: int
    stale_ms: int
    started: float


@dataclass(eq=False)
class _Pending:
    """Readers waiting for one key."""

    floor: int
    waiters: list[_Waiter] = field(default_factory=list)
    failed: bool = False  # a tier failed while this key was looked up


def stale_ms_of(max_stale: float | None) -> int:
    """``max_stale`` seconds -> ms past the fresh TTL a reader accepts (-1: fresh only)."""
    if max_stale is None or max_stale != max_stale or max_stale < 0:
        return -1
    return ANY_STALE_MS if max_stale >= ANY_STALE_MS / 1000 else int(max_stale * 1000)


ANY_STALE_MS = 1 << 62


def floor_of(max_age: float | None) -> int:
    """``max_age`` seconds -> the oldest ``as_of`` (ms) a reader accepts; 0 = any. A huge,
    infinite or NaN ``max_age`` accepts anything (it must never overflow: issue 12)."""
    if max_age is None or not max_age < 1e12:
        return 0
    return now_ms() - int(max_age * 1000)


class ReadPath(TierPath):
    def __init__(self, parts: Parts, *, spawn: Callable[[Awaitable[Any]], None]) -> None:
        super().__init__(parts)
        self._spawn = spawn
        self._queued: dict[str, _Pending] = {}
        self._inflight: dict[str, _Pending] = {}
        self._changed: dict[str, int] = {}  # key -> as_of announced while it was in flight
        self._running = 0  # lookups in flight
        self.closed = False
        self.l1_promotions = 0
        self.served = {"lower_hits": 0, "none": 0, "batches": 0, "batched_keys": 0}
        self.reads = ReadStats()  # outcome of every read answered below L1, its latency
        self._outcome = {slot.name: str(slot.tier.level) for slot in self.lower}

    # ---- joining a lookup -----------------------------------------------------------

    async def get(self, key: str, max_age: float | None, stale_ms: int = -1) -> Hit | None:
        fut = self.enqueue(key, max_age, stale_ms)
        if fut is None:
            return None
        await self.lead()
        return await fut

    def enqueue(
        self, key: str, max_age: float | None, stale_ms: int = -1
    ) -> asyncio.Future[Hit | None] | None:
        """Join the next lower-tier lookup for ``key`` (an L1 miss); None when there is
        nothing below L1."""
        if self.l1 is not None:
            self.l1.note_miss(key)
        if not self.lower:
            self.served["none"] += 1
            self.reads.record("miss", 0.0)
            return None
        floor = floor_of(max_age)
        fut: asyncio.Future[Hit | None] = asyncio.get_running_loop().create_future()
        pending = self._inflight.get(key)
        if pending is None or floor > pending.floor:  # single-flight unless it asks for fresher
            pending = self._queued.get(key)
            if pending is None:
                pending = self._queued[key] = _Pending(floor)
            pending.floor = max(pending.floor, floor)
        pending.waiters.append(_Waiter(fut, floor, stale_ms, time.perf_counter()))
        return fut

    def changed(self, key: str, as_of: int) -> None:
        """``key`` was written (``as_of``) or deleted elsewhere: a lookup in flight for it
        must not promote an older copy."""
        if key in self._inflight or key in self._queued:
            self._changed[key] = max(self._changed.get(key, 0), as_of if as_of >= 0 else _GONE)

    async def lead(self) -> None:
        """Natural batching: a miss goes out at once unless ``max_batches`` lookups are
        already in flight; then it waits in the queue, and the queue goes out as ONE batch
        (one multi-get per tier) as soon as a lookup finishes. A lone reader pays no added
        latency; many concurrent readers share a round trip."""
        if self._running >= self.options.max_batches or not self._queued:
            return
        batch = self._take()
        try:
            found = await self._lookup(batch)
        except asyncio.CancelledError:
            # our reader gave up; the others in the batch still get their answer
            self._spawn(self._lookup_and_finish(batch))
            raise
        self._finish(batch, found)

    def _take(self) -> dict[str, _Pending]:
        batch, self._queued = self._queued, {}
        self._running += 1
        for key, pending in batch.items():
            self._inflight[key] = pending
        self.served["batches"] += 1
        self.served["batched_keys"] += len(batch)
        return batch

    async def _lookup_and_finish(self, batch: dict[str, _Pending]) -> None:
        self._finish(batch, await self._lookup(batch))

    def _finish(self, batch: dict[str, _Pending], found: Found) -> None:
        self._running -= 1
        self._resolve(batch, found)
        self._promote(found)
        if self._changed:
            for key in batch:
                self._changed.pop(key, None)
        if self._queued and not self.closed:
            self._spawn(self.lead())  # the readers that queued behind this batch

    # ---- the lookup -----------------------------------------------------------------

    async def _lookup(self, batch: dict[str, _Pending]) -> Found:
        """Walk L2 then L3 with one multi-get each for the keys still unanswered."""
        found: Found = {}
        try:
            remaining = list(batch)
            for index, slot in enumerate(self.lower):
                if not remaining:
                    break
                errors = slot.stats.errors
                ok, envelopes = await self.calls.call(
                    slot, "get", slot.tier.get_many, remaining, limit_s=self.options.timeout_s
                )
                if not ok:
                    if slot.stats.errors != errors:  # failed, not skipped: a read error
                        for key in remaining:
                            batch[key].failed = True
                    continue  # tier skipped or failed: look deeper for everything
                still: list[str] = []
                for key, env in zip(remaining, envelopes, strict=True):
                    if env is None:
                        slot.stats.misses += 1
                        still.append(key)
                        continue
                    slot.stats.hits += 1
                    found.setdefault(key, []).append((index, env))
                    if env.as_of < batch[key].floor:
                        still.append(key)  # too old for someone waiting: look deeper
                remaining = still
        except Exception:  # a bug must not hang or fail readers: log and answer misses
            log.exception("cache_lookup_failed", keys=len(batch))
        return found

    def _resolve(self, batch: dict[str, _Pending], found: Found) -> None:
        now, clock = now_ms(), time.perf_counter()
        record = self.reads.record
        for key, pending in batch.items():
            if self._inflight.get(key) is pending:
                del self._inflight[key]
            candidates = found.get(key, ())
            if pending.failed:
                self.reads.errors += len(pending.waiters)
            for waiter in pending.waiters:
                if waiter.fut.done():
                    continue  # the reader was cancelled
                hit = None
                for index, env in candidates:
                    if env.as_of < waiter.floor:
                        continue
                    past = now - env.fresh_until if env.fresh_until else 0
                    if past > 0 and past > waiter.stale_ms:
                        continue  # past its fresh TTL, and this reader wants it fresh
                    hit = Hit(
                        env.value, env.as_of, None, self.lower[index].name, env.written_at,
                        env.source, env.schema, env.expires_at, past > 0, env.fresh_until,
                    )  # fmt: skip
                    break
                if hit is None:
                    self.served["none"] += 1
                    record("miss", clock - waiter.started)
                else:
                    self.served["lower_hits"] += 1
                    outcome = "stale" if hit.stale else self._outcome[hit.tier]
                    record(outcome, clock - waiter.started)
                waiter.fut.set_result(hit)

    # ---- promotion ------------------------------------------------------------------

    def _promote(self, found: Found) -> None:
        """Copy each key's freshest find into the tiers above it, with a TTL no longer than
        what is left at the source."""
        now = now_ms()
        uppers: dict[int, list[StoreItem]] = {}
        changed = self._changed
        for key, candidates in found.items():
            index, env = candidates[0]
            if len(candidates) > 1:
                index, env = max(candidates, key=lambda c: (c[1].as_of, -c[0]))
            if changed and env.as_of < changed.get(key, 0):
                continue  # a newer write (or a delete) happened meanwhile
            if index == 0 and self.l1 is None:
                continue  # found in the top tier: nothing above it
            left = env.fresh_s(now)  # a promoted copy never outlives the source's freshness
            if left is not None and left <= 0:
                continue  # expired or stale: L1 (and L2) never hold a stale copy
            data_type = data_type_of(key)
            if self.l1 is not None:
                ttl = self.policy.ttl_for(data_type, TierLevel.L1, deepest=False)
                ttl = ttl if left is None else min(ttl, left)
                if self.l1.put(key, env, ttl, expires_at=now + int(ttl * 1000)) is not None:
                    self.l1_promotions += 1
            if index == 0:
                continue
            body: Body | None = None
            for upper in range(index):
                level = self.lower[upper].tier.level
                ttl = self.policy.ttl_for(data_type, level, deepest=False)
                ttl = ttl if left is None else min(ttl, left)
                if body is None:
                    try:
                        body = encode_body(
                            key, env.value, as_of=env.as_of, written_at=env.written_at,
                            source=env.source, schema=env.schema,
                            max_bytes=self.options.max_value_bytes,
                        )  # fmt: skip
                    except CacheError:
                        break
                uppers.setdefault(upper, []).append(
                    StoreItem(key, body, ttl, now + int(ttl * 1000))
                )
        for upper, items in uppers.items():
            self._spawn(self._promote_into(self.lower[upper], items))

    async def _promote_into(self, slot: Slot, items: list[StoreItem]) -> None:
        ok, stored = await self.calls.call(
            slot, "promote", slot.tier.set_many, items, limit_s=self.options.write_timeout_s
        )
        if ok:
            slot.stats.promotions += sum(stored)

    def close(self) -> None:
        """Closing: readers still waiting get a miss."""
        self.closed = True
        for pending in [*self._inflight.values(), *self._queued.values()]:
            for waiter in pending.waiters:
                if not waiter.fut.done():
                    waiter.fut.set_result(None)
