"""A circuit breaker per tier: closed -> open after N consecutive failures, one half-open
probe after a cooldown, closed again on its success. Each state change is logged once and
counted; while open, callers skip the tier instead of waiting on it."""

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
    def __init__(
        self,
        tier: str,
        *,
        failure_threshold: int = 3,
        cooldown_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1:
            raise ConfigError("breaker.failure_threshold", failure_threshold, "must be >= 1")
        if cooldown_s <= 0:
            raise ConfigError("breaker.cooldown_s", cooldown_s, "must be > 0")
        self.tier = tier
        self.failure_threshold = failure_threshold
        self.cooldown_s = cooldown_s
        self.clock = clock
        self.state = BreakerState.CLOSED
        self.failures = 0  # consecutive
        self.opened_at = 0.0
        self.transitions = 0
        self._probing = False

    @property
    def is_open(self) -> bool:
        return self.state is not BreakerState.CLOSED

    def allow(self) -> bool:
        """May a call go to the tier now? In half-open, exactly one probe at a time."""
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
        """A call ended without a verdict (cancelled): let the next probe through."""
        self._probing = False

    def failure(self, error: str = "") -> None:
        self.failures += 1
        if self.state is BreakerState.HALF_OPEN:
            self._probing = False
            self.opened_at = self.clock()
            self._move(BreakerState.OPEN, error)
        elif self.state is BreakerState.CLOSED and self.failures >= self.failure_threshold:
            self.opened_at = self.clock()
            self._move(BreakerState.OPEN, error)

    def _move(self, state: BreakerState, error: str = "") -> None:
        previous, self.state = self.state, state
        self.transitions += 1
        if state is BreakerState.OPEN and previous is BreakerState.CLOSED:
            log.warning(
                "tier_breaker_open", tier=self.tier, failures=self.failures, error=error,
                cooldown_s=self.cooldown_s,
            )  # fmt: skip
        elif state is BreakerState.CLOSED:
            log.warning("tier_breaker_closed", tier=self.tier)
        else:
            log.debug("tier_breaker_state", tier=self.tier, state=str(state), error=error)
