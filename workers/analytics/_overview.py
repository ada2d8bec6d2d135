"""The market overview of a set of symbols (one exchange, or ``all``).

=======================  ===========================================================
``advancers``            symbols whose 24 h change is > 0
``decliners``            ... < 0
``unchanged``            ... exactly 0, or not known
``top_gainers``          the ``top_n`` largest positive changes (ties: exchange, symbol)
``top_losers``           the ``top_n`` largest negative changes
``total_quote_volume``   sum of the 24 h quote volume of USD-quoted markets (USDT, USDC,
                         USD, ...): one currency, so the sum means something
``median_spread_bps``    median bid/ask spread of the symbols that have one
``volatility_index``     median EWMA volatility (per observation) of the symbols with at
                         least one return, each capped at ``MAX_SYMBOL_VOLATILITY``; 0.0
                         when none has. It feeds the clock's boost: a median, so that one
                         symbol, however wild, can never retune the whole fleet
``as_of_ms``             the newest ``as_of_ms`` among the symbols
=======================  ===========================================================
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from workers.analytics._table import TableValue

TOP_N = 5
ALL = "all"
#: no real market moves 100 % per observation: a larger figure counts as this much
MAX_SYMBOL_VOLATILITY = 1.0
USD_QUOTES = frozenset({"USD", "USDT", "USDC", "BUSD", "FDUSD", "TUSD", "DAI", "USDP"})


@dataclass(frozen=True, slots=True)
class OverviewRow(TableValue):
    """One symbol's contribution to the overview."""

    exchange: str
    symbol: str
    last: float
    change_pct: float | None
    quote_volume: float | None
    spread_bps: float | None
    volatility: float
    returns: int
    as_of_ms: int


def quote_of(symbol: str) -> str:
    """``BTC/USDT`` -> ``USDT``; ``BTC/USDT:USDT`` (a swap) -> ``USDT``."""
    return symbol.partition("/")[2].partition(":")[0]


def _mover(row: OverviewRow) -> dict[str, Any]:
    return {
        "exchange": row.exchange,
        "symbol": row.symbol,
        "change_pct": row.change_pct,
        "last": row.last,
    }


def market_overview(
    scope: str, rows: Sequence[OverviewRow], *, computed_ms: int, top_n: int = TOP_N
) -> dict[str, Any]:
    """The ``MarketOverview`` fields for ``rows`` (already restricted to ``scope``)."""
    changed = [r for r in rows if r.change_pct is not None]
    gainers = sorted(
        (r for r in changed if r.change_pct is not None and r.change_pct > 0),
        key=lambda r: (-(r.change_pct or 0.0), r.exchange, r.symbol),
    )
    losers = sorted(
        (r for r in changed if r.change_pct is not None and r.change_pct < 0),
        key=lambda r: (r.change_pct or 0.0, r.exchange, r.symbol),
    )
    spreads = [r.spread_bps for r in rows if r.spread_bps is not None]
    vols = [min(r.volatility, MAX_SYMBOL_VOLATILITY) for r in rows if r.returns > 0]
    return {
        "scope": scope,
        "symbols": len(rows),
        "advancers": len(gainers),
        "decliners": len(losers),
        "unchanged": len(rows) - len(gainers) - len(losers),
        "top_gainers": [_mover(r) for r in gainers[:top_n]],
        "top_losers": [_mover(r) for r in losers[:top_n]],
        "total_quote_volume": sum(
            r.quote_volume
            for r in rows
            if r.quote_volume is not None and quote_of(r.symbol) in USD_QUOTES
        ),
        "median_spread_bps": statistics.median(spreads) if spreads else None,
        "volatility_index": statistics.median(vols) if vols else 0.0,
        "as_of_ms": max((r.as_of_ms for r in rows), default=0),
        "computed_ms": computed_ms,
    }


def overviews(
    rows: Iterable[OverviewRow], *, computed_ms: int, top_n: int = TOP_N
) -> dict[str, dict[str, Any]]:
    """One overview per exchange present in ``rows`` plus ``all`` (always present)."""
    every = list(rows)
    by_exchange: dict[str, list[OverviewRow]] = {}
    for row in every:
        by_exchange.setdefault(row.exchange, []).append(row)
    out = {
        exchange: market_overview(exchange, members, computed_ms=computed_ms, top_n=top_n)
        for exchange, members in sorted(by_exchange.items())
    }
    out[ALL] = market_overview(ALL, every, computed_ms=computed_ms, top_n=top_n)
    return out
