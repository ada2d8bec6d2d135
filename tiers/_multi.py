"""MultiTierCache: write-through to every tier, reads L1 -> L2 -> L3 with promotion.

* **Writes** go to all tiers concurrently, each with its own TTL from the ``TTLPolicy``;
  every tier refuses an ``as_of`` older than the one it holds.
* **Reads** answer from L1 with a dict lookup. Misses are batched naturally: a miss goes
  out at once unless ``max_batches`` lookups are in flight, else it queues and the queue
  goes out as one multi-get per lower tier when a lookup returns; concurrent misses on one
  key share one lookup (single-flight). A lower-tier hit is promoted upward with a TTL no
  longer than what is left at the source.
* **Failure isolation**: every L2/L3 call has a timeout and goes through the tier's
  circuit breaker; a tier that fails is skipped — counted, logged once per state change,
  probed back in — and readers never see its exceptions.
* **Coherence**: ``delete`` broadcasts the key on Redis pub/sub; every cache with an L1
  listening on the same channel drops it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson
import structlog

from tiers import _metrics
from tiers._breaker import CircuitBreaker
from tiers._deadline import Watchdog
from tiers._envelope import (
    DEFAULT_MAX_BYTES,
    Body,
    Envelope,
    as_of_ms,
    encode_body,
    now_ms,
)
from tiers._errors import CacheError, CacheUnavailable
from tiers._hit import Hit, Write
from tiers._keys import check_key
from tiers._memory import MemoryTier
from tiers._metrics import TierStats
from tiers._protocol import StoreItem, Tier
from tiers._redis import RedisTier
from tiers._ttl import TierLevel, TTLPolicy
from topics import ConfigError, data_type_of

log = structlog.get_logger(__name__)

T = TypeVar("T")
_monotonic = time.monotonic
_time = time.time
DEFAULT_CHANNEL = "warmfleet:invalidate"


@dataclass(eq=False)
class _Slot:
    """A lower tier (L2/L3) with its breaker and counters."""

    tier: Tier
    breaker: CircuitBreaker
    stats: TierStats = field(default_factory=TierStats)

    @property
    def name(self) -> str:
        return self.tier.name


@dataclass(eq=False)
class _Pending:
    """Readers waiting for one key: each has its own future (a cancelled reader cancels
    only itself) and its own freshness floor (``as_of`` ms; 0 = any)."""

    floor: int
    waiters: list[tuple[asyncio.Future[Hit | None], int]] = field(default_factory=list)


class MultiTierCache:
    def __init__(
        self,
        tiers: Sequence[Tier],
        ttl_policy: TTLPolicy | None = None,
        *,
        timeout_s: float = 0.1,
        write_timeout_s: float = 1.0,
        breaker_failures: int = 3,
        breaker_cooldown_s: float = 1.0,
        source: str = "",
        max_value_bytes: int = DEFAULT_MAX_BYTES,
        invalidation_channel: str | None = DEFAULT_CHANNEL,
        max_batches: int = 2,
    ) -> None:
        if not tiers:
            raise ConfigError("tiers", tiers, "needs at least one tier")
        levels = tuple(TierLevel(t.level) for t in tiers)
        order = [list(TierLevel).index(level) for level in levels]
        if order != sorted(set(order)):
            raise ConfigError(
                "tiers", [t.name for t in tiers], "one tier per level, shallow to deep (L1, L2, L3)"
            )
        if timeout_s <= 0 or write_timeout_s <= 0:
            raise ConfigError("timeout_s", (timeout_s, write_timeout_s), "timeouts must be > 0")
        self.tiers = tuple(tiers)
        self.policy = ttl_policy or TTLPolicy()
        self.timeout_s = timeout_s
        self.write_timeout_s = write_timeout_s
        self.source = source
        self.max_value_bytes = max_value_bytes
        self.channel = invalidation_channel
        if max_batches < 1:
            raise ConfigError("max_batches", max_batches, "must be >= 1")
        self.max_batches = max_batches
        self.id = uuid.uuid4().hex[:12]
        self._levels = levels
        first = tiers[0]
        self._l1: MemoryTier | None = first if isinstance(first, MemoryTier) else None
        self._l1_data = None if self._l1 is None else self._l1.data
        self._l1_stats = TierStats()
        self._l1_hits = 0  # plain ints on the hot path; folded into stats lazily
        self._l1_misses = 0
        self._lower = [
            _Slot(
                t,
                CircuitBreaker(
                    t.name, failure_threshold=breaker_failures, cooldown_s=breaker_cooldown_s
                ),
            )
            for t in tiers
            if t is not self._l1
        ]
        self._lower_at = [self.tiers.index(s.tier) for s in self._lower]  # positions in tiers
        self._redis = next((s for s in self._lower if isinstance(s.tier, RedisTier)), None)
        self._queued: dict[str, _Pending] = {}
        self._inflight: dict[str, _Pending] = {}
        self._deleted_in_flight: set[str] = set()
        self._running = 0  # lookups in flight
        self._watchdog = Watchdog()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._listener: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()
        self._closed = False
        self.served = {"lower_hits": 0, "none": 0, "batches": 0, "batched_keys": 0}
        self.invalidations = 0
        _metrics.track(self)

    @classmethod
    def from_urls(
        cls, *urls: str, ttl_policy: TTLPolicy | None = None, **options: Any
    ) -> MultiTierCache:
        """``from_urls("memory://?max_entries=1500", "memcached://127.0.0.1:11211",
        "redis://127.0.0.1:6379/0")`` — any subset of tiers, shallow to deep."""
        from tiers._urls import tier_from_url

        return cls([tier_from_url(url) for url in urls], ttl_policy, **options)

    def __repr__(self) -> str:
        return f"MultiTierCache({', '.join(t.name for t in self.tiers)})"

    # ---- reads ----------------------------------------------------------------------

    async def get(self, key: str, *, max_age: float | None = None) -> Hit | None:
        """The freshest reachable value for ``key``, or None. ``max_age`` (seconds) refuses
        values whose ``as_of`` is older than that. Never raises because a tier is down."""
        data = self._l1_data
        if data is not None:
            hit = data.get(key)
            if hit is not None and hit.deadline > _monotonic():
                if max_age is None or _time() - hit.as_of / 1000.0 <= max_age:
                    data.move_to_end(key)
                    self._l1_hits += 1
                    return hit
        return await self._miss(key, max_age)

    async def get_many(
        self, keys: Sequence[str], *, max_age: float | None = None
    ) -> list[Hit | None]:
        """Hits (or None) in the order of ``keys``; the L1 misses share one batch."""
        out: list[Hit | None] = [None] * len(keys)
        waiting: list[tuple[int, asyncio.Future[Hit | None]]] = []
        data = self._l1_data
        now_mono, now_s = _monotonic(), _time()
        for i, key in enumerate(keys):
            if data is not None:
                hit = data.get(key)
                if hit is not None and hit.deadline > now_mono:
                    if max_age is None or now_s - hit.as_of / 1000.0 <= max_age:
                        data.move_to_end(key)
                        self._l1_hits += 1
                        out[i] = hit
                        continue
            fut = self._enqueue(key, max_age)
            if fut is not None:
                waiting.append((i, fut))
        if waiting:
            await self._lead()
            for i, fut in waiting:
                out[i] = await fut
        return out

    async def _miss(self, key: str, max_age: float | None) -> Hit | None:
        fut = self._enqueue(key, max_age)
        if fut is None:
            return None
        await self._lead()
        return await fut

    def _enqueue(self, key: str, max_age: float | None) -> asyncio.Future[Hit | None] | None:
        """Join the next lower-tier lookup for ``key``; None when there is nothing below."""
        check_key(key)
        self._ensure_started()
        if self._l1 is not None:
            self._l1_misses += 1
            self._l1.note_miss(key)
        if not self._lower:
            self.served["none"] += 1
            return None
        floor = 0 if max_age is None else now_ms() - int(max_age * 1000)
        fut: asyncio.Future[Hit | None] = asyncio.get_running_loop().create_future()
        pending = self._inflight.get(key)
        if pending is None or floor > pending.floor:  # single-flight unless it asks for fresher
            pending = self._queued.get(key)
            if pending is None:
                pending = self._queued[key] = _Pending(floor)
            pending.floor = max(pending.floor, floor)
        pending.waiters.append((fut, floor))
        return fut

    async def _lead(self) -> None:
        """Natural batching: a miss goes out at once unless ``max_batches`` lookups are
        already in flight; then it waits in the queue, and the queue goes out as ONE batch
        (one multi-get per tier) as soon as a lookup finishes. A lone reader pays no added
        latency; many concurrent readers share a round trip."""
        if self._running >= self.max_batches or not self._queued:
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

    def _finish(
        self, batch: dict[str, _Pending], found: dict[str, list[tuple[int, Envelope]]]
    ) -> None:
        self._running -= 1
        self._resolve(batch, found)
        self._promote(found)
        if self._queued and not self._closed:
            self._spawn(self._lead())  # the readers that queued behind this batch

    async def _lookup(self, batch: dict[str, _Pending]) -> dict[str, list[tuple[int, Envelope]]]:
        """Walk L2 then L3 with one multi-get each for the keys still unanswered."""
        found: dict[str, list[tuple[int, Envelope]]] = {}
        try:
            remaining = list(batch)
            for index, slot in enumerate(self._lower):
                if not remaining:
                    break
                ok, envelopes = await self._call(
                    slot, "get", slot.tier.get_many, remaining, limit_s=self.timeout_s
                )
                if not ok:
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

    def _resolve(
        self, batch: dict[str, _Pending], found: dict[str, list[tuple[int, Envelope]]]
    ) -> None:
        for key, pending in batch.items():
            if self._inflight.get(key) is pending:
                del self._inflight[key]
            candidates = found.get(key, ())
            for fut, floor in pending.waiters:
                if fut.done():
                    continue  # the reader was cancelled
                hit = None
                for index, env in candidates:
                    if env.as_of >= floor:
                        hit = Hit(
                            env.value, env.as_of, None, self._lower[index].name,
                            env.written_at, env.source, env.schema, env.expires_at,
                        )  # fmt: skip
                        break
                self.served["lower_hits" if hit is not None else "none"] += 1
                fut.set_result(hit)

    def _promote(self, found: dict[str, list[tuple[int, Envelope]]]) -> None:
        """Copy each key's freshest find into the tiers above it, with a TTL no longer than
        what is left at the source."""
        now = now_ms()
        uppers: dict[int, list[StoreItem]] = {}
        for key, candidates in found.items():
            if key in self._deleted_in_flight:
                continue
            index, env = candidates[0]
            if len(candidates) > 1:
                index, env = max(candidates, key=lambda c: (c[1].as_of, -c[0]))
            if index == 0 and self._l1 is None:
                continue  # found in the top tier: nothing above it
            left = env.remaining_s(now)
            if left is not None and left <= 0:
                continue
            data_type = data_type_of(key)
            if self._l1 is not None:
                ttl = self.policy.ttl_for(data_type, TierLevel.L1, deepest=False)
                ttl = ttl if left is None else min(ttl, left)
                if self._l1.put(key, env, ttl, expires_at=now + int(ttl * 1000)) is not None:
                    self._l1_stats.promotions += 1
            if index == 0:
                continue
            body: Body | None = None
            for upper in range(index):
                level = self._lower[upper].tier.level
                ttl = self.policy.ttl_for(data_type, level, deepest=False)
                ttl = ttl if left is None else min(ttl, left)
                if body is None:
                    try:
                        body = encode_body(
                            key, env.value, as_of=env.as_of, written_at=env.written_at,
                            source=env.source, schema=env.schema, max_bytes=self.max_value_bytes,
                        )  # fmt: skip
                    except CacheError:
                        break
                uppers.setdefault(upper, []).append(
                    StoreItem(key, body, ttl, now + int(ttl * 1000))
                )
        self._deleted_in_flight.clear()
        for upper, items in uppers.items():
            self._spawn(self._promote_into(self._lower[upper], items))

    async def _promote_into(self, slot: _Slot, items: list[StoreItem]) -> None:
        ok, stored = await self._call(
            slot, "promote", slot.tier.set_many, items, limit_s=self.write_timeout_s
        )
        if ok:
            slot.stats.promotions += sum(stored)

    # ---- writes ---------------------------------------------------------------------

    async def set(
        self,
        key: str,
        value: Any,
        *,
        data_type: str,
        as_of: int,
        volatility: float | None = None,
        warm_interval: float | None = None,
    ) -> dict[str, float]:
        """Write through to every tier; returns the TTL (seconds) written per tier name. A
        tier that refused an older ``as_of`` or was unavailable is absent from the result."""
        written = await self.set_many(
            [Write(key, value, data_type, as_of, volatility)], warm_interval=warm_interval
        )
        return written[0]

    async def set_many(
        self, writes: Sequence[Write], *, warm_interval: float | None = None
    ) -> list[dict[str, float]]:
        """Many writes at once: L1 directly, one batched call per lower tier (a Redis
        pipeline of EVALSHA, pipelined memcached cas/add). Raises ``ValueError`` (bad key),
        ``ValueTooLarge`` or ``UnencodableValue`` before writing anything; raises
        ``CacheUnavailable`` only when no tier at all could take the writes."""
        if not writes:
            return []
        now = now_ms()
        source, max_bytes = self.source, self.max_value_bytes
        bodies: list[Body] = []
        for w in writes:
            check_key(w.key)
            bodies.append(
                encode_body(
                    w.key, w.value, as_of=as_of_ms(w.as_of), written_at=now, source=source,
                    max_bytes=max_bytes,
                )
            )  # fmt: skip
        # per write, the TTL of each tier in self.tiers' order
        ttls = self.policy.ttls_many(
            [(w.data_type, w.volatility) for w in writes], self._levels,
            warm_interval=warm_interval,
        )  # fmt: skip
        self._ensure_started()
        # per tier that answered, shallow to deep: the TTL written per write, None if refused
        written: dict[int, list[float | None]] = {}
        in_l1: list[Hit | None] = []
        if self._l1 is not None:
            written[0], in_l1 = self._write_l1(writes, bodies, ttls, now)
        refused = [False] * len(writes)  # some lower tier holds a newer as_of

        async def write(slot: _Slot, at: int) -> None:
            items = [
                StoreItem(w.key, body, ttl[at], now + int(ttl[at] * 1000))
                for w, body, ttl in zip(writes, bodies, ttls, strict=True)
            ]
            ok, stored = await self._call(
                slot, "set", slot.tier.set_many, items, limit_s=self.write_timeout_s
            )
            if not ok:
                return
            column: list[float | None] = []
            for i, (item, was_stored) in enumerate(zip(items, stored, strict=True)):
                if was_stored:
                    column.append(item.ttl_s)
                else:
                    column.append(None)
                    refused[i] = True
            slot.stats.writes += len(column) - column.count(None)
            slot.stats.stale += column.count(None)
            written[at] = column

        if self._lower:
            await asyncio.gather(
                *(write(slot, at) for slot, at in zip(self._lower, self._lower_at, strict=True))
            )
            if in_l1:
                self._unshadow(writes, written[0], in_l1, refused)
        if not written:
            raise CacheUnavailable("all tiers", "set", f"{len(writes)} writes not stored")
        columns = [(self.tiers[at].name, written[at]) for at in sorted(written)]
        results: list[dict[str, float]] = [{} for _ in writes]
        for name, column in columns:  # shallow to deep
            for result, ttl in zip(results, column, strict=True):
                if ttl is not None:
                    result[name] = ttl
        return results

    def _write_l1(
        self, writes: Sequence[Write], bodies: list[Body], ttls: list[list[float]], now: int
    ) -> tuple[list[float | None], list[Hit | None]]:
        """Straight into L1, each value decoded from its envelope (a copy: the caller's
        objects are not shared, and L1 answers what L2/L3 would); the TTL written per
        write (None where L1 kept a newer value) and the entries stored."""
        assert self._l1 is not None
        put = self._l1.put
        column: list[float | None] = []
        entries: list[Hit | None] = []
        for w, body, ttl_row in zip(writes, bodies, ttls, strict=True):
            ttl = ttl_row[0]
            obj = orjson.loads(body.for_tier(now + int(ttl * 1000)))
            env = Envelope(obj["v"], obj["a"], obj["w"], obj["s"], obj["x"], obj["e"])
            stored = put(w.key, env, ttl)
            column.append(None if stored is None else ttl)
            entries.append(stored)
        stale = column.count(None)
        self._l1_stats.writes += len(column) - stale
        self._l1_stats.stale += stale
        return column, entries

    def _unshadow(
        self,
        writes: Sequence[Write],
        l1_column: list[float | None],
        in_l1: list[Hit | None],
        refused: list[bool],
    ) -> None:
        """An L1 that had evicted a key took an older write that L2/L3 refused; drop it so
        reads do not answer older data than the tiers below hold."""
        assert self._l1 is not None
        data = self._l1.data
        for i, env in enumerate(in_l1):
            if env is not None and refused[i]:
                key = writes[i].key
                entry = data.get(key)
                if entry is not None and entry is env:
                    del data[key]
                l1_column[i] = None
                self._l1_stats.writes -= 1
                self._l1_stats.stale += 1

    async def delete(self, key: str) -> None:
        """Remove ``key`` from every tier and tell every other cache's L1 to drop it."""
        check_key(key)
        self._ensure_started()
        if self._l1 is not None:
            self._l1.discard(key)
        if key in self._inflight or key in self._queued:
            self._deleted_in_flight.add(key)
        await asyncio.gather(
            *(
                self._call(
                    slot, "delete", slot.tier.delete_many, [key], limit_s=self.write_timeout_s
                )
                for slot in self._lower
            )
        )
        if self._redis is not None and self.channel:
            redis = self._redis.tier
            assert isinstance(redis, RedisTier)
            await self._call(
                self._redis, "publish", redis.publish, self.channel, self._message(key),
                limit_s=self.write_timeout_s,
            )  # fmt: skip

    def _message(self, key: str) -> bytes:
        return f"{self.id} {key}".encode()

    # ---- tier calls: timeout + breaker + error mapping, once ------------------------

    async def _call(
        self, slot: _Slot, op: str, fn: Callable[..., Awaitable[T]], *args: Any, limit_s: float
    ) -> tuple[bool, Any]:
        """(True, result) or (False, None) when the tier was skipped, failed or timed out."""
        breaker = slot.breaker
        if not breaker.allow():
            slot.stats.skipped += 1
            return False, None
        started = time.perf_counter()
        try:
            result = await self._watchdog.run(fn(*args), limit_s)
        except (CacheError, TimeoutError) as exc:
            self._failed(slot, op, exc)
            return False, None
        except Exception as exc:  # an unmapped driver error: never leak it to a caller
            self._failed(slot, op, exc)
            log.exception("tier_call_crashed", tier=slot.name, op=op)
            return False, None
        except BaseException:  # cancelled by our caller: the tier is not to blame
            breaker.abandon()
            raise
        slot.stats.observe(time.perf_counter() - started)
        breaker.success()
        return True, result

    def _failed(self, slot: _Slot, op: str, exc: BaseException) -> None:
        slot.stats.errors += 1
        error = type(exc).__name__ if not isinstance(exc, CacheUnavailable) else str(exc)
        slot.breaker.failure(error)
        log.debug("tier_call_failed", tier=slot.name, op=op, error=error)

    # ---- background: promotions, invalidation listener ------------------------------

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _ensure_started(self) -> None:
        if (
            self._listener is None
            and not self._closed
            and self._l1 is not None
            and self._redis is not None
            and self.channel
        ):
            self._listener = asyncio.get_running_loop().create_task(self._listen())

    async def start(self, wait_s: float = 5.0) -> bool:
        """Start the invalidation listener now and wait until it is subscribed (otherwise it
        starts with the first call that needs it). False if it could not subscribe in time."""
        self._ensure_started()
        if self._listener is None:
            return True
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait_s):
                await self._subscribed.wait()
        return self._subscribed.is_set()

    async def _listen(self) -> None:
        assert self._redis is not None and self.channel and self._l1 is not None
        redis = self._redis.tier
        assert isinstance(redis, RedisTier)
        mine = self.id.encode()
        backoff, lost = 0.1, False
        while not self._closed:
            pubsub = redis.pubsub()
            try:
                await pubsub.subscribe(self.channel)
                if lost:
                    # deletes published while we were away were missed: start L1 afresh
                    log.warning("l1_cleared_after_resubscribe", entries=len(self._l1))
                    self._l1.clear()
                    lost = False
                self._subscribed.set()
                backoff = 0.1
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if message is None or message.get("type") != "message":
                        continue
                    sender, _, key = bytes(message["data"]).partition(b" ")
                    if sender != mine:
                        self._l1.discard(key.decode())
                        self.invalidations += 1
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not lost:
                    log.warning("invalidation_listener_lost", error=type(exc).__name__)
                lost = True
                self._subscribed.clear()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
            finally:
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(1.0):
                        await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def drain(self) -> None:
        """Wait for background promotions (tests and benchmarks use this)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                async with asyncio.timeout(2.0):
                    await self._listener
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2.0):
                await self.drain()
        for task in list(self._tasks):
            task.cancel()
        for pending in [*self._inflight.values(), *self._queued.values()]:
            for fut, _floor in pending.waiters:
                if not fut.done():
                    fut.set_result(None)  # closing: readers still waiting get a miss
        _metrics.retire(self)
        self._watchdog.close()
        for tier in self.tiers:
            try:
                async with asyncio.timeout(2.0):
                    await tier.close()
            except (TimeoutError, CacheError, OSError) as exc:  # closing must not hang or raise
                log.warning("tier_close_failed", tier=tier.name, error=type(exc).__name__)

    async def __aenter__(self) -> MultiTierCache:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ---- stats ----------------------------------------------------------------------

    def metric_rows(self) -> Iterable[tuple[str, TierStats, bool]]:
        if self._l1 is not None:
            self._l1_stats.hits = self._l1_hits
            self._l1_stats.misses = self._l1_misses
            yield "memory", self._l1_stats, False
        for slot in self._lower:
            yield slot.name, slot.stats, slot.breaker.is_open

    def stats(self) -> dict[str, dict[str, Any]]:
        """Per tier: hits, misses, errors, promotions, skipped, writes, stale, latency
        (mean/p99 ms of L2/L3 calls), breaker state; plus ``overall`` for whole reads."""
        out: dict[str, dict[str, Any]] = {}
        for name, stats, _open in self.metric_rows():
            out[name] = stats.snapshot()
        if self._l1 is not None:
            out["memory"].update(
                entries=len(self._l1), evictions=self._l1.evictions, rejections=self._l1.rejections
            )
        for slot in self._lower:
            out[slot.name]["breaker"] = str(slot.breaker.state)
        reads = self._l1_hits + self.served["lower_hits"] + self.served["none"]
        hits = self._l1_hits + self.served["lower_hits"]
        out["overall"] = {
            "reads": reads,
            "hits": hits,
            "misses": self.served["none"],
            "hit_ratio": hits / reads if reads else None,
            "batches": self.served["batches"],
            "batched_keys": self.served["batched_keys"],
            "invalidations": self.invalidations,
        }
        return out
