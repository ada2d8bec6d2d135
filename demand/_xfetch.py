"""XFetch: optimal probabilistic early expiration (Vattani, Chierichetti, Lowenstein, VLDB
2015). A read refreshes early when ``now - delta * beta * ln(U) >= expiry`` (U uniform in
(0, 1], delta the recomputation time): rarely while the copy is young, almost surely in its
last delta, so a key read steadily is refreshed before it expires, by about one reader.
Pure: the clock and the random draw are parameters."""

from __future__ import annotations

import math
import random
from collections.abc import Callable


def xfetch_fires(now_s: float, expiry_s: float, delta_s: float, beta: float, u: float) -> bool:
    """True when this read should refresh the copy (``u`` uniform in (0, 1])."""
    if u <= 0.0:
        return True
    return now_s - delta_s * beta * math.log(u) >= expiry_s


class Deltas:
    """delta per (exchange, data type), from measured demand -> write times: an exponentially
    weighted mean plus two weighted mean deviations (a new figure weighs ``alpha``), so a
    refresh that sometimes takes longer than usual still lands in time; ``default_s`` until
    the first figure."""

    def __init__(self, default_s: float, alpha: float = 0.2) -> None:
        self.default_s, self.alpha = default_s, alpha
        self._by: dict[tuple[str, str], tuple[float, float]] = {}  # mean, deviation

    def get(self, exchange: str, data_type: str) -> float:
        found = self._by.get((exchange, data_type))
        return self.default_s if found is None else found[0] + 2.0 * found[1]

    def observe(self, exchange: str, data_type: str, seconds: float) -> None:
        if not seconds >= 0 or math.isinf(seconds):
            return
        key = (exchange, data_type)
        old = self._by.get(key)
        if old is None:
            self._by[key] = (seconds, seconds / 2)
            return
        mean, dev = old
        a = self.alpha
        self._by[key] = (mean + a * (seconds - mean), dev + a * (abs(seconds - mean) - dev))


class EarlyRefresh:
    """Decides, per read, whether XFetch fires for a copy fresh until ``fresh_until_s``."""

    def __init__(self, deltas: Deltas, beta: float, draw: Callable[[], float] = random.random):
        self.deltas, self.beta = deltas, beta
        self._draw = draw

    def due(self, exchange: str, data_type: str, fresh_until_s: float, now_s: float) -> bool:
        delta = self.deltas.get(exchange, data_type)
        left = fresh_until_s - now_s
        if left > delta * self.beta * 40:  # exp(-40): never in practice, and no log to compute
            return False
        return xfetch_fires(now_s, fresh_until_s, delta, self.beta, 1.0 - self._draw())
