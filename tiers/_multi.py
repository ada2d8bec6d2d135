"""MultiTierCache: write-through to every tier, reads L1 -> L2 -> L3 with promotion.

The cache is the front door; the work is done by parts with one concern each:

* reads answer from L1 here (``MemoryTier.hit``: a dict lookup); a miss joins the read
  path (``tiers._read``: single-flight, natural batching, promotion);
* writes go through the write path (``tiers._write``): every tier concurrently, each with
  its own TTL from the ``TTLPolicy``, monotonic by ``as_of`` in every tier;
* every L2/L3 call goes through ``tiers._calls``: a timeout and the tier's circuit
  breaker; a tier that fails is skipped — counted, logged once per state change, probed
  back in — and readers never see its exceptions;
* coherence (``tiers._coherence``) keeps the L1 in step with other processes over the
  ``Bus`` the cache is handed (by default the Redis tier's pub/sub): every write batch and
  delete is announced with its keys and ``as_of``, one message per batch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable, Sequence
from typing import Any, Protocol, runtime_checkable

import structlog

from tiers import _metrics
from tiers._breaker import CircuitBreaker
from tiers._bus import DROPPED, Bus
from tiers._calls import Options, Parts, Slot, TierCalls
from tiers._coherence import Coherence
from tiers._envelope import DEFAULT_MAX_BYTES, now_ms
from tiers._epoch import MARKER_PREFIX, EpochWatch
from tiers._errors import CacheError
from tiers._hit import Hit, Write
from tiers._keys import check_key
from tiers._memory import MemoryTier
from tiers._metrics import ReadStats, TierStats
from tiers._protocol import Tier
from tiers._read import ANY_STALE_MS, ReadPath, stale_ms_of
from tiers._ttl import TierLevel, TTLPolicy
from tiers._write import WritePath
from topics import ConfigError

log = structlog.get_logger(__name__)

DEFAULT_CHANNEL = "warmfleet:invalidate"


def _stale_ms(max_stale: float | None, stale_if_error: bool) -> int:
    return ANY_STALE_MS if stale_if_error else stale_ms_of(max_stale)


@runtime_checkable
class BusCarrier(Protocol):
    """A tier that can carry the invalidation bus (the Redis tier can)."""

    def bus(self, channel: str) -> Bus: ...


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
        bus: Bus | None = None,
        max_batches: int = 2,
    ) -> None:
        """``bus`` carries invalidations between processes; without one, a tier that can
        carry it (Redis) does, on ``invalidation_channel`` (None: no bus at all)."""
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
        if max_batches < 1:
            raise ConfigError("max_batches", max_batches, "must be >= 1")
        self.tiers = tuple(tiers)
        self.levels = levels
        self.policy = ttl_policy or TTLPolicy()
        self.options = Options(timeout_s, write_timeout_s, max_batches, max_value_bytes, source)
        self.channel = invalidation_channel
        first = tiers[0]
        self._l1 = first if isinstance(first, MemoryTier) else None
        self._l1_hit = None if self._l1 is None else self._l1.hit  # bound once: get_many

        def breaker(name: str) -> CircuitBreaker:
            return CircuitBreaker(
                name, failure_threshold=breaker_failures, cooldown_s=breaker_cooldown_s
            )

        self._lower = [Slot(t, breaker(t.name)) for t in tiers if t is not self._l1]
        self._calls = TierCalls(probe_timeout_s=timeout_s)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False
        parts = Parts(self._l1, self._lower, self._calls, self.policy, self.options)
        self._reads = ReadPath(parts, spawn=self._spawn)
        self._writes = WritePath(parts, levels)
        if bus is None and invalidation_channel:
            carrier = next((t for t in tiers if isinstance(t, BusCarrier)), None)
            bus = None if carrier is None else carrier.bus(invalidation_channel)
        self._coherence: Coherence | None = None
        if bus is not None:
            self._coherence = Coherence(
                bus, self._l1, on_change=self._reads.changed, publish_timeout_s=write_timeout_s,
                breaker=breaker(bus.name), resend_for_s=self.policy.clamp_s[TierLevel.L1][1],
            )  # fmt: skip
        self.id = "" if self._coherence is None else self._coherence.id
        if self._l1 is not None:
            # the L1 answers ``get`` itself, with no call in between (MemoryTier.front):
            # the same contract as the method below, which serves a cache without an L1
            self.get = self._l1.front(self._below)  # type: ignore[method-assign]
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

    async def get(
        self,
        key: str,
        max_age: float | None = None,
        max_stale: float | None = None,
        stale_if_error: bool = False,
    ) -> Hit | None:
        """The freshest reachable value for ``key``, or None. Never raises because a tier is
        down. ``max_age`` (seconds) refuses values whose ``as_of`` is older than that.

        A normal read never returns a copy past its fresh TTL. ``max_stale=S`` also accepts
        one up to S seconds past it (the deepest tier keeps copies for the policy's
        ``stale_s`` after their fresh TTL), returned with ``hit.stale`` True.
        ``stale_if_error=True`` says the key's origin is known to be failing: a fresh copy
        if there is one, else the last good copy still kept, flagged stale.

        Pass the options by keyword (``get(key, max_age=5)``); they are positional-or-keyword
        only because that is cheaper to call (``MemoryTier.front``). With an L1 this method
        is replaced per instance by the L1's front, which answers hits itself and sends the
        rest to ``_below``."""
        return await self._below(key, max_age, max_stale, stale_if_error)

    async def _below(
        self, key: str, max_age: float | None, max_stale: float | None, stale_if_error: bool
    ) -> Hit | None:
        """A read that L1 did not answer (or a cache without an L1)."""
        check_key(key)
        self._ensure_started()
        return await self._reads.get(key, max_age, _stale_ms(max_stale, stale_if_error))

    async def get_many(
        self,
        keys: Sequence[str],
        *,
        max_age: float | None = None,
        max_stale: float | None = None,
        stale_if_error: bool = False,
    ) -> list[Hit | None]:
        """Hits (or None) in the order of ``keys``; the L1 misses share one batch."""
        out: list[Hit | None] = [None] * len(keys)
        waiting: list[tuple[int, asyncio.Future[Hit | None]]] = []
        l1_hit = self._l1_hit
        stale_ms = _stale_ms(max_stale, stale_if_error)
        for i, key in enumerate(keys):
            if l1_hit is not None:
                hit = l1_hit(key, max_age)
                if hit is not None:
                    out[i] = hit
                    continue
            check_key(key)
            self._ensure_started()
            fut = self._reads.enqueue(key, max_age, stale_ms)
            if fut is not None:
                waiting.append((i, fut))
        if waiting:
            await self._reads.lead()
            for i, fut in waiting:
                out[i] = await fut
        return out

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
        bodies = self._writes.encode(writes, now)
        self._ensure_started()
        written = await self._writes.set_many(writes, bodies, now, warm_interval)
        if self._coherence is not None:
            # after the tiers took it (an L1 that drops its copy finds the new one below),
            # and in the background: a writer such as the agents' stream awaits each batch
            # before the next, and must not wait a bus round trip for it too
            entries = [
                (w.key, b.as_of) for w, b, r in zip(writes, bodies, written, strict=True) if r
            ]
            if entries:
                self._spawn(self._coherence.announce(entries))
        return written

    async def delete(self, key: str) -> None:
        """Remove ``key`` from every tier and tell every other cache's L1 to drop it."""
        check_key(key)
        self._ensure_started()
        if self._l1 is not None:
            self._l1.discard(key)
        self._reads.changed(key, DROPPED)
        await asyncio.gather(
            *(
                self._calls.call(
                    slot,
                    "delete",
                    slot.tier.delete_many,
                    [key],
                    limit_s=self.options.write_timeout_s,
                )
                for slot in self._lower
            )
        )
        if self._coherence is not None:
            await self._coherence.announce([(key, DROPPED)])

    def epoch_watch(self, prefix: str = MARKER_PREFIX) -> EpochWatch:
        """A watch for a lower tier that came back empty, and its refill (``tiers._epoch``);
        its marker keys start with ``prefix``."""
        return EpochWatch(
            self._lower, self._calls, self.policy, self.levels,
            timeout_s=self.options.timeout_s, write_timeout_s=self.options.write_timeout_s,
            source=self.options.source, max_value_bytes=self.options.max_value_bytes,
            prefix=prefix,
        )  # fmt: skip

    # ---- lifecycle ------------------------------------------------------------------

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _ensure_started(self) -> None:
        if self._coherence is not None and not self._closed:
            self._coherence.start()

    async def start(self, wait_s: float = 5.0) -> bool:
        """Start the invalidation listener now and wait until it is subscribed (otherwise it
        starts with the first call that needs it). False if it could not subscribe in time."""
        self._ensure_started()
        if self._coherence is None or not self._coherence.listening:
            return True
        return await self._coherence.wait_subscribed(wait_s)

    @property
    def subscribed(self) -> bool:
        """True while the invalidation listener is subscribed to the bus."""
        return self._coherence is not None and self._coherence.subscribed.is_set()

    async def drain(self) -> None:
        """Wait for background promotions and bus announcements (tests and benchmarks)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            async with asyncio.timeout(2.0):
                await self.drain()  # promotions and announcements still on their way
        except TimeoutError:
            pass
        if self._coherence is not None:
            await self._coherence.close()
        for task in list(self._tasks):
            task.cancel()
        self._reads.close()
        _metrics.retire(self)
        await self._calls.stop_probes(self._lower)
        self._calls.close()
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

    def _l1_stats(self) -> TierStats:
        assert self._l1 is not None
        stats = TierStats()
        stats.add(self._writes.l1_stats)
        stats.hits, stats.misses = self._l1.hits, self._l1.misses
        stats.promotions = self._reads.l1_promotions
        return stats

    def metric_rows(self) -> Iterable[tuple[str, TierStats, bool]]:
        if self._l1 is not None:
            yield self._l1.name, self._l1_stats(), False
        for slot in self._lower:
            yield slot.name, slot.stats, slot.breaker.is_open

    def read_stats(self) -> ReadStats:
        """Whole reads by outcome (l1, l2, l3, stale, miss), their latency and errors."""
        l1_hits = 0 if self._l1 is None else self._l1.hits
        return self._reads.reads.with_l1_hits(l1_hits)

    @property
    def invalidations(self) -> int:
        return 0 if self._coherence is None else self._coherence.invalidations

    def stats(self) -> dict[str, dict[str, Any]]:
        """Per tier: hits, misses, errors, promotions, skipped, writes, stale, latency
        (mean/p99 ms of L2/L3 calls), breaker state; ``overall`` for whole reads, with the
        share of all reads per outcome (l1, l2, l3, stale, miss), p50/p95/p99 ms and the
        read errors (``ReadStats.summary``)."""
        out: dict[str, dict[str, Any]] = {}
        for name, stats, _open in self.metric_rows():
            out[name] = stats.snapshot()
        if self._l1 is not None:
            out[self._l1.name].update(
                entries=len(self._l1), evictions=self._l1.evictions, rejections=self._l1.rejections
            )
        for slot in self._lower:
            out[slot.name]["breaker"] = str(slot.breaker.state)
        served = self._reads.served
        l1_hits = 0 if self._l1 is None else self._l1.hits
        reads = l1_hits + served["lower_hits"] + served["none"]
        hits = l1_hits + served["lower_hits"]
        out["overall"] = {
            "reads": reads,
            "hits": hits,
            "misses": served["none"],
            "hit_ratio": hits / reads if reads else None,
            "batches": served["batches"],
            "batched_keys": served["batched_keys"],
            "invalidations": self.invalidations,
        }
        summary = self.read_stats().summary()
        out["overall"].update(
            shares=summary["shares"], p50_ms=summary["p50_ms"], p95_ms=summary["p95_ms"],
            p99_ms=summary["p99_ms"], read_errors=summary["errors"],
        )  # fmt: skip
        return out
