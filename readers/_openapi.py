"""The reader's OpenAPI 3.1 description, served at ``/openapi.json``.

As strict as the reader: every pattern and bound here is the one ``readers._routes``
enforces (a schema-valid request is never a 400, a schema-invalid one always a 4xx), and
every status and header the reader answers is listed. tests/readers/test_reader_schema.py
holds the two together with schemathesis.
"""

from __future__ import annotations

from typing import Any

from readers._routes import (
    EXCHANGE_PATTERN,
    KEY_PATTERN,
    MAX_AGE_LIMIT_S,
    SYMBOL_PATTERN,
)
from topics import KEY_PREFIX

_EXCHANGE = {
    "name": "exchange",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": EXCHANGE_PATTERN},
    "description": "exchange id, case-insensitive (binance, okx ...)",
    "example": "binance",
}
_SYMBOL = {
    "name": "symbol",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": SYMBOL_PATTERN},
    "description": "BASE/QUOTE, BASE-QUOTE or BASE_QUOTE, ASCII letters and digits",
    "example": "BTC-USDT",
}
_KEY = {
    "name": "key",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": KEY_PATTERN},
    "description": "a cache key: printable ASCII, no whitespace, at most 250 bytes",
    "example": f"{KEY_PREFIX}:v2:market:overview:1m:all",
}
_MAX_AGE = {
    "name": "max_age",
    "in": "query",
    "required": False,
    "schema": {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_AGE_LIMIT_S},
    "description": "refuse (404 stale) data older than this many seconds",
}

_WARM = {
    "type": "object",
    "required": ["key", "value", "as_of", "age_ms", "tier"],
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
    "Cache-Control": {"required": True, **_STRING, "description": "public, max-age=<s left>"},
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
            "parameters": [*params, _MAX_AGE],
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
