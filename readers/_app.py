"""The HTTP reader: warm data over HTTP, read through ``MultiTierCache`` (L1 -> L2 -> L3).

Every answer carries ``as_of`` (exchange time, ms), ``age_ms``, the ``tier`` it came from and
``stale``, with ``ETag``, ``Age`` and ``Cache-Control`` (the freshness class, and the stale
window as ``stale-while-revalidate`` / ``stale-if-error``). ``?max_age=`` and a request's
``Cache-Control: max-age / max-stale`` say what the client accepts (``readers._freshness``);
while a key's exchange is failing (``readers.OriginWatch``) its last good copy is served,
flagged stale. A client's mistake is a 4xx with a JSON body that says what to send; a cold
or unknown key is a 404 (``ReaderApp._miss``, the one place every miss ends).

``ReaderApp`` is an RSGI application (granian's native interface: the request arrives as a
scope with the path already parsed, the answer leaves as one bytes object), served by
``readers._server``. Routing is a few string tests, memoised per path.
"""

from __future__ import annotations

import asyncio
import gc
import time
from bisect import bisect_left
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, NamedTuple, Protocol
from urllib.parse import parse_qsl

import orjson
import structlog
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from readers import _routes as routes
from readers._answers import (
    Answer,
    HitLike,
    WarmEncoder,
    cache_control,
    error,
    json_answer,
    warm_with,
)
from readers._connections import ConnectionWatch
from readers._demand import ReaderDemand
from readers._freshness import request_directives, stricter
from readers._limits import ReaderLimits, usable_connections
from readers._metrics import AGE_BUCKETS, BUCKETS, STATS, served
from readers._openapi import openapi_document
from readers._origin import OriginWatch
from tiers import TTLPolicy
from topics import KEY_PREFIX, DataType, data_type_of

log = structlog.get_logger(__name__)

Probe = Callable[[], Awaitable[bool]]
ALLOW = "GET, HEAD"
_perf = time.perf_counter


class Reader(Protocol):
    """What the reader needs of a cache (``tiers.MultiTierCache`` is one)."""

    async def get(
        self, key: str, *, max_age: float | None = None, max_stale: float | None = None
    ) -> HitLike | None: ...


class Scope(Protocol):
    """The part of granian's RSGI scope the reader reads."""

    method: str
    path: str  # percent-decoded
    query_string: str  # raw

    @property
    def headers(self) -> Any: ...  # a mapping: .get(name), .items()


class HTTPProtocol(Protocol):
    def response_bytes(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None: ...


# route name (the metric label, as the aiohttp router named them) per fixed path
_FIXED = {p: p for p in ("/v2/overview", "/metrics", "/healthz", "/readyz", "/openapi.json")}
_TICKER = "/v2/tickers/{exchange}/{symbol}"
_BOOK = "/v2/books/{exchange}/{symbol}"
_CANDLES = "/v2/candles/{exchange}/{symbol}"
_OVERVIEW_EX = "/v2/overview/{exchange}"
_ANALYSIS = "/v2/analysis/{exchange}/{symbol}"
_KEYS = "/v2/keys/{key}"
_PER_SYMBOL = (
    ("/v2/tickers/", _TICKER),
    ("/v2/books/", _BOOK),
    ("/v2/candles/", _CANDLES),
    ("/v2/analysis/", _ANALYSIS),
)


def _route(path: str) -> tuple[str, tuple[str, ...]] | None:
    """(route name, its path parameters), or None when no route has this path."""
    name = _FIXED.get(path)
    if name is not None:
        return name, ()
    for prefix, name in _PER_SYMBOL:
        if path.startswith(prefix):
            exchange, sep, sym = path[len(prefix) :].partition("/")
            return (name, (exchange, sym)) if exchange and sep and sym else None
    if path.startswith("/v2/overview/"):
        exchange = path[13:]
        return (_OVERVIEW_EX, (exchange,)) if exchange and "/" not in exchange else None
    if path.startswith("/v2/keys/") and len(path) > 9:
        return _KEYS, (path[9:],)
    return None


class _Policy(NamedTuple):
    """What a key's answers say about freshness: its class (s), Cache-Control, stale window,
    and the served-age row of its data type (``readers._metrics``)."""

    fresh_s: int
    control: str
    stale_s: float
    ages: list[float]


class _Target(NamedTuple):
    """A path, resolved once: route, cache keys (the first is the answer's), the key's
    exchange ("" for none), its policy, whether the hot path may answer it, and the
    route's (route, 200) metrics row (``RequestStats.row``), which the hot path counts in
    itself."""

    route: str
    keys: tuple[str, ...]
    params: tuple[str, ...]
    exchange: str
    policy: _Policy | None
    hot: bool
    ok_row: list[float]


class _NoOrigins:
    failing: frozenset[str] = frozenset()


def _header_bytes(headers: Any) -> int:
    return sum(len(name) + len(value) + 4 for name, value in headers.items())


async def _always_ready() -> bool:
    return True


def _unmeasured(key: str) -> None:
    return None


class ReaderApp:
    """The reader as an RSGI app. ``on_close`` runs when the worker stops (closing the cache
    the worker opened); ``watch_port`` turns on the connection watcher for that port;
    ``origins`` says which exchanges are failing (their keys are then served stale rather
    than not at all); ``stale_window`` is the stale window per data type (default: the
    cache's ``TTLPolicy``). ``create_app`` is this class."""

    def __init__(
        self,
        cache: Reader,
        *,
        key_prefix: str = KEY_PREFIX,
        ready: Probe | None = None,
        limits: ReaderLimits | None = None,
        watch_port: int | None = None,
        on_close: Callable[[], Coroutine[Any, Any, None]] | None = None,
        origins: OriginWatch | None = None,
        stale_window: Callable[[DataType], float] | None = None,
        on_read: Callable[[str], None] | None = None,
        demand: ReaderDemand | None = None,
    ) -> None:
        self.cache = cache
        self.on_read = on_read or _unmeasured  # the hot set's counter (tiers.HeatRecorder)
        self.demand = demand  # None: a cold key is a plain 404 (docs/demand.md)
        self.prefix = key_prefix
        self.ready = ready or _always_ready
        self.limits = limits or ReaderLimits()
        self.watch_port = watch_port
        self.on_close = on_close
        self.origins: OriginWatch | _NoOrigins = origins or _NoOrigins()
        policy = getattr(cache, "policy", None)
        self.stale_window = stale_window or (
            policy.stale_for if isinstance(policy, TTLPolicy) else TTLPolicy().stale_for
        )
        self.encoder = WarmEncoder()
        self._keys: dict[str, _Target] = {}  # path -> what it resolved to
        self._policies: dict[str, _Policy] = {}  # key -> its policy (bounded like _keys)
        self._openapi = orjson.dumps(openapi_document())
        self._tasks: list[asyncio.Task[None]] = []
        self._max_header_bytes = self.limits.max_header_bytes  # ReaderLimits is frozen
        self._counter: tuple[Callable[[], int], int] | None = None

    def count_connections_with(self, counter: Callable[[], int], cap: int) -> None:
        """The server counts its own connections (``readers._http``): the watcher asks it
        rather than sampling the process's sockets. Called before ``__rsgi_init__``."""
        self._counter = (counter, cap)

    # ---- RSGI -----------------------------------------------------------------------

    def __rsgi_init__(self, loop: asyncio.AbstractEventLoop) -> None:
        # what exists at start (modules, the app, the cache's structures) lives for the
        # worker's life: out of the collector's generations, full collections stay short
        gc.freeze()
        if self.watch_port is not None:
            if self._counter is not None:
                counter, cap = self._counter
                watch = ConnectionWatch(self.watch_port, cap, STATS, counter=counter)
            else:
                cap = usable_connections(self.limits.max_connections)  # what granian was given
                watch = ConnectionWatch(self.watch_port, cap, STATS)
            self._tasks.append(loop.create_task(watch.run()))
        if isinstance(self.origins, OriginWatch):
            self._tasks.append(loop.create_task(self.origins.run()))

    def __rsgi_del__(self, loop: asyncio.AbstractEventLoop) -> None:
        log.info("reader_stopping")
        for task in self._tasks:
            task.cancel()
        if self.on_close is None:
            return
        if loop.is_running():  # embedded: the caller's loop goes on
            loop.create_task(self.on_close())
        else:
            loop.run_until_complete(self.on_close())

    async def __rsgi__(self, scope: Scope, proto: HTTPProtocol) -> None:
        started = _perf()
        path = scope.path
        known = self._keys.get(path)
        # the hot path: a known single-key GET without a query or Cache-Control, its origin
        # not failing, answered from the cache. Every Python step here is paid per request
        # and, past it, again in granian's hand-off between its Rust thread and this loop
        # (docs/reader.md, "Performance"): what a helper would do is written out inline.
        if known is not None and known[5] and scope.method == "GET" and not scope.query_string:
            route, keys, _, exchange, policy, _, ok_row = known
            headers = scope.headers
            # one pass over the headers (one call into granian for them all): their size
            # for the 431 limit, If-None-Match, and whether a Cache-Control asks for more
            size, inm, plain = 0, None, True
            for name, value in headers.items():
                size += len(name) + len(value) + 4
                if name == "if-none-match":
                    if inm is None:  # the first, as headers.get gives it
                        inm = value
                elif name == "cache-control":
                    plain = False
            if plain and size <= self._max_header_bytes and exchange not in self.origins.failing:
                key = keys[0]
                fresh_s, control, _, ages = policy  # type: ignore[misc]  # a hot target has one
                try:
                    self.on_read(key)
                    hit = await self.cache.get(key)
                    if hit is not None:
                        if self.demand is not None:
                            self.demand.seen(key, hit)  # XFetch early refresh
                        age = hit.age
                        answer = self.encoder.answer(key, hit, age, fresh_s, control, inm)
                        if age > 0:  # served(ages, age), inline
                            ages[bisect_left(AGE_BUCKETS, age)] += 1
                            ages[-1] += age
                        else:
                            ages[0] += 1
                    else:
                        answer = await self._miss(key, None, None)
                except Exception:
                    answer = _failed(path)
                status, answer_headers, body = answer
                proto.response_bytes(status, answer_headers, body)
                seconds = _perf() - started
                if status == 200:  # STATS.record(route, 200, seconds), inline
                    ok_row[bisect_left(BUCKETS, seconds)] += 1
                    ok_row[-1] += seconds
                else:
                    STATS.record(route, status, seconds)
                return
        route, answer = await self.handle(
            scope.method, scope.path, scope.query_string, scope.headers
        )
        proto.response_bytes(*answer)
        STATS.record(route, answer.status, _perf() - started)

    # ---- dispatch -------------------------------------------------------------------

    async def handle(self, method: str, path: str, query: str, headers: Any) -> tuple[str, Answer]:
        """(route name for the metrics, the answer). Never raises."""
        limits = self.limits
        if len(path) + len(query) > limits.max_url_bytes:
            detail = f"the URL is longer than {limits.max_url_bytes} bytes"
            return "unmatched", error(414, "uri_too_long", detail)
        if _header_bytes(headers) > limits.max_header_bytes:
            detail = f"the request headers are larger than {limits.max_header_bytes} bytes"
            return "unmatched", error(431, "headers_too_large", detail)
        known = self._keys.get(path)
        if known is None:
            found = _route(path)
            if found is None:
                return "unmatched", error(404, "not_found", f"no route for {path}")
            route = found[0]
        else:
            route = known.route
        if method != "GET" and method != "HEAD":
            detail = f"{method} is not allowed here; use GET"
            answer = error(405, "method_not_allowed", detail)
            answer.headers.append(("allow", ALLOW))
            return route, answer
        try:
            if known is None:
                known = self._resolve(path, *found)  # type: ignore[misc]
            return route, await self._serve(known, query, headers)
        except routes.BadRequest as exc:
            return route, error(400, "bad_request", str(exc))
        except Exception:
            return route, _failed(path)

    def _resolve(self, path: str, route: str, params: tuple[str, ...]) -> _Target:
        """Path parameters -> cache keys (raises BadRequest), remembered per path."""
        prefix = self.prefix
        if route == _TICKER:
            keys: tuple[str, ...] = (routes.ticker_key(prefix, *params),)
        elif route == _BOOK:
            keys = (routes.book_key(prefix, *params),)
        elif route == _CANDLES:  # the key depends on the query's timeframe
            keys = ()
            params = (routes.exchange_id(params[0]), routes.symbol(params[1]))
        elif route == "/v2/overview":
            keys = (routes.overview_key(prefix, "all"),)
        elif route == _OVERVIEW_EX:
            keys = (routes.overview_key(prefix, params[0]),)
        elif route == _ANALYSIS:
            keys = routes.analysis_keys(prefix, *params)
        elif route == _KEYS:
            keys = (routes.raw_key(params[0]),)
        else:
            keys = ()
        if len(self._keys) >= 65536:
            self._keys.clear()
        exchange = params[0] if route == _CANDLES else routes.exchange_of(keys[0]) if keys else ""
        policy = self._policy(keys[0]) if keys else None
        hot = len(keys) == 1
        ok_row = STATS.row(route, 200)
        resolved = self._keys[path] = _Target(route, keys, params, exchange, policy, hot, ok_row)
        return resolved

    def _policy(self, key: str) -> _Policy:
        policy = self._policies.get(key)
        if policy is None:
            if len(self._policies) >= 65536:
                self._policies.clear()
            data_type = data_type_of(key)
            fresh, window = routes.freshness_s(key), self.stale_window(data_type)
            control = cache_control(fresh, int(window))
            ages = STATS.age_row(str(data_type))
            policy = self._policies[key] = _Policy(fresh, control, window, ages)
        return policy

    async def _serve(self, target: _Target, query: str, headers: Any) -> Answer:
        route, keys = target.route, target.keys
        if not keys and route != _CANDLES:
            return await self._plain(route)
        asked = _query(query) if query else {}
        controls = [v for k, v in headers.items() if k == "cache-control"]
        header_age, max_stale = request_directives(controls) if controls else (None, None)
        limit = stricter(routes.max_age(asked.get("max_age")), header_age)
        if route == _CANDLES:
            frame = routes.timeframe(asked.get("timeframe"))
            rows = routes.candle_limit(asked.get("limit"))
            key = routes.candles_key(self.prefix, *target.params, frame)
        else:
            key = keys[0]
        policy = target.policy or self._policy(key)
        if max_stale is None and target.exchange in self.origins.failing:
            max_stale = policy.stale_s  # stale-if-error: the origin is known to be failing
        self.on_read(key)
        hit = await self.cache.get(key, max_age=limit, max_stale=max_stale)
        if hit is None:
            return await self._miss(key, limit, max_stale, rows if route == _CANDLES else None)
        if self.demand is not None:
            self.demand.seen(key, hit)  # XFetch early refresh, as on the hot path
        age = hit.age
        served(policy.ages, age)
        etag_match = headers.get("if-none-match")
        if route == _ANALYSIS:
            signals = await self.cache.get(keys[1], max_stale=max_stale)
            extra = {"signals": None if signals is None else signals.value}
            return warm_with(key, hit, policy.control, etag_match, extra=extra)
        if route == _CANDLES:
            return warm_with(key, hit, policy.control, etag_match, value=_last_rows(hit, rows))
        return self.encoder.answer(key, hit, age, policy.fresh_s, policy.control, etag_match)

    async def _miss(
        self, key: str, limit: float | None, max_stale: float | None, rows: int | None = None
    ) -> Answer:
        """The 404 to answer with: cold, or older than the client's max_age. Every miss of
        every route ends here. ``rows``: a candles read's ``limit``, applied to a demanded
        value as to a warm one."""
        if self.demand is not None and limit is None:  # cold: ask the fleet, wait for it
            found = await self.demand.miss(key)
            if isinstance(found, Answer):
                return found
            if found is not None:
                policy = self._policy(key)
                if rows is not None:
                    return warm_with(
                        key, found, policy.control, None, value=_last_rows(found, rows)
                    )
                age = found.age
                return self.encoder.answer(key, found, age, policy.fresh_s, policy.control, None)
        if limit is not None:
            older = await self.cache.get(key, max_stale=max_stale)
            if older is not None:
                detail = f"the warm value is {older.age:.1f} s old, older than max_age={limit:g}"
                age_ms = round(older.age * 1000)
                return error(404, "stale", detail, key=key, age_ms=age_ms)
        return error(404, "not_found", "no warm value for this key: it is cold or unknown", key=key)

    async def _plain(self, route: str) -> Answer:
        if route == "/metrics":
            return Answer(200, [("content-type", CONTENT_TYPE_LATEST)], generate_latest())
        if route == "/healthz":
            return json_answer(200, {"status": "ok"})
        if route == "/readyz":
            ready = await self.ready()
            return json_answer(
                200 if ready else 503, {"status": "ready" if ready else "no cache tier answers"}
            )
        return Answer(200, [("content-type", "application/json")], self._openapi)


create_app = ReaderApp


def _last_rows(hit: HitLike, limit: int) -> Any:
    """The candles value with its last ``limit`` rows (oldest first, as written)."""
    value = hit.value
    if isinstance(value, dict) and isinstance(value.get("rows"), list):
        return {**value, "rows": value["rows"][-limit:]}
    return value  # not the candles contract: answered as cached


def _failed(path: str) -> Answer:
    log.exception("reader_request_failed", path=path)
    return error(500, "internal", "the reader failed; see its log")


_QUERY_PARAMS = ("max_age", "timeframe", "limit")


def _query(query: str) -> dict[str, str]:
    """The query parameters the reader reads, each at most once (others are ignored)."""
    asked: dict[str, str] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name in _QUERY_PARAMS:
            if name in asked:
                raise routes.BadRequest(f"{name} given more than once; give it once")
            asked[name] = value
    return asked
