"""One circuit breaker for everything we call that can go away: the cache tiers and the
exchanges. Closed -> open after N consecutive failures, one half-open probe after a
cooldown, closed again on its success. Each state change is logged once (``{kind}_breaker_open``
with ``{kind}=name``) and counted; while open, callers skip the dependency instead of waiting
on it. Time comes from the injected ``clock``, so tests drive it without sleeping."""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import StrEnum

import structlog

from topics import ConfigError

log = structlog.get_logger(__name__)


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """``name`` is what is guarded (``redis``, ``binance``); ``kind`` names it in the log
    events and their key (``tier`` for the cache tiers, ``exchange`` for the pollers)."""

    def __init__(
        self,
        name: str,
        *,
        failure_threshold: int = 3,
        cooldown_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        kind: str = "tier",
    ) -> None:
        if failure_threshold < 1:
            raise ConfigError("breaker.failure_threshold", failure_threshold, "must be >= 1")
        if cooldown_s <= 0:
            raise ConfigError("breaker.cooldown_s", cooldown_s, "must be > 0")
        self.name = name
        self.kind = kind
        self.failure_threshold = failure_threshold
        self.cooldown_s = cooldown_s
        self.clock = clock
        self.state = BreakerState.CLOSED
        self.failures = 0  # consecutive
        self.opened_at = 0.0
        self.transitions = 0
        self._probing = False
        self._events = (f"{kind}_breaker_open", f"{kind}_breaker_closed", f"{kind}_breaker_state")

    @property
    def is_open(self) -> bool:
        return self.state is not BreakerState.CLOSED

    def allow(self) -> bool:
        """May a call go out now? In half-open, exactly one probe at a time."""
        if self.state is BreakerState.CLOSED:
            return True
        if self.state is BreakerState.OPEN:
            if self.clock() - self.opened_at < self.cooldown_s:
                return False
            self._move(BreakerState.HALF_OPEN)
        if self._probing:
            return False
        self._probing = True
        return True

    def success(self) -> None:
        self.failures = 0
        if self.state is not BreakerState.CLOSED:
            self._probing = False
            self._move(BreakerState.CLOSED)

    def abandon(self) -> None:
        """A call ended without a verdict (cancelled, out of time): let the next probe
        through instead of waiting forever on this one's."""
        self._probing = False

    def failure(self, error: str = "") -> bool:
        """Count a failure; True when this one opened (or re-opened) the breaker."""
        self.failures += 1
        if self.state is BreakerState.HALF_OPEN or (
            self.state is BreakerState.CLOSED and self.failures >= self.failure_threshold
        ):
            self._probing = False
            self.opened_at = self.clock()
            self._move(BreakerState.OPEN, error)
            return True
        return False

    def _move(self, state: BreakerState, error: str = "") -> None:
        previous, self.state = self.state, state
        self.transitions += 1
        opened, closed, changed = self._events
        who = {self.kind: self.name}
        if state is BreakerState.OPEN and previous is BreakerState.CLOSED:
            log.warning(
                opened, **who, failures=self.failures, error=error, cooldown_s=self.cooldown_s
            )
        elif state is BreakerState.CLOSED:
            log.warning(closed, **who)
        else:
            log.debug(changed, **who, state=str(state), error=error)
