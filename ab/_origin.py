"""The origin: the exchange, read with ccxt (against the simulator), as a cache miss does.

One ``Origin`` per arm, so each arm's origin requests are counted on their own. Rate
limiting is off: the simulator does not limit, and ccxt's limiter would queue concurrent
misses behind each other and charge the old design more than the origin's latency.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import ccxt.async_support as ccxt_async

from ab._workload import EXCHANGES, Item
from workers.analytics import atr, ema, rsi

_BINANCE_HOST = "https://api.binance.com"


class OriginError(Exception):
    """The origin did not answer a read (ccxt's error is the cause)."""


def _options(exchange: str, url: str) -> dict[str, Any]:
    base = url.rstrip("/")
    options: dict[str, Any] = {"enableRateLimit": False, "timeout": 10_000}
    if exchange == "binance":
        defaults = ccxt_async.binance().describe()["urls"]["api"]
        host = _BINANCE_HOST
        options["urls"] = {"api": {k: base + v[len(host):] for k, v in defaults.items()
                                   if isinstance(v, str) and v.startswith(host)}}  # fmt: skip
        options["options"] = {"defaultType": "spot", "fetchMarkets": {"types": ["spot"]},
                              "fetchCurrencies": False, "fetchMargins": False}  # fmt: skip
    else:
        options["urls"] = {"api": {"rest": base}}
        options["options"] = {"defaultType": "spot", "fetchMarkets": {"types": ["spot"]}}
    return options


def _num(value: Any) -> float | None:
    return None if value is None else float(value)


class Origin:
    """ccxt clients for both exchanges at ``url``; ``load(item)`` -> (value, as_of ms)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.clients: dict[str, Any] = {
            ex: getattr(ccxt_async, ex)(_options(ex, url)) for ex in EXCHANGES
        }
        #: exchange requests made by ``load`` (markets loading at start not included)
        self.requests = 0

    async def start(self) -> None:
        try:
            await asyncio.gather(*(c.load_markets() for c in self.clients.values()))
        except ccxt_async.BaseError as exc:
            raise OriginError(f"cannot load markets from {self.url}: {exc}") from exc

    async def close(self) -> None:
        await asyncio.gather(*(c.close() for c in self.clients.values()))

    async def _call(self, exchange: str, method: str, *args: Any) -> Any:
        self.requests += 1
        try:
            return await getattr(self.clients[exchange], method)(*args)
        except ccxt_async.BaseError as exc:
            raise OriginError(f"{exchange} {method}{args!r}: {type(exc).__name__}") from exc

    async def load(self, item: Item) -> tuple[dict[str, Any], int]:
        if item.data_type == "tickers":
            return self._ticker(item, await self._call(item.exchange, "fetch_ticker", item.symbol))
        if item.data_type == "analysis":
            ticker, rows = await asyncio.gather(
                self._call(item.exchange, "fetch_ticker", item.symbol),
                self._call(item.exchange, "fetch_ohlcv", item.symbol, "1m", None, 60),
            )
            return self._analysis(item, ticker, rows)
        scopes = EXCHANGES if item.exchange == "all" else (item.exchange,)
        every = await asyncio.gather(*(self._call(ex, "fetch_tickers") for ex in scopes))
        return self._overview(item, [t for tickers in every for t in tickers.values()])

    @staticmethod
    def _as_of(ticker: dict[str, Any]) -> int:
        stamp = ticker.get("timestamp")
        return int(stamp) if stamp else int(time.time() * 1000)

    def _ticker(self, item: Item, t: dict[str, Any]) -> tuple[dict[str, Any], int]:
        as_of = self._as_of(t)
        value = {
            "exchange": item.exchange, "symbol": item.symbol, "last": _num(t.get("last")),
            "bid": _num(t.get("bid")), "ask": _num(t.get("ask")), "high": _num(t.get("high")),
            "low": _num(t.get("low")), "base_volume": _num(t.get("baseVolume")),
            "quote_volume": _num(t.get("quoteVolume")), "change_pct": _num(t.get("percentage")),
            "as_of_ms": as_of,
        }  # fmt: skip
        return value, as_of

    def _analysis(
        self, item: Item, ticker: dict[str, Any], rows: list[list[float]]
    ) -> tuple[dict[str, Any], int]:
        value, as_of = self._ticker(item, ticker)
        closes = [float(r[4]) for r in rows]
        value.update(rsi=rsi(closes), ema_fast=ema(closes, 12), ema_slow=ema(closes, 26),
                     atr=atr(rows))  # fmt: skip
        return value, as_of

    def _overview(self, item: Item, tickers: list[dict[str, Any]]) -> tuple[dict[str, Any], int]:
        changes = [float(t["percentage"]) for t in tickers if t.get("percentage") is not None]
        as_of = max((self._as_of(t) for t in tickers), default=int(time.time() * 1000))
        value = {
            "scope": item.exchange, "symbols": len(tickers),
            "advancers": sum(1 for c in changes if c > 0),
            "decliners": sum(1 for c in changes if c < 0),
            "quote_volume": sum(float(t.get("quoteVolume") or 0.0) for t in tickers),
            "as_of_ms": as_of,
        }  # fmt: skip
        return value, as_of
