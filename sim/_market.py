"""The simulated market: a pure, seeded price model that both venues translate into JSON.

Prices follow geometric Brownian motion sampled every ``TICK_MS`` of *simulated* time, with
a market-wide regime (calm / volatile) switching as a Markov chain once per minute, so
volatility clusters the way real markets do and volatility-adjusted TTLs have something
to react to. Everything a venue serves is derived from that one path: 1-minute candles
are the OHLC of a minute's ticks, 24 h statistics aggregate the candles, the order book
is built around the current tick.

The model is a pure function of ``(seed, pairs, origin)`` and the simulated time you ask
about: it generates the path forward from ``origin - 24 h`` lazily, in order, from one
random stream per pair, so two models with the same seed answer the same question the
same way whatever order the questions come in.
"""

from __future__ import annotations

import math
import random
from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

MINUTE_MS = 60_000
TICK_MS = 10_000
TICKS_PER_MINUTE = MINUTE_MS // TICK_MS
DAY_MINUTES = 24 * 60
#: minutes of path kept behind "now" (24 h statistics plus 1000 klines of headroom)
KEEP_MINUTES = DAY_MINUTES + 1_100

CALM, VOLATILE = "calm", "volatile"
#: per-minute regime transition probabilities and the volatility multiplier of each regime
P_CALM_TO_VOLATILE = 0.02
P_VOLATILE_TO_CALM = 0.10
VOLATILITY_MULTIPLIER = {CALM: 1.0, VOLATILE: 4.0}

# (base, quote, start price in quote) -- the head of the list is what every test relies on
_CURATED: tuple[tuple[str, str, float], ...] = (
    ("BTC", "USDT", 65_000.0), ("ETH", "USDT", 3_200.0), ("ETH", "BTC", 0.0492),
    ("BNB", "USDT", 580.0), ("SOL", "USDT", 150.0), ("XRP", "USDT", 0.52),
    ("DOGE", "USDT", 0.12), ("ADA", "USDT", 0.45), ("TRX", "USDT", 0.12),
    ("AVAX", "USDT", 28.0), ("LINK", "USDT", 14.0), ("DOT", "USDT", 6.5),
    ("LTC", "USDT", 72.0), ("BCH", "USDT", 380.0), ("UNI", "USDT", 8.0),
    ("ATOM", "USDT", 7.0), ("XLM", "USDT", 0.10), ("ETC", "USDT", 22.0),
    ("FIL", "USDT", 4.5), ("APT", "USDT", 7.0), ("ARB", "USDT", 0.80),
    ("OP", "USDT", 1.7), ("NEAR", "USDT", 5.0), ("ICP", "USDT", 9.0),
    ("HBAR", "USDT", 0.07), ("VET", "USDT", 0.025), ("ALGO", "USDT", 0.15),
    ("AAVE", "USDT", 95.0), ("MKR", "USDT", 2_200.0), ("SAND", "USDT", 0.35),
    ("MANA", "USDT", 0.35), ("AXS", "USDT", 5.5), ("GRT", "USDT", 0.20),
    ("EOS", "USDT", 0.60), ("XTZ", "USDT", 0.80), ("THETA", "USDT", 1.3),
    ("INJ", "USDT", 22.0), ("RUNE", "USDT", 4.5), ("SUI", "USDT", 1.0),
    ("SEI", "USDT", 0.40), ("TIA", "USDT", 6.0), ("PEPE", "USDT", 0.000009),
    ("SHIB", "USDT", 0.000017), ("FET", "USDT", 1.3), ("CRV", "USDT", 0.30),
    ("LDO", "USDT", 1.8), ("IMX", "USDT", 1.5), ("STX", "USDT", 1.7),
    ("KAVA", "USDT", 0.40), ("ZEC", "USDT", 25.0), ("DASH", "USDT", 25.0),
    ("COMP", "USDT", 50.0), ("SNX", "USDT", 2.0), ("BNB", "BTC", 0.0089),
    ("SOL", "BTC", 0.0023), ("XRP", "BTC", 0.000008), ("LTC", "BTC", 0.0011),
    ("LINK", "ETH", 0.0044), ("ENS", "USDT", 24.0), ("QNT", "USDT", 70.0),
)  # fmt: skip
DEFAULT_SYMBOLS = 60
#: listed but not trading (Binance status BREAK, OKX state suspend): markets must skip it
HALTED = ("FTT", "USDT", 1.6)


@dataclass(frozen=True, slots=True)
class Pair:
    base: str
    quote: str
    start_price: float
    trading: bool = True

    @property
    def symbol(self) -> str:
        return f"{self.base}/{self.quote}"

    @property
    def binance_id(self) -> str:
        return f"{self.base}{self.quote}"

    @property
    def okx_id(self) -> str:
        return f"{self.base}-{self.quote}"

    @property
    def tick_size(self) -> float:
        """About seven significant digits of price, as venues list them."""
        return 10.0 ** (math.floor(math.log10(self.start_price)) - 6)

    @property
    def step_size(self) -> float:
        """Amount step: coarser for cheap coins so one step is worth a similar notional."""
        return 10.0 ** min(0, max(-8, -math.floor(math.log10(self.start_price)) - 1))

    @property
    def price_decimals(self) -> int:
        return max(0, -math.floor(math.log10(self.tick_size) + 1e-9))

    @property
    def amount_decimals(self) -> int:
        return max(0, -math.floor(math.log10(self.step_size) + 1e-9))


def default_pairs(count: int = DEFAULT_SYMBOLS) -> list[Pair]:
    """``count`` trading pairs (curated majors first, then synthetic ``SIMnnn/USDT``) plus
    one halted pair."""
    if count < 1:
        raise ValueError(f"a simulated market needs at least one symbol, got {count}")
    pairs = [Pair(b, q, p) for b, q, p in _CURATED[:count]]
    rng = random.Random("warmfleet-sim-synthetic-pairs")
    for i in range(len(pairs), count):
        pairs.append(Pair(f"SIM{i:03d}", "USDT", round(10 ** rng.uniform(-3, 3), 6)))
    return [*pairs, Pair(*HALTED, trading=False)]


@dataclass(frozen=True, slots=True)
class Candle:
    open_ms: int
    open: float
    high: float
    low: float
    close: float
    volume: float  # base asset
    quote_volume: float
    trades: int

    @property
    def close_ms(self) -> int:  # Binance: last millisecond of the candle
        return self.open_ms + MINUTE_MS - 1


@dataclass(frozen=True, slots=True)
class DayStats:
    open: float
    high: float
    low: float
    last: float
    volume: float
    quote_volume: float
    trades: int
    open_ms: int
    close_ms: int

    @property
    def change(self) -> float:
        return self.last - self.open

    @property
    def change_pct(self) -> float:
        return 100.0 * (self.last - self.open) / self.open

    @property
    def vwap(self) -> float:
        return self.quote_volume / self.volume if self.volume > 0 else self.last


@dataclass(frozen=True, slots=True)
class Book:
    update_id: int
    at_ms: int
    bids: list[tuple[float, float]]  # best (highest) first
    asks: list[tuple[float, float]]  # best (lowest) first


class _Path:
    """One pair's generated ticks and per-minute volumes, from ``first_minute`` on."""

    __slots__ = ("first_minute", "highs", "last_close", "lows", "per_minute_volume",
                 "quote_volumes", "rng", "sigma", "ticks", "trades", "volumes")  # fmt: skip

    def __init__(self, seed: int, pair: Pair, first_minute: int) -> None:
        self.rng = random.Random(f"{seed}|{pair.symbol}")
        self.first_minute = first_minute
        self.last_close = pair.start_price
        # per-minute log-return deviation in the calm regime: 0.05 % .. 0.12 %
        self.sigma = self.rng.uniform(0.0005, 0.0012)
        # about 20k .. 2M quote units a minute, as base-asset amount
        self.per_minute_volume = 10 ** self.rng.uniform(4.3, 6.3) / pair.start_price
        self.ticks = array("d")
        # per full minute, so 24 h statistics are C-speed slices rather than Python loops
        self.highs = array("d")
        self.lows = array("d")
        self.volumes = array("d")
        self.quote_volumes = array("d")
        self.trades = array("q")

    @property
    def end_minute(self) -> int:  # exclusive
        return self.first_minute + len(self.volumes)

    def extend(self, regimes: Sequence[float], regime_first_minute: int, to_minute: int) -> None:
        rng, ticks = self.rng, self.ticks
        price = self.last_close
        for minute in range(self.end_minute, to_minute + 1):
            mult = regimes[minute - regime_first_minute]
            sd = self.sigma * mult / math.sqrt(TICKS_PER_MINUTE)
            drift = -0.5 * sd * sd
            minute_ticks = []
            for _ in range(TICKS_PER_MINUTE):
                price *= math.exp(drift + sd * rng.gauss(0.0, 1.0))
                minute_ticks.append(price)
            ticks.extend(minute_ticks)
            volume = self.per_minute_volume * mult * rng.lognormvariate(0.0, 0.5)
            self.highs.append(max(minute_ticks))
            self.lows.append(min(minute_ticks))
            self.volumes.append(volume)
            self.quote_volumes.append(volume * (minute_ticks[0] + price) / 2)
            self.trades.append(max(1, int(volume / self.per_minute_volume * 400)))
        self.last_close = price

    def trim(self, keep_from_minute: int) -> None:
        drop = keep_from_minute - self.first_minute
        if drop > 0:
            del self.ticks[: drop * TICKS_PER_MINUTE]
            for column in (self.highs, self.lows, self.volumes, self.quote_volumes, self.trades):
                del column[:drop]
            self.first_minute = keep_from_minute


class MarketModel:
    """The seeded market. ``origin_ms`` is the simulated time the simulator starts at; the
    path exists from 24 h before it, so 24 h statistics are full from the first request."""

    def __init__(self, seed: int, pairs: Sequence[Pair], origin_ms: int) -> None:
        if not pairs:
            raise ValueError("a simulated market needs at least one pair")
        self.seed = seed
        self.pairs: tuple[Pair, ...] = tuple(pairs)
        self.by_symbol = {p.symbol: p for p in self.pairs}
        self.by_binance_id = {p.binance_id: p for p in self.pairs}
        self.by_okx_id = {p.okx_id: p for p in self.pairs}
        self.origin_ms = origin_ms
        self.first_minute = origin_ms // MINUTE_MS - DAY_MINUTES - 1
        self._regime_rng = random.Random(f"{seed}|regime")
        self._regime_state = CALM
        self._regimes = array("d")  # volatility multiplier per minute from _regime_first
        self._regime_names: list[str] = []
        self._regime_first = self.first_minute
        self._paths: dict[str, _Path] = {}

    # -- path generation -------------------------------------------------------------------

    def _extend_regimes(self, to_minute: int) -> None:
        rng = self._regime_rng
        for _ in range(self._regime_first + len(self._regimes), to_minute + 1):
            if self._regime_state == CALM and rng.random() < P_CALM_TO_VOLATILE:
                self._regime_state = VOLATILE
            elif self._regime_state == VOLATILE and rng.random() < P_VOLATILE_TO_CALM:
                self._regime_state = CALM
            self._regimes.append(VOLATILITY_MULTIPLIER[self._regime_state])
            self._regime_names.append(self._regime_state)

    def _path(self, pair: Pair, minute: int) -> _Path:
        path = self._paths.get(pair.symbol)
        if path is None:
            path = self._paths[pair.symbol] = _Path(self.seed, pair, self.first_minute)
        if minute >= path.end_minute:
            self._extend_regimes(minute)
            path.extend(self._regimes, self._regime_first, minute)
            keep_from = minute - KEEP_MINUTES
            if keep_from - path.first_minute > KEEP_MINUTES // 2:
                path.trim(keep_from)
        return path

    def _clamp(self, now_ms: int) -> int:
        """Times before the path began are answered as of its beginning."""
        return max(now_ms, self.first_minute * MINUTE_MS)

    def _pair(self, symbol: str) -> Pair:
        try:
            return self.by_symbol[symbol]
        except KeyError:
            raise KeyError(f"unknown symbol {symbol!r}") from None

    # -- what venues ask -------------------------------------------------------------------

    def regime(self, now_ms: int) -> str:
        minute = now_ms // MINUTE_MS
        self._extend_regimes(minute)
        return self._regime_names[minute - self._regime_first]

    def price(self, symbol: str, now_ms: int) -> float:
        """The last traded price at simulated time ``now_ms`` (the latest tick)."""
        now_ms = self._clamp(now_ms)
        minute, offset = divmod(now_ms, MINUTE_MS)
        path = self._path(self._pair(symbol), minute)
        index = (max(minute, path.first_minute) - path.first_minute) * TICKS_PER_MINUTE
        return path.ticks[index + offset // TICK_MS]

    def _candle(self, path: _Path, minute: int, upto_tick: int = TICKS_PER_MINUTE - 1) -> Candle:
        row = minute - path.first_minute
        start = row * TICKS_PER_MINUTE
        ticks = path.ticks[start : start + upto_tick + 1]
        share = (upto_tick + 1) / TICKS_PER_MINUTE
        volume = path.volumes[row] * share
        return Candle(
            open_ms=minute * MINUTE_MS,
            open=ticks[0],
            high=max(ticks),
            low=min(ticks),
            close=ticks[-1],
            volume=volume,
            quote_volume=path.quote_volumes[row] * share,
            trades=max(1, int(path.trades[row] * share)),
        )

    def candles(
        self,
        symbol: str,
        now_ms: int,
        minutes: int = 1,
        limit: int = 500,
        start_ms: int | None = None,
        end_ms: int | None = None,
    ) -> list[Candle]:
        """Up to ``limit`` candles of ``minutes`` minutes each, oldest first, the last one
        still forming at ``now_ms``; Binance's rules for ``startTime`` / ``endTime``."""
        now_ms = self._clamp(now_ms)
        pair = self._pair(symbol)
        now_minute = now_ms // MINUTE_MS
        path = self._path(pair, now_minute)
        span = minutes * MINUTE_MS
        last_open = min(now_ms, end_ms if end_ms is not None else now_ms) // span * span
        first_open = path.first_minute * MINUTE_MS // span * span
        if start_ms is not None:
            first_open = max(first_open, -(-start_ms // span) * span)
            opens = range(first_open, last_open + 1, span)[:limit]
        else:
            opens = range(first_open, last_open + 1, span)[-limit:]
        return [self._bucket(path, open_ms, minutes, now_ms) for open_ms in opens]

    def _bucket(self, path: _Path, open_ms: int, minutes: int, now_ms: int) -> Candle:
        parts = list(self._minutes(path, open_ms // MINUTE_MS, minutes, now_ms))
        if len(parts) == 1:
            return parts[0]
        return Candle(
            open_ms=open_ms,
            open=parts[0].open,
            high=max(c.high for c in parts),
            low=min(c.low for c in parts),
            close=parts[-1].close,
            volume=sum(c.volume for c in parts),
            quote_volume=sum(c.quote_volume for c in parts),
            trades=sum(c.trades for c in parts),
        )

    def _minutes(self, path: _Path, first: int, count: int, now_ms: int) -> Iterator[Candle]:
        now_minute = now_ms // MINUTE_MS
        for minute in range(max(first, path.first_minute), min(first + count, now_minute + 1)):
            if minute == now_minute:
                yield self._candle(path, minute, (now_ms % MINUTE_MS) // TICK_MS)
            else:
                yield self._candle(path, minute)

    def day_stats(self, symbol: str, now_ms: int) -> DayStats:
        """Rolling 24 h statistics at ``now_ms``: the price 24 h ago, the full minutes since,
        and the forming minute."""
        now_ms = self._clamp(now_ms)
        pair = self._pair(symbol)
        now_minute = now_ms // MINUTE_MS
        path = self._path(pair, now_minute)
        open_ms = max(now_ms - DAY_MINUTES * MINUTE_MS, path.first_minute * MINUTE_MS)
        first = max(open_ms // MINUTE_MS + 1, path.first_minute) - path.first_minute
        last = now_minute - path.first_minute  # the forming minute, exclusive here
        forming = self._candle(path, now_minute, (now_ms % MINUTE_MS) // TICK_MS)
        open_ = self.price(symbol, open_ms)
        return DayStats(
            open=open_,
            high=max(open_, forming.high, *path.highs[first:last]),
            low=min(open_, forming.low, *path.lows[first:last]),
            last=forming.close,
            volume=sum(path.volumes[first:last]) + forming.volume,
            quote_volume=sum(path.quote_volumes[first:last]) + forming.quote_volume,
            trades=sum(path.trades[first:last]) + forming.trades,
            open_ms=open_ms,
            close_ms=now_ms,
        )

    def book(self, symbol: str, now_ms: int, depth: int) -> Book:
        """An order book around the current tick: the spread widens in the volatile regime;
        levels and sizes are fixed for a tick, so the book changes when the price does."""
        now_ms = self._clamp(now_ms)
        pair = self._pair(symbol)
        mid = self.price(symbol, now_ms)
        tick_index = now_ms // TICK_MS
        rng = random.Random(f"{self.seed}|{symbol}|book|{tick_index}")
        tick, step = pair.tick_size, pair.step_size
        half_spread_bps = 1.0 * VOLATILITY_MULTIPLIER[self.regime(now_ms)] * rng.uniform(0.5, 1.5)
        half = max(tick, mid * half_spread_bps / 10_000)
        bid_ticks = math.floor((mid - half) / tick)
        ask_ticks = max(math.ceil((mid + half) / tick), bid_ticks + 1)
        typical = self._path(pair, now_ms // MINUTE_MS).per_minute_volume / 50
        dp, adp = pair.price_decimals, pair.amount_decimals

        def size() -> float:
            return round(max(step, typical * rng.lognormvariate(0.0, 1.0)), adp)

        bids: list[tuple[float, float]] = []
        asks: list[tuple[float, float]] = []
        for _ in range(depth):
            if bid_ticks > 0:
                bids.append((round(bid_ticks * tick, dp), size()))
            asks.append((round(ask_ticks * tick, dp), size()))
            bid_ticks -= rng.randint(1, 3)
            ask_ticks += rng.randint(1, 3)
        return Book(update_id=tick_index, at_ms=tick_index * TICK_MS, bids=bids, asks=asks)
