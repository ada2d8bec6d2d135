"""Every L2/L3 call goes through here: the tier's breaker, a deadline, timing, and the one
place a failure is counted and logged. Readers and writers never see a tier's exception."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sized
from dataclasses import dataclass, field
from typing import Any

import structlog

from tiers._breaker import CircuitBreaker
from tiers._deadline import Watchdog
from tiers._errors import CacheError, CacheUnavailable
from tiers._metrics import TierStats
from tiers._protocol import Tier

log = structlog.get_logger(__name__)

#: operations whose failure leaves data unwritten in a tier
WRITE_OPS = frozenset({"set", "delete"})


@dataclass(eq=False)
class Slot:
    """A lower tier (L2/L3) with its breaker and counters."""

    tier: Tier
    breaker: CircuitBreaker
    stats: TierStats = field(default_factory=TierStats)

    @property
    def name(self) -> str:
        return self.tier.name


class TierCalls:
    """Timeout + breaker + error accounting for calls to lower tiers, once."""

    def __init__(self) -> None:
        self.watchdog = Watchdog()

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

    @staticmethod
    def failed(slot: Slot, op: str, exc: BaseException, args: tuple[Any, ...] = ()) -> None:
        """Count a failed call against its tier (errors, breaker). A failed write lost data
        in that tier until the next warm re-sends it: a WARNING with the batch size; a
        failed read or promotion costs only a deeper lookup: debug."""
        slot.stats.errors += 1
        error = type(exc).__name__ if not isinstance(exc, CacheUnavailable) else str(exc)
        slot.breaker.failure(error)
        if op in WRITE_OPS:
            keys = len(args[0]) if args and isinstance(args[0], Sized) else 0
            log.warning("tier_write_failed", tier=slot.name, op=op, keys=keys, error=error)
        else:
            log.debug("tier_call_failed", tier=slot.name, op=op, error=error)

    def close(self) -> None:
        self.watchdog.close()
