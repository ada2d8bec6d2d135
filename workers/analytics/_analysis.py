"""The per-symbol analysis record: ticker state + candle state + signals, combined."""

from __future__ import annotations

from typing import Any

from workers.analytics._candles import CandleState
from workers.analytics._overview import OverviewRow
from workers.analytics._signals import signals
from workers.analytics._ticker import TickerState


def symbol_analysis(
    ticks: TickerState | None, candles: CandleState | None, *, computed_ms: int
) -> dict[str, Any]:
    """The ``SymbolAnalysis`` fields; at least one of the two states must be present.

    ``as_of_ms`` is the newer of the two states' exchange times; ``observations`` counts
    the distinct tickers folded in (the candle windows are counted in the candle state).
    """
    if ticks is None and candles is None:
        raise ValueError("symbol_analysis needs a ticker state or a candle state")
    base = ticks if ticks is not None else candles
    assert base is not None
    return {
        "exchange": base.exchange,
        "symbol": base.symbol,
        "last": ticks.last if ticks is not None else candles.close,  # type: ignore[union-attr]
        "volatility": ticks.volatility if ticks is not None else 0.0,
        "vwap": ticks.vwap if ticks is not None else None,
        "spread_bps": ticks.spread_bps if ticks is not None else None,
        "change_pct": ticks.change_pct if ticks is not None else None,
        "momentum": ticks.momentum if ticks is not None and ticks.returns else None,
        "rsi": candles.rsi if candles is not None else None,
        "ema_fast": candles.ema_fast if candles is not None else None,
        "ema_slow": candles.ema_slow if candles is not None else None,
        "atr": candles.atr if candles is not None else None,
        "signals": signals(ticks, candles),
        "observations": ticks.observations if ticks is not None else 0,
        "as_of_ms": max(
            ticks.as_of_ms if ticks is not None else 0,
            candles.as_of_ms if candles is not None else 0,
        ),
        "computed_ms": computed_ms,
    }


def overview_row(ticks: TickerState) -> OverviewRow:
    return OverviewRow(
        exchange=ticks.exchange,
        symbol=ticks.symbol,
        last=ticks.last,
        change_pct=ticks.change_pct,
        quote_volume=ticks.quote_volume,
        spread_bps=ticks.spread_bps,
        volatility=ticks.volatility,
        returns=ticks.returns,
        as_of_ms=ticks.as_of_ms,
    )
