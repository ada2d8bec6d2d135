"""Binance spot REST (``/api/v3``): the model translated into Binance's JSON.

Numbers are strings, as Binance sends them; errors are ``{"code": -1121, "msg": ...}``
with Binance's HTTP status. Facts: ``/work/shared/reference/ccxt-binance.md`` and ccxt's
``binance.py`` (which fields it reads, which requests it makes).
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from sim._market import DAY_MINUTES, MINUTE_MS, Pair
from sim._state import SIM, Simulator, fmt

PREFIX = "/api/v3"
#: Binance kline intervals we can build from 1-minute candles -> minutes
INTERVALS = {"1m": 1, "3m": 3, "5m": 5, "15m": 15, "30m": 30, "1h": 60, "2h": 120,
             "4h": 240, "6h": 360, "8h": 480, "12h": 720, "1d": DAY_MINUTES}  # fmt: skip
MSG_NO_SYMBOL = "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed."
MSG_TOO_MANY = (
    "Too many requests; current limit of IP(127.0.0.1) is 6000 requests per minute. "
    "Please use WebSocket Streams for live updates to avoid polling the API."
)
MSG_BANNED = (
    "Way too many requests; IP(127.0.0.1) banned until {until}. "
    "Please use WebSocket Streams for live updates to avoid bans."
)
HTML_500 = (
    "<html><head><title>500 Internal Server Error</title></head>"
    "<body><center><h1>500 Internal Server Error</h1></center></body></html>"
)
RATE_LIMITS = [
    {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000},
    {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
    {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 61000},
]


class BinanceError(web.HTTPException):
    """An error in Binance's shape: HTTP status plus ``{"code": ..., "msg": ...}``."""

    def __init__(self, status: int, code: int, msg: str) -> None:
        self.status_code = status
        body = json.dumps({"code": code, "msg": msg})
        super().__init__(text=body, content_type="application/json")


def _pair(sim: Simulator, symbol_id: str | None) -> Pair:
    if not symbol_id:
        raise BinanceError(400, -1102, MSG_NO_SYMBOL)
    pair = sim.model.by_binance_id.get(symbol_id.upper())
    if pair is None:
        raise BinanceError(400, -1121, "Invalid symbol.")
    return pair


def _int_param(
    request: web.Request, name: str, default: int | None, low: int, high: int
) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        msg = f"Illegal characters found in parameter '{name}'; legal range is '^[0-9]{{1,20}}$'."
        raise BinanceError(400, -1100, msg) from None
    if not low <= value <= high:
        raise BinanceError(400, -1130, f"Invalid data sent for a parameter: {name}.")
    return value


def _symbol_info(pair: Pair) -> dict[str, Any]:
    dp, adp = pair.price_decimals, pair.amount_decimals
    return {
        "symbol": pair.binance_id,
        "status": "TRADING" if pair.trading else "BREAK",
        "baseAsset": pair.base,
        "baseAssetPrecision": 8,
        "quoteAsset": pair.quote,
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "baseCommissionPrecision": 8,
        "quoteCommissionPrecision": 8,
        "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"],
        "icebergAllowed": True,
        "ocoAllowed": True,
        "quoteOrderQtyMarketAllowed": True,
        "allowTrailingStop": True,
        "cancelReplaceAllowed": True,
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False,
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": fmt(pair.tick_size, dp),
                "maxPrice": fmt(pair.start_price * 1000, dp),
                "tickSize": fmt(pair.tick_size, dp),
            },
            {
                "filterType": "LOT_SIZE",
                "minQty": fmt(pair.step_size, adp),
                "maxQty": "9000000.00000000",
                "stepSize": fmt(pair.step_size, adp),
            },
            {
                "filterType": "NOTIONAL",
                "minNotional": "5.00000000",
                "applyMinToMarket": True,
                "maxNotional": "9000000.00000000",
                "applyMaxToMarket": False,
                "avgPriceMins": 5,
            },
            {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": 200},
        ],
        "permissions": [],
        "permissionSets": [["SPOT"]],
        "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
        "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"],
    }


def _ticker(sim: Simulator, pair: Pair, now_ms: int) -> dict[str, Any]:
    q = sim.quote(pair, now_ms)
    day, dp = q.day, pair.price_decimals
    # no "time" key: ccxt would then take the market for a contract market
    return {
        "symbol": pair.binance_id,
        "priceChange": fmt(day.change, dp),
        "priceChangePercent": fmt(day.change_pct, 3),
        "weightedAvgPrice": fmt(day.vwap, dp),
        "prevClosePrice": q.open,
        "lastPrice": q.last,
        "lastQty": q.last_qty,
        "bidPrice": q.bid,
        "bidQty": q.bid_qty,
        "askPrice": q.ask,
        "askQty": q.ask_qty,
        "openPrice": q.open,
        "highPrice": q.high,
        "lowPrice": q.low,
        "volume": q.volume,
        "quoteVolume": q.quote_volume,
        "openTime": day.open_ms,
        "closeTime": day.close_ms,
        "firstId": 1_000_000,
        "lastId": 1_000_000 + day.trades - 1,
        "count": day.trades,
    }


async def ping(request: web.Request) -> web.Response:
    return web.json_response({})


async def server_time(request: web.Request) -> web.Response:
    return web.json_response({"serverTime": request.app[SIM].now_ms()})


async def exchange_info(request: web.Request) -> web.Response:
    sim: Simulator = request.app[SIM]
    pairs = list(sim.model.pairs)
    if "symbol" in request.query:
        pairs = [_pair(sim, request.query["symbol"])]
    elif "symbols" in request.query:
        pairs = [_pair(sim, s) for s in _symbols_param(request.query["symbols"])]
    return web.json_response({
        "timezone": "UTC",
        "serverTime": sim.now_ms(),
        "rateLimits": RATE_LIMITS,
        "exchangeFilters": [],
        "symbols": [_symbol_info(p) for p in pairs],
    })  # fmt: skip


def _symbols_param(raw: str) -> list[str]:
    try:
        symbols = json.loads(raw)
    except ValueError:
        symbols = None
    if not isinstance(symbols, list) or not all(isinstance(s, str) for s in symbols):
        raise BinanceError(400, -1100, "Illegal characters found in parameter 'symbols'.")
    return symbols


async def ticker_24hr(request: web.Request) -> web.Response:
    sim: Simulator = request.app[SIM]
    now = sim.market_now(request.path)
    if "symbol" in request.query:
        return web.json_response(_ticker(sim, _pair(sim, request.query["symbol"]), now))
    if "symbols" in request.query:
        pairs = [_pair(sim, s) for s in _symbols_param(request.query["symbols"])]
    else:
        pairs = list(sim.model.pairs)
    return web.json_response([_ticker(sim, p, now) for p in pairs])


async def klines(request: web.Request) -> web.Response:
    sim: Simulator = request.app[SIM]
    pair = _pair(sim, request.query.get("symbol"))
    interval = request.query.get("interval")
    if interval not in INTERVALS:
        raise BinanceError(400, -1120, "Invalid interval.")
    limit = _int_param(request, "limit", 500, 1, 1000)
    start = _int_param(request, "startTime", None, 0, 2**53)
    end = _int_param(request, "endTime", None, 0, 2**53)
    now = sim.market_now(request.path)
    dp, adp = pair.price_decimals, pair.amount_decimals
    minutes = INTERVALS[interval]
    rows = [
        [c.open_ms, fmt(c.open, dp), fmt(c.high, dp), fmt(c.low, dp), fmt(c.close, dp),
         fmt(c.volume, adp), c.open_ms + minutes * MINUTE_MS - 1, fmt(c.quote_volume, 8),
         c.trades, fmt(c.volume / 2, adp), fmt(c.quote_volume / 2, 8), "0"]
        for c in sim.model.candles(pair.symbol, now, minutes, limit or 500, start, end)
    ]  # fmt: skip
    return web.json_response(rows)


async def depth(request: web.Request) -> web.Response:
    sim: Simulator = request.app[SIM]
    pair = _pair(sim, request.query.get("symbol"))
    limit = _int_param(request, "limit", 100, 1, 5000) or 100
    book = sim.model.book(pair.symbol, sim.market_now(request.path), limit)
    dp, adp = pair.price_decimals, pair.amount_decimals
    return web.json_response({
        "lastUpdateId": book.update_id,
        "bids": [[fmt(p, dp), fmt(q, adp)] for p, q in book.bids],
        "asks": [[fmt(p, dp), fmt(q, adp)] for p, q in book.asks],
    })  # fmt: skip


def fault_response(kind: str, retry_after_s: int, now_ms: int) -> web.Response:
    """What Binance answers when ``kind`` happens to it."""
    headers = {"Retry-After": str(retry_after_s)}
    if kind == "429":
        body = {"code": -1003, "msg": MSG_TOO_MANY}
        return web.json_response(body, status=429, headers=headers)
    if kind == "418":
        until = now_ms + retry_after_s * 1000
        body = {"code": -1003, "msg": MSG_BANNED.format(until=until)}
        return web.json_response(body, status=418, headers=headers)
    if kind == "500":
        return web.Response(status=500, text=HTML_500, content_type="text/html")
    if kind == "503":
        return web.Response(status=503, text="Service Unavailable", content_type="text/plain")
    raise ValueError(f"no Binance response for fault kind {kind!r}")


def not_found() -> web.Response:
    return web.Response(status=404, text="", content_type="text/html")


def add_routes(app: web.Application) -> None:
    app.router.add_routes(
        web.get(PREFIX + path, handler)
        for path, handler in (
            ("/ping", ping), ("/time", server_time), ("/exchangeInfo", exchange_info),
            ("/ticker/24hr", ticker_24hr), ("/klines", klines), ("/depth", depth),
        )
    )  # fmt: skip
