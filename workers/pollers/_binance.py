"""Binance: what differs from the other venues (ccxt options, REST URLs for the simulator)."""

from __future__ import annotations

from typing import Any

import ccxt.async_support as ccxt_async

ID = "binance"
_HOST = "https://api.binance.com"


def options() -> dict[str, Any]:
    # spot only; loading markets is one request (no currencies, no margin pairs)
    return {"defaultType": "spot", "fetchMarkets": {"types": ["spot"]},
            "fetchCurrencies": False, "fetchMargins": False}  # fmt: skip


def urls(base: str) -> dict[str, Any]:
    """Every spot REST URL of ccxt's binance pointed at ``base`` (paths kept)."""
    defaults = ccxt_async.binance().describe()["urls"]["api"]
    return {"api": {k: base + v[len(_HOST):] for k, v in defaults.items()
                    if isinstance(v, str) and v.startswith(_HOST)}}  # fmt: skip
