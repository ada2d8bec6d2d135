"""Contracts shared by every warmfleet package: records, the topic catalog, cache keys.

Imports nothing of ours.
"""

from __future__ import annotations

from topics._datatypes import POLLED, DataType
from topics._keys import (
    KEY_PREFIX,
    KEY_SPECS,
    KEY_VERSION,
    MAX_KEY_BYTES,
    KeySpec,
    build_key,
    data_type_of,
    key_for,
    validate_key,
)
from topics.catalog import (
    ANALYSIS_OVERVIEW,
    ANALYSIS_SYMBOLS,
    CATALOG,
    CONTROL_CLOCK,
    CONTROL_PHASE,
    DEAD_LETTER,
    MARKET_BOOKS,
    MARKET_OHLCV,
    MARKET_TICKERS,
    WARM_JOBS,
    TopicSpec,
    symbol_key,
    topic_config,
)
from topics.errors import ConfigError, WarmfleetError

__all__ = [
    "ANALYSIS_OVERVIEW",
    "ANALYSIS_SYMBOLS",
    "CATALOG",
    "CONTROL_CLOCK",
    "CONTROL_PHASE",
    "DEAD_LETTER",
    "KEY_PREFIX",
    "KEY_SPECS",
    "KEY_VERSION",
    "MARKET_BOOKS",
    "MARKET_OHLCV",
    "MARKET_TICKERS",
    "MAX_KEY_BYTES",
    "POLLED",
    "WARM_JOBS",
    "ConfigError",
    "DataType",
    "KeySpec",
    "TopicSpec",
    "WarmfleetError",
    "build_key",
    "data_type_of",
    "key_for",
    "symbol_key",
    "topic_config",
    "validate_key",
]
