"""Contracts shared by every warmfleet package: records, the topic catalog, cache keys
(and, in ``topics.kafka``, the Kafka topic and producer helpers).

Imports nothing of ours.
"""

from __future__ import annotations

from topics._ccxt import Rejection, book_record, candles_record, ticker_record
from topics._contract import DEFAULT_LIMITS, EPOCH_FLOOR_MS, InvalidRecord, Limits
from topics._control import phase_change_fields
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
from topics._market import (
    BOOK_FIELDS,
    CANDLES_FIELDS,
    TICKER_FIELDS,
    book_fields,
    candles_fields,
    decode,
    ticker_fields,
    timeframe_ms,
)
from topics._net import check_url, redact, server_list, split_host_port
from topics._time import now_ms
from topics._wire import namespace_of, record_bytes
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
from topics.errors import BrokerUnavailable, ConfigError, WarmfleetError

__all__ = [
    "ANALYSIS_OVERVIEW",
    "ANALYSIS_SYMBOLS",
    "BOOK_FIELDS",
    "CANDLES_FIELDS",
    "CATALOG",
    "CONTROL_CLOCK",
    "CONTROL_PHASE",
    "DEAD_LETTER",
    "DEFAULT_LIMITS",
    "EPOCH_FLOOR_MS",
    "KEY_PREFIX",
    "KEY_SPECS",
    "KEY_VERSION",
    "MARKET_BOOKS",
    "MARKET_OHLCV",
    "MARKET_TICKERS",
    "MAX_KEY_BYTES",
    "POLLED",
    "TICKER_FIELDS",
    "WARM_JOBS",
    "BrokerUnavailable",
    "ConfigError",
    "DataType",
    "InvalidRecord",
    "KeySpec",
    "Limits",
    "Rejection",
    "TopicSpec",
    "WarmfleetError",
    "book_fields",
    "book_record",
    "build_key",
    "candles_fields",
    "candles_record",
    "check_url",
    "data_type_of",
    "decode",
    "key_for",
    "namespace_of",
    "now_ms",
    "phase_change_fields",
    "record_bytes",
    "redact",
    "server_list",
    "split_host_port",
    "symbol_key",
    "ticker_fields",
    "ticker_record",
    "timeframe_ms",
    "topic_config",
    "validate_key",
]
