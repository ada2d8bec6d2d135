"""Retry backoff for the pollers (pure; the random source is injected). The circuit breaker
the pollers share with the cache tiers is ``tiers.CircuitBreaker``."""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass(slots=True)
class Backoff:
    """Exponential backoff with full jitter: attempt n waits uniform(0, min(cap, base*2^n))."""

    base_s: float = 0.25
    cap_s: float = 10.0
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, attempt: int) -> float:
        return self.rng.uniform(0.0, min(self.cap_s, self.base_s * 2.0**attempt))
