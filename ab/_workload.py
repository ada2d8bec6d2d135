"""What the experiment reads: Zipf over the simulator's symbols x data types, and which arm
each read goes to (a seeded split, or shadow)."""

from __future__ import annotations

import bisect
import itertools
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass

from topics import KEY_SPECS, DataType, key_for

#: the data types a reader asks for; ``analysis`` is the per-symbol analysis document the
#: agents write under the ``volatility`` key (what ``/v2/analysis`` serves first)
DATA_TYPES = ("tickers", "analysis", "overview")
EXCHANGES = ("binance", "okx")
_KEY_TYPE = {"tickers": DataType.TICKERS, "analysis": DataType.VOLATILITY,
             "overview": DataType.OVERVIEW}  # fmt: skip
_HINT = re.compile(r"^(\d+)([smh])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600}


def freshness_s(data_type: str) -> float:
    """The data type's freshness class in seconds: its key's ``ttl_hint`` (15s, 1m ...)."""
    hint = KEY_SPECS[_KEY_TYPE[data_type]].ttl_hint
    match = _HINT.match(hint)
    if match is None:
        raise ValueError(f"ttl_hint {hint!r} of {data_type} is not a duration like 15s or 1m")
    return float(int(match.group(1)) * _UNIT_S[match.group(2)])


@dataclass(frozen=True, slots=True)
class Item:
    """One thing a reader reads: a ticker or analysis of (exchange, symbol), or an overview
    of ``exchange`` (an exchange id or ``all``)."""

    data_type: str
    exchange: str
    symbol: str = ""

    def key(self, prefix: str) -> str:
        ids = (self.exchange,) if self.data_type == "overview" else (self.exchange, self.symbol)
        return key_for(_KEY_TYPE[self.data_type], *ids, prefix=prefix)

    @property
    def label(self) -> str:
        return f"{self.data_type}:{self.exchange}" + (f":{self.symbol}" if self.symbol else "")


def universe(symbols: Sequence[str]) -> list[Item]:
    """Every item, hottest first: the overviews, then per symbol (in the simulator's order,
    BTC/USDT first) its tickers and analysis on each exchange."""
    if not symbols:
        raise ValueError("the workload needs at least one symbol")
    items = [Item("overview", scope) for scope in ("all", *EXCHANGES)]
    for symbol, data_type, exchange in itertools.product(
        symbols, ("tickers", "analysis"), EXCHANGES
    ):
        items.append(Item(data_type, exchange, symbol))
    return items


class Zipf:
    """Draws items with probability proportional to ``1 / rank**s`` (rank 1 = hottest)."""

    def __init__(self, items: Sequence[Item], s: float) -> None:
        if not items:
            raise ValueError("Zipf needs at least one item")
        if not s >= 0 or s != s or s == float("inf"):
            raise ValueError(f"Zipf exponent must be a finite number >= 0, got {s}")
        self.items = list(items)
        self.s = s
        self._cum = list(itertools.accumulate(1.0 / (r + 1) ** s for r in range(len(items))))

    def draw(self, rng: random.Random) -> Item:
        at = rng.random() * self._cum[-1]
        return self.items[min(bisect.bisect_right(self._cum, at), len(self.items) - 1)]

    def share(self, index: int) -> float:
        """Probability of the item at ``index`` (for the report)."""
        before = self._cum[index - 1] if index else 0.0
        return float((self._cum[index] - before) / self._cum[-1])


@dataclass(frozen=True, slots=True)
class Assignment:
    """``split``: each read goes to ``multitier`` with this probability, else to
    ``direct``. ``shadow``: every read is served by ``direct`` and run on ``multitier`` in
    the shadow (recorded, never served)."""

    split: float = 0.5
    shadow: bool = False

    def __post_init__(self) -> None:
        if not 0.0 < self.split < 1.0 and not self.shadow:
            raise ValueError(f"split must be strictly between 0 and 1, got {self.split}")

    def arm(self, rng: random.Random) -> str:
        """The arm that serves the next read (draws from ``rng`` even in shadow mode, so a
        run's item sequence does not depend on the mode)."""
        pick = rng.random()
        if self.shadow:
            return "direct"
        return "multitier" if pick < self.split else "direct"

    @property
    def mode(self) -> str:
        return "shadow" if self.shadow else f"split {self.split:g}"
