"""The reader's OpenAPI 3.1 description, served at ``/openapi.json``.

As strict as the reader: every pattern and bound here is the one ``readers._routes``
enforces (a schema-valid request is never a 400, a schema-invalid one always a 4xx), and
every status and header the reader answers is listed. tests/readers/test_reader_schema.py
holds the two together with schemathesis.
"""

from __future__ import annotations

from typing import Any

from readers._freshness import CACHE_CONTROL_PATTERN
from readers._routes import (
    DEFAULT_CANDLES,
    EXCHANGE_PATTERN,
    KEY_PATTERN,
    MAX_AGE_LIMIT_S,
    MAX_CANDLES,
    SYMBOL_PATTERN,
    TIMEFRAME_PATTERN,
)
from topics import KEY_PREFIX


def _param(name: str, where: str, schema: dict[str, Any], description: str, **more: Any) -> Any:
    return {
        "name": name,
        "in": where,
        "required": where == "path",
        "schema": schema,
        "description": description,
        **more,
    }


def _string(pattern: str, **more: Any) -> dict[str, Any]:
    return {"type": "string", "pattern": pattern, **more}


_PARAMS = {
    name: _param(name, where, schema, description, **more)
    for name, where, schema, description, more in (
        ("exchange", "path", _string(EXCHANGE_PATTERN),
         "exchange id, case-insensitive (binance, okx ...)", {"example": "binance"}),
        ("symbol", "path", _string(SYMBOL_PATTERN),
         "BASE/QUOTE, BASE-QUOTE or BASE_QUOTE, ASCII letters and digits",
         {"example": "BTC-USDT"}),
        ("key", "path", _string(KEY_PATTERN),
         "a cache key: printable ASCII, no whitespace, at most 250 bytes",
         {"example": f"{KEY_PREFIX}:v2:market:overview:1m:all"}),
        ("max_age", "query",
         {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_AGE_LIMIT_S},
         "refuse (404 stale) data older than this many seconds", {}),
        ("Cache-Control", "header", _string(CACHE_CONTROL_PATTERN),
         "max-age=N refuses data older than N s (with ?max_age the smaller wins; 0 = no "
         "limit); max-stale[=N] also accepts a copy up to N s (any, without N) past its fresh "
         "TTL", {"example": "max-age=30, max-stale=600"}),
        ("timeframe", "query", _string(TIMEFRAME_PATTERN, default="1m"),
         "candle timeframe as ccxt spells it (1m, 5m, 1h, 1d, 1w, 1M)", {}),
        ("limit", "query",
         {"type": "integer", "minimum": 1, "maximum": MAX_CANDLES, "default": DEFAULT_CANDLES},
         "how many of the latest candles to answer", {}),
    )
}  # fmt: skip
_EXCHANGE, _SYMBOL, _KEY = _PARAMS["exchange"], _PARAMS["symbol"], _PARAMS["key"]
_MAX_AGE, _CACHE_CONTROL = _PARAMS["max_age"], _PARAMS["Cache-Control"]
_TIMEFRAME, _LIMIT = _PARAMS["timeframe"], _PARAMS["limit"]

_WARM = {
    "type": "object",
    "required": ["key", "value", "as_of", "age_ms", "tier", "stale"],
    "properties": {
        "key": {
            "type": "string",
            "example": f"{KEY_PREFIX}:v2:market:ticker:15s:binance:BTC/USDT",
        },
        "value": {
            "description": "the cached document (a Ticker, SymbolAnalysis, MarketOverview ...)"
        },
        "as_of": {"type": "integer", "description": "exchange timestamp of the data, ms"},
        "age_ms": {"type": "integer", "description": "now - as_of, ms"},
        "tier": {"type": "string", "enum": ["memory", "memcached", "redis"]},
        "stale": {
            "type": "boolean",
            "description": "true for a copy past its fresh TTL: accepted with max-stale, or "
            "served because its exchange is failing (stale-if-error)",
        },
        "signals": {"description": "analysis route only: the symbol's signals, or null"},
    },
}
_ERROR = {
    "type": "object",
    "required": ["error", "detail"],
    "properties": {
        "error": {"type": "string"},
        "detail": {"type": "string"},
        "key": {"type": "string"},
        "age_ms": {"type": "integer"},
    },
}
_STRING = {"schema": {"type": "string"}}
_WARM_HEADERS = {
    "ETag": {"required": True, **_STRING, "description": "the as_of, hex, quoted"},
    "Cache-Control": {
        "required": True,
        **_STRING,
        "description": "public, max-age=<freshness class s>, stale-while-revalidate=<stale "
        "window s>, stale-if-error=<stale window s>",
    },
    "Age": {
        "required": True,
        "schema": {"type": "integer", "minimum": 0},
        "description": "whole seconds since as_of (RFC 9111)",
    },
}


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def _common_errors() -> dict[str, Any]:
    """What any route may answer before its own logic runs."""
    return {
        "405": {
            **_error("the method is not GET or HEAD"),
            "headers": {"Allow": {"required": True, **_STRING}},
        },
        "414": _error("the URL is longer than the reader accepts (8190 bytes)"),
        "431": _error("the request headers are larger than the reader accepts (16 KiB)"),
    }


def _warm_op(summary: str, params: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "get": {
            "summary": summary,
            "parameters": [*params, _MAX_AGE, _CACHE_CONTROL],
            "responses": {
                "200": {
                    "description": "warm data",
                    "headers": _WARM_HEADERS,
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Warm"}}
                    },
                },
                "304": {"description": "If-None-Match matched the ETag", "headers": _WARM_HEADERS},
                "400": _error("malformed parameter"),
                "404": _error("cold, unknown or older than max_age"),
                # the demand path (docs/demand.md): not warmed within its deadline, the
                # exchange's budget spent, or Redis/Kafka unreachable
                "503": {
                    **_error("cold, and not warmed within the demand deadline; retry later"),
                    "headers": {
                        "Retry-After": {
                            "required": True,
                            "schema": {"type": "integer", "minimum": 1},
                            "description": "whole seconds until a retry may find it warm",
                        }
                    },
                },
                **_common_errors(),
            },
        }
    }


def _status_op(summary: str, *, may_fail: bool) -> dict[str, Any]:
    status = {
        "type": "object",
        "required": ["status"],
        "properties": {"status": {"type": "string"}},
    }
    body = {"content": {"application/json": {"schema": status}}}
    responses: dict[str, Any] = {"200": {"description": "OK", **body}, **_common_errors()}
    if may_fail:
        responses["503"] = {"description": "no cache tier answers", **body}
    return {"get": {"summary": summary, "responses": responses}}


def openapi_document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "warmfleet reader", "version": "2"},
        "paths": {
            "/v2/tickers/{exchange}/{symbol}": _warm_op("latest ticker", [_EXCHANGE, _SYMBOL]),
            "/v2/books/{exchange}/{symbol}": _warm_op(
                "order book top: best bid/ask and the levels as polled, best first",
                [_EXCHANGE, _SYMBOL],
            ),
            "/v2/candles/{exchange}/{symbol}": _warm_op(
                "the latest candles of one timeframe, oldest first: "
                "rows of [open_ms, open, high, low, close, volume]",
                [_EXCHANGE, _SYMBOL, _TIMEFRAME, _LIMIT],
            ),
            "/v2/overview": _warm_op("market overview across all exchanges", []),
            "/v2/overview/{exchange}": _warm_op("market overview of one exchange", [_EXCHANGE]),
            "/v2/analysis/{exchange}/{symbol}": _warm_op(
                "per-symbol analysis (volatility, VWAP, spread, RSI ...) and signals",
                [_EXCHANGE, _SYMBOL],
            ),
            "/v2/keys/{key}": _warm_op("any cache key, raw (debugging)", [_KEY]),
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics",
                    "responses": {
                        "200": {"description": "OK", "content": {"text/plain": _STRING}},
                        **_common_errors(),
                    },
                }
            },
            "/healthz": _status_op("the process answers", may_fail=False),
            "/readyz": _status_op("at least one shared cache tier answers", may_fail=True),
        },
        "components": {"schemas": {"Warm": _WARM, "Error": _ERROR}},
    }
