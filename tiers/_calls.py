"""Every L2/L3 call goes through here: the tier's breaker, a deadline, timing, and the one
place a failure is counted and logged. Readers and writers never see a tier's exception.

A tier whose breaker opens is probed back in by a background task, once per cooldown while
it stays open, with the tier's own ``ping`` (every node of it: each Redis Cluster primary,
each Memcached server) — so a process whose reads L1 answers does not show a recovered
tier open until traffic happens to reach it (issue 12)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence, Sized
from dataclasses import dataclass, field
from typing import Any

import structlog

from tiers._breaker import CircuitBreaker
from tiers._deadline import Watchdog
from tiers._envelope import DEFAULT_MAX_BYTES
from tiers._errors import CacheError, CacheUnavailable
from tiers._memory import MemoryTier
from tiers._metrics import TierStats
from tiers._protocol import Pinged, Tier
from tiers._ttl import TTLPolicy

log = structlog.get_logger(__name__)

#: operations whose failure leaves data unwritten in a tier
WRITE_OPS = frozenset({"set", "delete"})


@dataclass(eq=False)
class Slot:
    """A lower tier (L2/L3) with its breaker and counters."""

    tier: Tier
    breaker: CircuitBreaker
    stats: TierStats = field(default_factory=TierStats)
    probe: asyncio.Task[None] | None = None  # the background probe while the breaker is open
    probes: int = 0  # background probes sent
    probe_failures: int = 0

    @property
    def name(self) -> str:
        return self.tier.name


@dataclass(frozen=True, slots=True)
class Options:
    """The cache's settings its read and write paths share (the cache validates them)."""

    timeout_s: float = 0.1  # per read (and probe) of a lower tier
    write_timeout_s: float = 1.0  # per write, promotion or delete
    max_batches: int = 2  # lookups in flight before misses queue into one batch
    max_value_bytes: int = DEFAULT_MAX_BYTES
    source: str = ""  # written into every envelope


@dataclass(frozen=True, eq=False)
class Parts:
    """What the read path and the write path share: the L1 (if any), the lower tiers'
    slots, the guarded calls to them, the TTL policy and the cache's options."""

    l1: MemoryTier | None
    lower: Sequence[Slot]
    calls: TierCalls
    policy: TTLPolicy
    options: Options


class TierPath:
    """The base of the read and the write path: the parts as plain attributes (the read
    path below L1 is hot enough that one attribute lookup per use counts)."""

    def __init__(self, parts: Parts) -> None:
        self.l1 = parts.l1
        self.lower = list(parts.lower)
        self.calls = parts.calls
        self.policy = parts.policy
        self.options = parts.options


class TierCalls:
    """Timeout + breaker + error accounting for calls to lower tiers, once."""

    def __init__(self, *, probe_timeout_s: float = 0.1) -> None:
        self.watchdog = Watchdog()
        self.probe_timeout_s = probe_timeout_s
        self._closed = False

    async def call(
        self, slot: Slot, op: str, fn: Callable[..., Awaitable[Any]], *args: Any, limit_s: float
    ) -> tuple[bool, Any]:
        """(True, result) or (False, None) when the tier was skipped, failed or timed out."""
        breaker = slot.breaker
        if not breaker.allow():
            slot.stats.skipped += 1
            return False, None
        started = time.perf_counter()
        try:
            result = await self.watchdog.run(fn(*args), limit_s)
        except (CacheError, TimeoutError) as exc:
            self.failed(slot, op, exc, args)
            return False, None
        except Exception as exc:  # an unmapped driver error: never leak it to a caller
            self.failed(slot, op, exc, args)
            log.exception("tier_call_crashed", tier=slot.name, op=op)
            return False, None
        except BaseException:  # cancelled by our caller: the tier is not to blame
            breaker.abandon()
            raise
        slot.stats.observe(time.perf_counter() - started)
        breaker.success()
        return True, result

    def failed(self, slot: Slot, op: str, exc: BaseException, args: tuple[Any, ...] = ()) -> None:
        """Count a failed call against its tier (errors, breaker). A failed write lost data
        in that tier until the next warm re-sends it: a WARNING with the batch size; a
        failed read or promotion costs only a deeper lookup: debug."""
        slot.stats.errors += 1
        error = _error_name(exc)
        if slot.breaker.failure(error):
            self._start_probe(slot)
        if op in WRITE_OPS:
            keys = len(args[0]) if args and isinstance(args[0], Sized) else 0
            log.warning("tier_write_failed", tier=slot.name, op=op, keys=keys, error=error)
        else:
            log.debug("tier_call_failed", tier=slot.name, op=op, error=error)

    def _start_probe(self, slot: Slot) -> None:
        if self._closed or not isinstance(slot.tier, Pinged):
            return  # a tier without ping is probed by the traffic that reaches it
        if slot.probe is not None and not slot.probe.done():
            return
        # not one of the cache's tasks: drain() must never wait on a tier that is down
        slot.probe = asyncio.get_running_loop().create_task(self._probe(slot, slot.tier))

    async def _probe(self, slot: Slot, tier: Pinged) -> None:
        """While the breaker is open: wait out its cooldown, then be its one half-open call
        (unless traffic already is), a ping of the whole tier within the tier timeout."""
        breaker = slot.breaker
        while breaker.is_open and not self._closed:
            left = breaker.cooldown_s - (breaker.clock() - breaker.opened_at)
            await asyncio.sleep(min(max(left, 0.0), breaker.cooldown_s))
            if not breaker.allow():
                # still cooling down (it re-opened meanwhile), or a real call is the
                # half-open probe now: its verdict counts, look again next cooldown
                await asyncio.sleep(breaker.cooldown_s)
                continue
            if not breaker.is_open:
                return  # closed by traffic meanwhile
            slot.probes += 1
            try:
                await self.watchdog.run(tier.ping(), self.probe_timeout_s)
            except (CacheError, TimeoutError) as exc:
                slot.probe_failures += 1
                breaker.failure(_error_name(exc))  # open again, for another cooldown
                log.debug("tier_probe_failed", tier=slot.name, error=_error_name(exc))
            except Exception as exc:  # an unmapped driver error: the probe must go on
                slot.probe_failures += 1
                breaker.failure(type(exc).__name__)
                log.exception("tier_probe_crashed", tier=slot.name)
            except BaseException:
                breaker.abandon()
                raise
            else:
                breaker.success()  # logs tier_breaker_closed; the gauge reads 0 from now

    def close(self) -> None:
        self._closed = True
        self.watchdog.close()

    async def stop_probes(self, slots: Iterable[Slot]) -> None:
        probes = [slot.probe for slot in slots if slot.probe is not None]
        for probe in probes:
            probe.cancel()
        await asyncio.gather(*probes, return_exceptions=True)


def _error_name(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, CacheUnavailable) else type(exc).__name__
