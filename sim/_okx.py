"""OKX v5 public market data (``/api/v5``): the same market, OKX's JSON.

Every answer is ``{"code": "0", "msg": "", "data": [...]}``; errors carry a non-zero
``code`` (``51001`` unknown instrument, ``50011`` rate limit). Candles come newest first.
What ccxt's ``okx.py`` requests: ``load_markets`` -> ``public/instruments?instType=SPOT``
(with ``fetchMarkets.types = ["spot"]``; currencies need an API key, so none are fetched),
``fetch_tickers`` -> ``market/tickers?instType=SPOT``, ``fetch_ohlcv`` ->
``market/candles?instId&bar&limit[&before&after]``, ``fetch_order_book`` ->
``market/books?instId&sz`` (``books-full`` above 400 levels).
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from sim._market import MINUTE_MS, Pair
from sim._state import SIM, Simulator, fmt

PREFIX = "/api/v5"
#: OKX bar -> minutes (``6Hutc`` and up are UTC-aligned; ours all are)
BARS = {"1m": 1, "3m": 3, "5m": 5, "15m": 15, "30m": 30, "1H": 60, "2H": 120, "4H": 240,
        "6H": 360, "6Hutc": 360, "12H": 720, "12Hutc": 720, "1D": 1440, "1Dutc": 1440}  # fmt: skip


MSG_NO_INSTRUMENT = "Instrument ID, Instrument ID code, or Spread ID doesn't exist."
HTML_500 = (
    "<html><head><title>500 Internal Server Error</title></head>"
    "<body><h1>500 Internal Server Error</h1></body></html>"
)


class OkxError(web.HTTPException):
    """An error in OKX's shape."""

    def __init__(self, status: int, code: str, msg: str) -> None:
        self.status_code = status
        body = {"code": code, "msg": msg, "data": []}
        super().__init__(text=json.dumps(body), content_type="application/json")


def _ok(data: list[Any]) -> web.Response:
    return web.json_response({"code": "0", "msg": "", "data": data})


def _pair(sim: Simulator, inst_id: str | None) -> Pair:
    if not inst_id:
        raise OkxError(400, "50014", "Parameter instId can not be empty.")
    pair = sim.model.by_okx_id.get(inst_id)
    if pair is None:
        raise OkxError(400, "51001", MSG_NO_INSTRUMENT)
    return pair


def _inst_type(request: web.Request) -> str:
    inst_type = request.query.get("instType", "")
    if not inst_type:
        raise OkxError(400, "50014", "Parameter instType can not be empty.")
    if inst_type not in ("SPOT", "MARGIN", "SWAP", "FUTURES", "OPTION"):
        raise OkxError(400, "51000", "Parameter instType error.")
    return inst_type


def _int_param(request: web.Request, name: str, default: int | None) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise OkxError(400, "51000", f"Parameter {name} error.") from None


def _instrument(pair: Pair, origin_ms: int) -> dict[str, Any]:
    return {
        "instType": "SPOT", "instId": pair.okx_id, "instFamily": "", "uly": "",
        "baseCcy": pair.base, "quoteCcy": pair.quote, "settleCcy": "", "category": "1",
        "ctVal": "", "ctMult": "", "ctValCcy": "", "ctType": "", "optType": "", "stk": "",
        "alias": "", "expTime": "", "lever": "10", "listTime": str(origin_ms - 86_400_000 * 365),
        "tickSz": fmt(pair.tick_size, pair.price_decimals),
        "lotSz": fmt(pair.step_size, pair.amount_decimals),
        "minSz": fmt(pair.step_size, pair.amount_decimals),
        "maxLmtSz": "9999999999", "maxMktSz": "1000000", "maxTwapSz": "9999999999",
        "maxIcebergSz": "9999999999", "maxTriggerSz": "9999999999", "maxStopSz": "1000000",
        "state": "live" if pair.trading else "suspend", "ruleType": "normal",
    }  # fmt: skip


def _ticker(sim: Simulator, pair: Pair, now_ms: int) -> dict[str, Any]:
    q = sim.quote(pair, now_ms)
    return {
        "instType": "SPOT",
        "instId": pair.okx_id,
        "last": q.last,
        "lastSz": q.last_qty,
        "askPx": q.ask,
        "askSz": q.ask_qty,
        "bidPx": q.bid,
        "bidSz": q.bid_qty,
        "open24h": q.open,
        "high24h": q.high,
        "low24h": q.low,
        "volCcy24h": q.quote_volume,  # spot: quote currency
        "vol24h": q.volume,  # spot: base currency
        "ts": str(now_ms),
        "sodUtc0": q.open,
        "sodUtc8": q.open,
    }


async def server_time(request: web.Request) -> web.Response:
    return _ok([{"ts": str(request.app[SIM].now_ms())}])


async def instruments(request: web.Request) -> web.Response:
    sim: Simulator = request.app[SIM]
    if _inst_type(request) != "SPOT":
        return _ok([])  # this simulator lists spot markets only
    pairs = list(sim.model.pairs)
    if inst_id := request.query.get("instId"):
        pairs = [_pair(sim, inst_id)]
    return _ok([_instrument(p, sim.origin_ms) for p in pairs])


async def tickers(request: web.Request) -> web.Response:
    sim: Simulator = request.app[SIM]
    if _inst_type(request) != "SPOT":
        return _ok([])
    now = sim.market_now(request.path)
    return _ok([_ticker(sim, p, now) for p in sim.model.pairs])


async def ticker(request: web.Request) -> web.Response:
    sim: Simulator = request.app[SIM]
    pair = _pair(sim, request.query.get("instId"))
    return _ok([_ticker(sim, pair, sim.market_now(request.path))])


async def candles(request: web.Request) -> web.Response:
    sim: Simulator = request.app[SIM]
    pair = _pair(sim, request.query.get("instId"))
    bar = request.query.get("bar", "1m")
    if bar not in BARS:
        raise OkxError(400, "51000", "Parameter bar error.")
    limit = max(1, min(_int_param(request, "limit", 100) or 100, 300))
    after = _int_param(request, "after", None)  # records earlier than this ts
    before = _int_param(request, "before", None)  # records newer than this ts
    now = sim.market_now(request.path)
    minutes = BARS[bar]
    rows = sim.model.candles(
        pair.symbol,
        now,
        minutes,
        limit=limit,
        start_ms=None if before is None else before + 1,
        end_ms=None if after is None else after - 1,
    )
    now_bucket = now // (minutes * MINUTE_MS) * minutes * MINUTE_MS
    dp, adp = pair.price_decimals, pair.amount_decimals
    data = [
        [str(c.open_ms), fmt(c.open, dp), fmt(c.high, dp), fmt(c.low, dp), fmt(c.close, dp),
         fmt(c.volume, adp), fmt(c.quote_volume, 8), fmt(c.quote_volume, 8),
         "0" if c.open_ms == now_bucket else "1"]
        for c in reversed(rows)
    ]  # fmt: skip
    return _ok(data)


async def books(request: web.Request) -> web.Response:
    sim: Simulator = request.app[SIM]
    pair = _pair(sim, request.query.get("instId"))
    full = request.path.endswith("books-full")
    size = _int_param(request, "sz", 1) or 1
    size = max(1, min(size, 5000 if full else 400))
    book = sim.model.book(pair.symbol, sim.market_now(request.path), size)
    dp, adp = pair.price_decimals, pair.amount_decimals
    return _ok([{
        "asks": [[fmt(p, dp), fmt(q, adp), "0", "1"] for p, q in book.asks],
        "bids": [[fmt(p, dp), fmt(q, adp), "0", "1"] for p, q in book.bids],
        "ts": str(book.at_ms),
    }])  # fmt: skip


def fault_response(kind: str, retry_after_s: int, now_ms: int) -> web.Response:
    """What OKX answers when ``kind`` happens to it."""
    headers = {"Retry-After": str(retry_after_s)}
    if kind == "429":
        body = {"msg": "Too Many Requests", "code": "50011"}
        return web.json_response(body, status=429, headers=headers)
    if kind == "418":  # OKX has no 418 of its own: a bare status, as a ban at the edge sends
        return web.Response(status=418, text="I'm a teapot", headers=headers)
    if kind == "500":
        return web.Response(status=500, text=HTML_500, content_type="text/html")
    if kind == "503":
        return web.Response(status=503, text="Service Unavailable", content_type="text/plain")
    raise ValueError(f"no OKX response for fault kind {kind!r}")


def add_routes(app: web.Application) -> None:
    app.router.add_routes(
        web.get(PREFIX + path, handler)
        for path, handler in (
            ("/public/time", server_time), ("/public/instruments", instruments),
            ("/market/tickers", tickers), ("/market/ticker", ticker),
            ("/market/candles", candles), ("/market/history-candles", candles),
            ("/market/books", books), ("/market/books-full", books),
        )
    )  # fmt: skip
