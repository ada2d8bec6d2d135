"""The hot set: which keys the fleet's readers read, measured, decaying, merged in Redis.

Two halves, one Redis sorted set between them:

* ``HeatRecorder`` (each reader process): ``touch(key)`` on every read adds one to an
  in-process dict; every ``flush_every_s`` one ``EVALSHA`` adds those counts to the
  fleet-wide sorted set. A read costs a dict update, never a Redis call. The dict holds at
  most ``max_pending`` distinct keys between two flushes; reads of further keys are counted
  as ``warmfleet_hot_set_uncounted_reads_total{reason="overflow"}``, not stored.
* ``HeatView`` (the clock, the agents): a snapshot of the merged set, re-read every
  ``refresh_every_s`` in the background; ``weight(key)`` (the TTL policy's access weight)
  and ``hot_symbols(exchange, data_type, limit)`` (what the clock warms) answer from it
  without any I/O.

Decay is *forward decay* (Cormode et al., 2009): a read at time t adds ``2^((t - epoch) /
half_life)`` instead of 1, so every older read counts half as much per half-life relative
to new ones, and the decayed heat of a key at ``now`` is ``score / 2^((now - epoch) /
half_life)``. Nothing is rewritten as time passes; only when the growth factor reaches
2^40 (every 40 half-lives) does the script rescale the set once and move the epoch. Time is
the Redis server's (``TIME`` inside the scripts), so processes with skewed clocks agree.

A key leaves the set when its decayed heat falls below ``floor`` (reads, decayed): the flush
script trims below it and the read script never returns such a key, so a key nobody reads
drops out within ``half_life * log2(heat / floor)`` even if no reader flushes any more. The
set also keeps at most ``max_keys`` members (the hottest).

Why a decayed sorted set and not a top-K over a count-min sketch: ``bench/bench_hotset.py``
measures both (per-read cost, memory, top-K recall); the sketch costs several hashes per
read in Python and still needs its counters merged fleet-wide, where the sorted set is one
exact, mergeable structure the fleet already runs. Figures: docs/clock.md.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass

import structlog
from prometheus_client import Counter, Gauge
from redis import exceptions as redis_errors
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from topics import KEY_VERSION, DataType, data_type_of
from topics.settings import at_least, check_fields, positive
from topics.tasks import cancel_and_wait

log = structlog.get_logger(__name__)

HOT_SET_KEYS = Gauge(
    "warmfleet_hot_set_keys",
    "keys in the hot set: 'fleet' the merged set as this process last saw it, 'pending' "
    "distinct keys this reader counted since its last flush",
    ["scope"],
)
HOT_SET_ERRORS = Counter(
    "warmfleet_hot_set_errors_total",
    "hot-set Redis calls that failed (flush, read); the process goes on without them",
    ["op"],
)
UNCOUNTED_READS = Counter(
    "warmfleet_hot_set_uncounted_reads_total",
    "reads that did not reach the hot set: overflow (too many distinct keys between two "
    "flushes), flush_failed (Redis did not take the flush)",
    ["reason"],
)

_DRIVER_ERRORS: tuple[type[BaseException], ...] = (
    redis_errors.RedisError, OSError, EOFError, TimeoutError,
)  # fmt: skip

#: keys per flush script: one script holds the server for about a millisecond at most
#: (bench/bench_hotset.py: some 4 us of server time per key)
MAX_PAIRS = 256

#: the growth factor past which the flush script rescales the set (2^40: scores stay far
#: inside a double's 53-bit mantissa, and it happens once per 40 half-lives)
_RESCALE_AT = 2.0**40

_NOW_AND_GROWTH = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local hl = tonumber(ARGV[1])
local epoch = tonumber(redis.call('HGET', KEYS[2], 'epoch'))
"""

# KEYS: the set, its meta hash. ARGV: half_life_ms, floor, max_keys, keep_ms, then
# member, count pairs. Returns the set's size after the flush.
FLUSH = (
    _NOW_AND_GROWTH
    + """
if not epoch then
  epoch = now
  redis.call('HSET', KEYS[2], 'epoch', epoch)
end
local g = 2 ^ ((now - epoch) / hl)
if g > """
    + repr(_RESCALE_AT)
    + """ then
  local all = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
  for i = 1, #all, 2 do
    redis.call('ZADD', KEYS[1], tonumber(all[i + 1]) / g, all[i])
  end
  epoch = now
  g = 1
  redis.call('HSET', KEYS[2], 'epoch', epoch)
end
for i = 5, #ARGV, 2 do
  redis.call('ZINCRBY', KEYS[1], tonumber(ARGV[i + 1]) * g, ARGV[i])
end
local below = '(' .. string.format('%.17g', tonumber(ARGV[2]) * g)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', below)
local extra = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[3])
if extra > 0 then
  redis.call('ZREMRANGEBYRANK', KEYS[1], 0, extra - 1)
end
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
return redis.call('ZCARD', KEYS[1])
"""
)

# KEYS: the set, its meta hash. ARGV: half_life_ms, floor, limit. Returns {growth factor
# as a string, member, score, member, score ...}, hottest first, only heat >= floor.
READ = (
    _NOW_AND_GROWTH
    + """
if not epoch then
  return {'1'}
end
local g = 2 ^ ((now - epoch) / hl)
local out = redis.call('ZRANGE', KEYS[1], '+inf', string.format('%.17g', tonumber(ARGV[2]) * g),
  'BYSCORE', 'REV', 'LIMIT', 0, tonumber(ARGV[3]), 'WITHSCORES')
table.insert(out, 1, string.format('%.17g', g))
return out
"""
)


@dataclass(frozen=True, slots=True)
class HotSetOptions:
    """How heat is measured; the same figures everywhere in one fleet (they define the set).

    ``half_life_s``: a read counts half as much after this long. ``floor``: decayed reads
    below which a key leaves the set (a key read steadily at r reads/s holds
    ``r * half_life_s / ln 2``, so the defaults keep a key read about once in three
    minutes; a single read stays one half-life).
    ``max_keys``: the set keeps the hottest this many. ``flush_every_s``: how often a reader
    sends its counts. ``max_pending``: distinct keys a reader counts between flushes.
    ``refresh_every_s``: how often a view re-reads the set. ``timeout_s``: per Redis call.
    """

    half_life_s: float = positive(60.0)
    floor: float = positive(0.5)
    max_keys: int = at_least(1, 10_000)
    flush_every_s: float = positive(1.0)
    max_pending: int = at_least(1, 20_000)
    refresh_every_s: float = positive(2.0)
    timeout_s: float = positive(0.5)

    def __post_init__(self) -> None:
        check_fields(self, "hot_set")

    @property
    def keep_ms(self) -> int:
        """How long the set outlives its last flush: long enough for any member to have
        decayed below the floor from a heat of 2^48 reads, so an idle fleet's set goes away
        by itself and a live one never loses a key that is still above the floor."""
        half_lives = 48 + max(0.0, math.log2(1 / self.floor))
        return round(self.half_life_s * half_lives * 1000)


def set_names(prefix: str) -> tuple[str, str]:
    """The sorted set and its meta hash for keys under ``prefix`` (one hash slot, so the
    scripts run on a Redis Cluster too)."""
    tag = f"{{{prefix}:{KEY_VERSION}:hotset}}"
    return f"{tag}:heat", f"{tag}:meta"


def _client(url: str, timeout_s: float) -> Redis | RedisCluster:
    if "+cluster://" in url:
        return RedisCluster.from_url(
            url.replace("+cluster://", "://", 1),
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
        )
    return Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)


class _Scripts:
    """The two scripts on one client (``EVALSHA``, loaded again after a server restart)."""

    def __init__(self, client: Redis | RedisCluster, prefix: str, options: HotSetOptions):
        self.client, self.options = client, options
        self.keys = set_names(prefix)
        self._flush = client.register_script(FLUSH)
        self._read = client.register_script(READ)

    async def flush(self, counts: dict[str, int]) -> int:
        """Add ``counts`` to the set, ``MAX_PAIRS`` keys per ``EVALSHA``, one after the
        other, so no one script holds the (single-threaded) server for more than about a
        millisecond; the set's size after the last."""
        o = self.options
        head: list[str | int | float] = [
            round(o.half_life_s * 1000),
            o.floor,
            o.max_keys,
            o.keep_ms,
        ]
        items = list(counts.items())
        size = 0
        for start in range(0, len(items), MAX_PAIRS):
            args = list(head)
            for key, count in items[start : start + MAX_PAIRS]:
                args += (key, count)
            size = await asyncio.wait_for(self._flush(keys=list(self.keys), args=args), o.timeout_s)
        return int(size)

    async def read(self, limit: int) -> dict[str, float]:
        """Every key with decayed heat >= floor (the hottest ``limit``), key -> heat."""
        o = self.options
        args = [round(o.half_life_s * 1000), o.floor, limit]
        raw = await asyncio.wait_for(self._read(keys=list(self.keys), args=args), o.timeout_s)
        growth = float(raw[0])
        return {_text(raw[i]): float(raw[i + 1]) / growth for i in range(1, len(raw) - 1, 2)}


def _text(value: bytes | str) -> str:
    # members are the keys readers counted (validated str); whatever else someone put in
    # the set stays a harmless string that matches no market
    return value.decode(errors="replace") if isinstance(value, bytes) else value


class _HotSetClient:
    """What the recorder and the view share: the options, one Redis client and the scripts
    on it, and the background task (flush or refresh loop) they run."""

    def __init__(self, redis_url: str, prefix: str, options: HotSetOptions | None) -> None:
        self.options = options or HotSetOptions()
        self.prefix = prefix
        self._client = _client(redis_url, self.options.timeout_s)
        self._scripts = _Scripts(self._client, prefix, self.options)
        self._task: asyncio.Task[None] | None = None
        self._failing = False  # Redis did not answer the last call: logged once an outage


class HeatRecorder(_HotSetClient):
    """Counts reads in this process and merges them into the fleet's hot set.

    ``touch(key)`` is the reader's one line per read. The flush loop starts with the first
    read inside a running event loop; ``close()`` sends what is left and stops it.
    """

    def __init__(
        self, redis_url: str, *, prefix: str, options: HotSetOptions | None = None
    ) -> None:
        super().__init__(redis_url, prefix, options)
        self._pending: dict[str, int] = {}
        self._max_pending = self.options.max_pending
        self.flushes = 0

    def __repr__(self) -> str:
        return f"HeatRecorder(prefix={self.prefix!r})"  # never the URL: it may hold a password

    def touch(self, key: str) -> None:
        """One read of ``key``: an in-process count, no I/O."""
        pending = self._pending
        count = pending.get(key)
        if count is not None:
            pending[key] = count + 1
        elif len(pending) < self._max_pending:
            pending[key] = 1
            if self._task is None:
                self._start()
        else:
            UNCOUNTED_READS.labels(reason="overflow").inc()

    def _start(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # not in a loop (a synchronous caller): counts wait for flush()
        self._task = loop.create_task(self._run(), name="hot-set-flush")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.options.flush_every_s)
            try:
                await self.flush()
            except Exception:  # never let a bug stop the counting of a live reader
                HOT_SET_ERRORS.labels(op="flush").inc()
                log.exception("hot_set_flush_crashed")

    async def flush(self) -> int | None:
        """Send the counts since the last flush; the set's size, or None if Redis did not
        take them (counted and logged once per outage; the counts are dropped, so an outage
        never grows this process's memory)."""
        counts, self._pending = self._pending, {}
        HOT_SET_KEYS.labels(scope="pending").set(0)
        if not counts:
            return None
        try:
            size = await self._scripts.flush(counts)
        except _DRIVER_ERRORS as exc:
            HOT_SET_ERRORS.labels(op="flush").inc()
            UNCOUNTED_READS.labels(reason="flush_failed").inc(sum(counts.values()))
            if not self._failing:
                log.warning("hot_set_flush_failed", error=type(exc).__name__, keys=len(counts))
            self._failing = True
            return None
        if self._failing:
            log.info("hot_set_flush_recovered", keys=len(counts))
        self._failing = False
        self.flushes += 1
        HOT_SET_KEYS.labels(scope="fleet").set(size)
        return size

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def close(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None  # after the wait: a read meanwhile must not start a second loop
        await self.flush()
        await self._client.aclose()


#: a candle timeframe after the symbol in a key (``...:binance:BTC/USDT:1m``)
_TIMEFRAME = re.compile(r"^\d+[smhdwMy]$")


def market_of(key: str, prefix: str) -> tuple[str, DataType, str] | None:
    """(exchange, data type, symbol) of a per-symbol key under ``prefix``, else None:
    ``virt:v2:market:book:15s:binance:BTC/USDT`` -> ``("binance", BOOKS, "BTC/USDT")``. A
    swap's settle currency stays in the symbol (``BTC/USDT:USDT``); a timeframe does not."""
    parts = key.split(":")
    if len(parts) < 7 or parts[0] != prefix or parts[1] != KEY_VERSION or "/" not in parts[6]:
        return None
    symbol = parts[6]
    if len(parts) > 7 and not _TIMEFRAME.match(parts[7]):
        symbol = f"{symbol}:{parts[7]}"
    return parts[5], data_type_of(key), symbol


class HeatView(_HotSetClient):
    """An in-process snapshot of the merged hot set, refreshed in the background.

    ``run()`` (or the first ``weight()`` inside an event loop) starts the refresh loop.
    When Redis does not answer, the last snapshot stays in force (counted, logged once):
    the clock keeps warming what was hot, the agents keep their weights.
    """

    def __init__(
        self,
        redis_url: str,
        *,
        prefix: str,
        options: HotSetOptions | None = None,
    ) -> None:
        super().__init__(redis_url, prefix, options)
        self._heat: dict[str, float] = {}
        self._weights: dict[str, float] = {}
        self._symbols: dict[tuple[str, DataType], list[str]] = {}
        #: monotonic time of the last successful read (None: never read)
        self.refreshed_at: float | None = None

    def __repr__(self) -> str:
        return f"HeatView(prefix={self.prefix!r}, keys={len(self._heat)})"

    # -- reading the snapshot (no I/O) -----------------------------------------------------

    @property
    def known(self) -> bool:
        """Whether the set was read at least once (an empty set is known; Redis down since
        start is not)."""
        return self.refreshed_at is not None

    @property
    def size(self) -> int:
        return len(self._heat)

    def heat(self, key: str) -> float:
        """Decayed reads of ``key`` at the last refresh (0 when it is not in the set)."""
        return self._heat.get(key, 0.0)

    def weight(self, key: str) -> float:
        """The TTL policy's access weight, the seed's ``1 + (access_pattern - 0.5)``:
        ``access_pattern`` is 0.5 (neutral) for a key outside the set and
        ``0.5 + 0.5 * heat / hottest heat`` inside it, so an unread key keeps weight 1 and the
        hottest key gets 1.5."""
        if self._task is None:
            self._start()
        return self._weights.get(key, 1.0)

    def hot_symbols(
        self,
        exchange: str,
        data_type: DataType,
        limit: int,
        allowed: Iterable[str] | None = None,
    ) -> list[str] | None:
        """The ``limit`` hottest symbols of ``exchange`` read as ``data_type`` (heat summed
        over their keys, e.g. several candle timeframes), hottest first, only those in
        ``allowed`` when given; None while the set was never read."""
        if not self.known:
            return None
        ranked = self._symbols.get((exchange, data_type), [])
        if allowed is not None:
            keep = set(allowed)
            ranked = [s for s in ranked if s in keep]
        return ranked[: max(limit, 0)]

    # -- refreshing ------------------------------------------------------------------------

    def _start(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._task = loop.create_task(self._loop(), name="hot-set-view")

    async def run(self) -> None:
        """Refresh every ``refresh_every_s`` until cancelled (the first refresh at once)."""
        if self._task is None:
            self._task = asyncio.current_task()
        await self._loop()

    async def _loop(self) -> None:
        while True:
            try:
                await self.refresh()
            except Exception:  # a bug must not freeze the snapshot for good: counted, logged
                HOT_SET_ERRORS.labels(op="read").inc()
                log.exception("hot_set_refresh_crashed")
            await asyncio.sleep(self.options.refresh_every_s)

    async def refresh(self) -> bool:
        """Read the merged set now; False (snapshot kept) when Redis did not answer."""
        try:
            heat = await self._scripts.read(self.options.max_keys)
        except _DRIVER_ERRORS as exc:
            HOT_SET_ERRORS.labels(op="read").inc()
            if not self._failing:
                log.warning("hot_set_read_failed", error=type(exc).__name__, kept=len(self._heat))
            self._failing = True
            return False
        if self._failing:
            log.info("hot_set_read_recovered", keys=len(heat))
        self._failing = False
        self._install(heat)
        self.refreshed_at = time.monotonic()
        HOT_SET_KEYS.labels(scope="fleet").set(len(heat))
        return True

    def _install(self, heat: dict[str, float]) -> None:
        top = max(heat.values(), default=0.0)
        weights = {key: 1.0 + 0.5 * h / top for key, h in heat.items()} if top > 0 else {}
        per_symbol: dict[tuple[str, DataType], dict[str, float]] = {}
        for key, h in heat.items():
            market = market_of(key, self.prefix)
            if market is not None:
                exchange, data_type, symbol = market
                sums = per_symbol.setdefault((exchange, data_type), {})
                sums[symbol] = sums.get(symbol, 0.0) + h
        self._heat, self._weights = heat, weights
        self._symbols = {
            group: sorted(sums, key=lambda s: (-sums[s], s)) for group, sums in per_symbol.items()
        }

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not asyncio.current_task():
            await cancel_and_wait(task)
        await self._client.aclose()
