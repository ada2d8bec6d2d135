"""A local exchange simulator: Binance spot (``/api/v3``) and OKX v5 (``/api/v5``) public
market data over one seeded market, with fault injection, so the real ccxt library can be
run against it. Imports nothing of ours.
"""

from __future__ import annotations

from sim._faults import KINDS, Fault, FaultError, FaultRegistry, make_fault
from sim._market import DEFAULT_SYMBOLS, MarketModel, Pair, default_pairs
from sim._server import DEFAULT_PORT, RunningSimulator, create_app, running_simulator
from sim._state import Simulator

__all__ = [
    "DEFAULT_PORT",
    "DEFAULT_SYMBOLS",
    "KINDS",
    "Fault",
    "FaultError",
    "FaultRegistry",
    "MarketModel",
    "Pair",
    "RunningSimulator",
    "Simulator",
    "create_app",
    "default_pairs",
    "make_fault",
    "running_simulator",
]
