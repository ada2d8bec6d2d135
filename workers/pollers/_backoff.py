"""Per-exchange circuit breaker and retry backoff for the pollers (pure; time is passed in)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


@dataclass(slots=True)
class CircuitBreaker:
    """Opens after ``threshold`` consecutive failures; after ``cooldown_s`` lets one probe
    through (half-open): its success closes the breaker, its failure re-opens it."""

    threshold: int = 5
    cooldown_s: float = 30.0
    failures: int = 0
    opened_at: float | None = None
    probing: bool = False

    def state(self, now: float) -> str:
        if self.opened_at is None:
            return CLOSED
        if now - self.opened_at >= self.cooldown_s:
            return HALF_OPEN
        return OPEN

    def allow(self, now: float) -> bool:
        """May a request go out now? In half-open state, only one at a time."""
        state = self.state(now)
        if state == CLOSED:
            return True
        if state == HALF_OPEN and not self.probing:
            self.probing = True
            return True
        return False

    def success(self) -> None:
        self.failures, self.opened_at, self.probing = 0, None, False

    def failure(self, now: float) -> bool:
        """Record a failure; True when this one opened (or re-opened) the breaker."""
        self.failures += 1
        was_probe, self.probing = self.probing, False
        if was_probe or (self.opened_at is None and self.failures >= self.threshold):
            self.opened_at = now
            return True
        return False


@dataclass(slots=True)
class Backoff:
    """Exponential backoff with full jitter: attempt n waits uniform(0, min(cap, base*2^n))."""

    base_s: float = 0.25
    cap_s: float = 10.0
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, attempt: int) -> float:
        return self.rng.uniform(0.0, min(self.cap_s, self.base_s * 2.0**attempt))
