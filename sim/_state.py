"""The simulator's state: the market model, the simulated clock, faults and counters."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from typing import NamedTuple

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge

from sim._faults import FaultRegistry
from sim._market import DayStats, MarketModel, Pair

Clock = Callable[[], float]


def fmt(value: float, decimals: int) -> str:
    """A number as a venue sends it: a fixed-point string."""
    return f"{value:.{decimals}f}"


class Quote(NamedTuple):
    """One pair's ticker figures, formatted as venues send them; each venue names them."""

    last: str
    last_qty: str
    bid: str
    bid_qty: str
    ask: str
    ask_qty: str
    open: str
    high: str
    low: str
    volume: str  # base currency
    quote_volume: str  # quote currency
    day: DayStats  # the rest of the day's figures, for the venue that sends more


class Simulator:
    """One simulated exchange world, served by both venues.

    Simulated time runs ``speed`` times faster than ``clock`` (seconds, monotonic) from
    ``origin_ms``. Tests pass their own ``clock`` to freeze or step time.
    """

    def __init__(
        self,
        seed: int,
        pairs: Sequence[Pair],
        speed: float = 1.0,
        origin_ms: int | None = None,
        clock: Clock = time.monotonic,
        latency_s: float = 0.0,
        jitter_s: float = 0.0,
    ) -> None:
        if speed <= 0:
            raise ValueError(f"speed must be positive, got {speed}")
        if not 0 <= latency_s < 60 or not 0 <= jitter_s <= latency_s:
            raise ValueError(
                f"latency must be in [0, 60) s and jitter in [0, latency], got latency "
                f"{latency_s} s, jitter {jitter_s} s"
            )
        self.seed = seed
        self.speed = speed
        self.origin_ms = int(time.time() * 1000) if origin_ms is None else origin_ms
        self._clock = clock
        self._clock_zero = clock()
        self.model = MarketModel(seed, pairs, self.origin_ms)
        self.faults = FaultRegistry(seed)
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "warmfleet_sim_requests",
            "Requests the simulator answered, by venue, endpoint and HTTP status.",
            ["venue", "endpoint", "status"],
            registry=self.registry,
        )
        self.faults_fired = Counter(
            "warmfleet_sim_faults_fired",
            "Injected faults, by kind.",
            ["kind"],
            registry=self.registry,
        )
        self.volatile = Gauge(
            "warmfleet_sim_volatile_regime",
            "1 while the simulated market is in its volatile regime.",
            registry=self.registry,
        )
        self.volatile.set_function(lambda: float(self.model.regime(self.now_ms()) == "volatile"))
        self.total_requests = 0
        self.latency_s = latency_s
        self.jitter_s = jitter_s
        # its own stream: drawing delays must not shift the seeded faults or the market
        self._delays = random.Random(seed ^ 0x5EED)

    def response_delay(self) -> float:
        """Seconds to hold the next venue request: ``latency`` ± up to ``jitter``, uniform
        (the origin's cost of a miss; 0 unless ``--latency`` is given)."""
        if self.jitter_s == 0:
            return self.latency_s
        return self.latency_s + self._delays.uniform(-self.jitter_s, self.jitter_s)

    def now_ms(self) -> int:
        """The simulated time now."""
        return self.origin_ms + int((self._clock() - self._clock_zero) * self.speed * 1000)

    def market_now(self, path: str) -> int:
        """The simulated time the market data for ``path`` reflects (frozen by ``stale``)."""
        frozen = self.faults.frozen_at(path)
        return self.now_ms() if frozen is None else frozen

    def quote(self, pair: Pair, now_ms: int) -> Quote:
        """``pair``'s ticker figures at ``now_ms``: the day so far and the top of the book."""
        day = self.model.day_stats(pair.symbol, now_ms)
        top = self.model.book(pair.symbol, now_ms, 1)
        dp, adp = pair.price_decimals, pair.amount_decimals
        bid = top.bids[0] if top.bids else (0.0, 0.0)
        ask = top.asks[0]
        return Quote(
            last=fmt(day.last, dp), last_qty=fmt(pair.step_size * 3, adp),
            bid=fmt(bid[0], dp), bid_qty=fmt(bid[1], adp),
            ask=fmt(ask[0], dp), ask_qty=fmt(ask[1], adp),
            open=fmt(day.open, dp), high=fmt(day.high, dp), low=fmt(day.low, dp),
            volume=fmt(day.volume, adp), quote_volume=fmt(day.quote_volume, 8), day=day,
        )  # fmt: skip

    def warm_up(self) -> None:
        """Generate every pair's path up to now, so the first request is not the slow one."""
        now = self.now_ms()
        for pair in self.model.pairs:
            self.model.day_stats(pair.symbol, now)


SIM = web.AppKey("simulator", Simulator)
