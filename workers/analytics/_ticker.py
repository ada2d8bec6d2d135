"""Per-symbol analytics from tickers: log returns, EWMA volatility, momentum, VWAP, spread.

Pure: the previous state and the new observation go in, the new state comes out. The
agent decides which observations count (``as_of_ms`` strictly newer than the state's).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

from workers.analytics._table import TableValue

#: RiskMetrics decay for the EWMA variance of log returns (per observation)
VOL_LAMBDA = 0.94
#: momentum is the EWMA of log returns with this span (alpha = 2 / (span + 1))
MOMENTUM_SPAN = 10
MOMENTUM_ALPHA = 2.0 / (MOMENTUM_SPAN + 1)
#: a move larger than this many standard deviations of the previous volatility is a breakout
BREAKOUT_SIGMAS = 3.0
#: returns needed before volatility, momentum and breakouts are trusted by signals
WARMUP_RETURNS = 10


class TickerView(NamedTuple):
    """The validated fields of one ``Ticker`` the analytics use. A named tuple: as immutable
    as a frozen dataclass, and built per event in a fifth of the time."""

    exchange: str
    symbol: str
    last: float
    bid: float | None
    ask: float | None
    open: float | None
    base_volume: float | None
    quote_volume: float | None
    change_pct: float | None
    as_of_ms: int


@dataclass(slots=True)
class TickerState(TableValue):
    """What the fleet remembers per symbol between tickers (a table value). Treated as
    immutable (``observe_ticker`` returns a new one) but not ``frozen``: a frozen
    dataclass's ``__init__`` sets each field through ``object.__setattr__``, eight times
    the cost of a plain one, and the agents build one per event."""

    exchange: str
    symbol: str
    last: float
    as_of_ms: int
    variance: float  # EWMA of squared log returns
    momentum: float  # EWMA of log returns
    last_return: float | None
    breakout: bool  # the last return exceeded BREAKOUT_SIGMAS x the previous volatility
    returns: int  # log returns seen (observations - 1)
    observations: int  # distinct tickers folded into this state
    vwap: float | None
    spread_bps: float | None
    change_pct: float | None
    quote_volume: float | None

    @property
    def volatility(self) -> float:
        """EWMA standard deviation of log returns, per observation (0.01 = 1 %)."""
        return math.sqrt(self.variance)


def log_return(previous: float, last: float) -> float:
    return math.log(last / previous)


def ewma(previous: float, value: float, alpha: float) -> float:
    return alpha * value + (1.0 - alpha) * previous


def ewma_variance(previous: float, ret: float, lam: float = VOL_LAMBDA) -> float:
    """RiskMetrics: ``var_t = lam * var_{t-1} + (1 - lam) * r_t**2``."""
    return lam * previous + (1.0 - lam) * ret * ret


def spread_bps(bid: float | None, ask: float | None) -> float | None:
    """``(ask - bid) / mid`` in basis points; None without both sides or for a crossed quote."""
    if bid is None or ask is None or bid <= 0 or ask < bid:
        return None
    return (ask - bid) / ((ask + bid) / 2.0) * 10_000.0


def vwap(base_volume: float | None, quote_volume: float | None) -> float | None:
    """The exchange's 24 h volume-weighted average price: quote volume / base volume."""
    if not base_volume or not quote_volume or base_volume <= 0 or quote_volume <= 0:
        return None
    return quote_volume / base_volume


def change_pct(last: float, open_: float | None, reported: float | None) -> float | None:
    """24 h change in percent: the exchange's figure, else from the 24 h open."""
    if reported is not None:
        return reported
    if open_ is None or open_ <= 0:
        return None
    return (last / open_ - 1.0) * 100.0


def observe_ticker(state: TickerState | None, tick: TickerView) -> TickerState:
    """Fold one ticker into the symbol's state (the first ticker starts it)."""
    variance, momentum, ret, breakout, returns = 0.0, 0.0, None, False, 0
    if state is not None:
        ret = log_return(state.last, tick.last)
        warmed = state.returns >= WARMUP_RETURNS
        breakout = warmed and abs(ret) > BREAKOUT_SIGMAS * math.sqrt(state.variance)
        variance = ewma_variance(state.variance, ret)
        momentum = ewma(state.momentum, ret, MOMENTUM_ALPHA)
        returns = state.returns + 1
    # positional, in the fields' order: with keywords, building it takes 2.5x as long
    return TickerState(
        tick.exchange,
        tick.symbol,
        tick.last,
        tick.as_of_ms,
        variance,
        momentum,
        ret,
        breakout,
        returns,
        (state.observations if state is not None else 0) + 1,
        vwap(tick.base_volume, tick.quote_volume),
        spread_bps(tick.bid, tick.ask),
        change_pct(tick.last, tick.open, tick.change_pct),
        tick.quote_volume,
    )
