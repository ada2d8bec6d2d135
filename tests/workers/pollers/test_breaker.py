"""The pollers' circuit breaker (the one ``tiers.CircuitBreaker``, kind ``exchange``) and
their backoff, with time passed in; and the breaker inside a real poll."""

from __future__ import annotations

import random
import time
from collections.abc import Callable

from structlog.testing import capture_logs

from sim import RunningSimulator, make_fault
from tests.workers.pollers.conftest import FAST, SleepLog, make_job
from tiers import BreakerState, CircuitBreaker
from workers.pollers import ExchangePoller
from workers.pollers._backoff import Backoff


class ShiftedClock:
    """Wall time plus a shift tests move by hand (the simulator still runs in real time)."""

    def __init__(self) -> None:
        self.shift = 0.0

    def __call__(self) -> float:
        return time.time() + self.shift


def test_exchange_breaker_opens_probes_once_and_reopens_with_its_own_log_events() -> None:
    now = [0.0]
    breaker = CircuitBreaker(
        "binance", failure_threshold=3, cooldown_s=10, clock=lambda: now[0], kind="exchange"
    )
    with capture_logs() as logs:
        assert [breaker.failure("NetworkError") for _ in range(3)] == [False, False, True]
        now[0] = 5.0
        assert breaker.state is BreakerState.OPEN and not breaker.allow()
        now[0] = 10.0
        assert breaker.allow() and not breaker.allow()  # one probe at a time
        assert breaker.state is BreakerState.HALF_OPEN
        now[0] = 11.0
        assert breaker.failure("NetworkError")  # the probe failed: open again from now
        now[0] = 15.0
        assert not breaker.allow()
        now[0] = 21.0
        assert breaker.allow()
        breaker.success()
    assert breaker.state is BreakerState.CLOSED and breaker.failures == 0
    events = [(e["event"], e.get("exchange")) for e in logs if e["log_level"] == "warning"]
    assert events == [("exchange_breaker_open", "binance"), ("exchange_breaker_closed", "binance")]


def test_backoff_is_jittered_exponential_and_capped() -> None:
    backoff = Backoff(base_s=0.5, cap_s=4.0, rng=random.Random(1))
    for attempt in range(8):
        delays = [backoff.delay(attempt) for _ in range(200)]
        assert 0 <= min(delays) and max(delays) <= min(4.0, 0.5 * 2**attempt)
        assert max(delays) > 0.5 * min(4.0, 0.5 * 2**attempt)  # jitter spans the range


async def test_a_probe_cut_off_by_the_job_deadline_does_not_keep_the_breaker_open(
    sim: RunningSimulator, poller_for: Callable[..., ExchangePoller]
) -> None:
    # regression: the half-open probe that ran out of the job's time held the probe slot
    # forever, so every later job for the exchange was dropped as "breaker_open"
    clock = ShiftedClock()
    poller = poller_for("binance", sleep=SleepLog(), clock=clock)
    assert (await poller.poll(make_job("binance", "tickers", ["BTC/USDT"]))).outcome == "complete"
    now = sim.simulator.now_ms()
    sim.simulator.faults.add(make_fault({"endpoint": "binance", "kind": "503"}), now)
    await poller.poll(make_job("binance", "tickers", ["BTC/USDT"]))
    assert poller.breaker.is_open
    sim.simulator.faults.clear()
    slow = {"endpoint": "binance", "kind": "slow", "delay_s": 2.0, "count": 1}
    sim.simulator.faults.add(make_fault(slow), now)
    clock.shift += FAST.breaker_cooldown_s  # the cooldown is over: the next request probes
    cut = await poller.poll(make_job("binance", "tickers", ["BTC/USDT"], clock.shift + 0.3))
    assert cut.outcome != "complete" and cut.records == []
    healed = await poller.poll(make_job("binance", "tickers", ["BTC/USDT"], clock.shift + 20))
    assert healed.outcome == "complete" and poller.breaker.state is BreakerState.CLOSED
