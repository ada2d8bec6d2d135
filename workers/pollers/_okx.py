"""OKX: what differs from the other venues (ccxt options, REST URL for the simulator)."""

from __future__ import annotations

from typing import Any

ID = "okx"


def options() -> dict[str, Any]:
    return {"defaultType": "spot", "fetchMarkets": {"types": ["spot"]}}


def urls(base: str) -> dict[str, Any]:
    # ccxt's okx builds every REST URL from this one root
    return {"api": {"rest": base}}
