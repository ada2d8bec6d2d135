"""Circuit breaker and backoff, with time passed in."""

from __future__ import annotations

import random

from workers.pollers._backoff import CLOSED, HALF_OPEN, OPEN, Backoff, CircuitBreaker


def test_opens_after_threshold_probes_after_cooldown_and_closes_on_success() -> None:
    breaker = CircuitBreaker(threshold=3, cooldown_s=10)
    assert [breaker.failure(0.0) for _ in range(3)] == [False, False, True]
    assert breaker.state(5.0) == OPEN and not breaker.allow(5.0)
    assert breaker.state(10.0) == HALF_OPEN
    assert breaker.allow(10.0) and not breaker.allow(10.0)  # one probe at a time
    assert breaker.failure(11.0)  # the probe failed: open again from now
    assert not breaker.allow(15.0) and breaker.allow(21.0)
    breaker.success()
    assert breaker.state(21.0) == CLOSED and breaker.failures == 0


def test_backoff_is_jittered_exponential_and_capped() -> None:
    backoff = Backoff(base_s=0.5, cap_s=4.0, rng=random.Random(1))
    for attempt in range(8):
        delays = [backoff.delay(attempt) for _ in range(200)]
        assert 0 <= min(delays) and max(delays) <= min(4.0, 0.5 * 2**attempt)
        assert max(delays) > 0.5 * min(4.0, 0.5 * 2**attempt)  # jitter spans the range
