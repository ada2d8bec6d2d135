"""The reader's OpenAPI 3.1 description, served at ``/openapi.json``."""

from __future__ import annotations

from typing import Any

_EXCHANGE = {
    "name": "exchange",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": "^[a-z][a-z0-9_]{1,31}$"},
    "example": "binance",
}
_SYMBOL = {
    "name": "symbol",
    "in": "path",
    "required": True,
    "schema": {"type": "string"},
    "description": "BASE/QUOTE, BASE-QUOTE or BASE_QUOTE",
    "example": "BTC-USDT",
}
_MAX_AGE = {
    "name": "max_age",
    "in": "query",
    "required": False,
    "schema": {"type": "number", "exclusiveMinimum": 0},
    "description": "refuse (404 stale) data older than this many seconds",
}

_WARM = {
    "type": "object",
    "required": ["key", "value", "as_of", "age_ms", "tier"],
    "properties": {
        "key": {"type": "string", "example": "virt:v2:market:ticker:15s:binance:BTC/USDT"},
        "value": {
            "description": "the cached document (a Ticker, SymbolAnalysis, MarketOverview ...)"
        },
        "as_of": {"type": "integer", "description": "exchange timestamp of the data, ms"},
        "age_ms": {"type": "integer", "description": "now - as_of, ms"},
        "tier": {"type": "string", "enum": ["memory", "memcached", "redis"]},
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


def _warm_op(summary: str, params: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "get": {
            "summary": summary,
            "parameters": [*params, _MAX_AGE],
            "responses": {
                "200": {
                    "description": "warm data; headers ETag and Cache-Control",
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Warm"}}
                    },
                },
                "304": {"description": "If-None-Match matched the ETag"},
                "400": {"description": "malformed parameter", "content": _error_content()},
                "404": {
                    "description": "cold, unknown or older than max_age",
                    "content": _error_content(),
                },
            },
        }
    }


def _error_content() -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}


def openapi_document() -> dict[str, Any]:
    plain = {
        "get": {"responses": {"200": {"description": "OK"}, "503": {"description": "not ready"}}}
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "warmfleet reader", "version": "2"},
        "paths": {
            "/v2/tickers/{exchange}/{symbol}": _warm_op("latest ticker", [_EXCHANGE, _SYMBOL]),
            "/v2/overview": _warm_op("market overview across all exchanges", []),
            "/v2/overview/{exchange}": _warm_op("market overview of one exchange", [_EXCHANGE]),
            "/v2/analysis/{exchange}/{symbol}": _warm_op(
                "per-symbol analysis (volatility, VWAP, spread, RSI ...) and signals",
                [_EXCHANGE, _SYMBOL],
            ),
            "/v2/keys/{key}": _warm_op(
                "any cache key, raw (debugging)",
                [{"name": "key", "in": "path", "required": True, "schema": {"type": "string"}}],
            ),
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics",
                    "responses": {"200": {"description": "OK"}},
                }
            },
            "/healthz": plain,
            "/readyz": plain,
        },
        "components": {"schemas": {"Warm": _WARM, "Error": _ERROR}},
    }
