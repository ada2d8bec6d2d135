"""The HTTP reader: warm data over HTTP, read through ``MultiTierCache`` (L1 -> L2 -> L3).

Every answer carries ``as_of`` (exchange time, ms), ``age_ms`` and the ``tier`` it came from,
with ``Cache-Control`` and ``ETag``; ``max_age`` (seconds) refuses older data. A client's
mistake is a 4xx with a JSON body that says what to send; a cold or unknown key is a 404.

``ReaderApp`` is an RSGI application (granian's native interface: the request arrives as a
scope with the path already parsed, the answer leaves as one bytes object), served by
``readers._server``. Routing is a few string tests, memoised per path.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Protocol
from urllib.parse import parse_qsl

import orjson
import structlog
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from readers import _routes as routes
from readers._answers import Answer, HitLike, WarmEncoder, error, json_answer, warm_with
from readers._connections import ConnectionWatch
from readers._demand import ReaderDemand
from readers._limits import ReaderLimits, usable_connections
from readers._metrics import STATS
from readers._openapi import openapi_document
from topics import KEY_PREFIX

log = structlog.get_logger(__name__)

Probe = Callable[[], Awaitable[bool]]
ALLOW = "GET, HEAD"
_perf = time.perf_counter


class Reader(Protocol):
    """What the reader needs of a cache (``tiers.MultiTierCache`` is one)."""

    async def get(self, key: str, *, max_age: float | None = None) -> HitLike | None: ...


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
_OVERVIEW_EX = "/v2/overview/{exchange}"
_ANALYSIS = "/v2/analysis/{exchange}/{symbol}"
_KEYS = "/v2/keys/{key}"


def _route(path: str) -> tuple[str, tuple[str, ...]] | None:
    """(route name, its path parameters), or None when no route has this path."""
    name = _FIXED.get(path)
    if name is not None:
        return name, ()
    for prefix, name in (("/v2/tickers/", _TICKER), ("/v2/analysis/", _ANALYSIS)):
        if path.startswith(prefix):
            exchange, sep, sym = path[len(prefix) :].partition("/")
            return (name, (exchange, sym)) if exchange and sep and sym else None
    if path.startswith("/v2/overview/"):
        exchange = path[13:]
        return (_OVERVIEW_EX, (exchange,)) if exchange and "/" not in exchange else None
    if path.startswith("/v2/keys/") and len(path) > 9:
        return _KEYS, (path[9:],)
    return None


def _header_bytes(headers: Any) -> int:
    return sum(len(name) + len(value) + 4 for name, value in headers.items())


async def _always_ready() -> bool:
    return True


class ReaderApp:
    """The reader as an RSGI app. ``on_close`` runs when the worker stops (closing the cache
    the worker opened); ``watch_port`` turns on the connection watcher for that port."""

    def __init__(
        self,
        cache: Reader,
        *,
        key_prefix: str = KEY_PREFIX,
        ready: Probe | None = None,
        limits: ReaderLimits | None = None,
        watch_port: int | None = None,
        on_close: Callable[[], Coroutine[Any, Any, None]] | None = None,
        demand: ReaderDemand | None = None,
    ) -> None:
        self.cache = cache
        self.demand = demand  # None: a cold key is a plain 404 (docs/demand.md)
        self.prefix = key_prefix
        self.ready = ready or _always_ready
        self.limits = limits or ReaderLimits()
        self.watch_port = watch_port
        self.on_close = on_close
        self.encoder = WarmEncoder()
        # path -> (route, cache keys, freshness s if the hot path may answer it, else 0)
        self._keys: dict[str, tuple[str, tuple[str, ...], int]] = {}
        self._openapi = orjson.dumps(openapi_document())
        self._watch: asyncio.Task[None] | None = None

    # ---- RSGI -----------------------------------------------------------------------

    def __rsgi_init__(self, loop: asyncio.AbstractEventLoop) -> None:
        # what exists at start (modules, the app, the cache's structures) lives for the
        # worker's life: out of the collector's generations, full collections stay short
        gc.freeze()
        if self.watch_port is not None:
            cap = usable_connections(self.limits.max_connections)  # what granian was given
            watch = ConnectionWatch(self.watch_port, cap, STATS)
            self._watch = loop.create_task(watch.run())

    def __rsgi_del__(self, loop: asyncio.AbstractEventLoop) -> None:
        log.info("reader_stopping")
        if self._watch is not None:
            self._watch.cancel()
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
        # the hot path: a known single-key GET without a query, answered from the cache
        if known is not None and known[2] and scope.method == "GET" and not scope.query_string:
            headers = scope.headers
            if _header_bytes(headers) <= self.limits.max_header_bytes:
                route, keys, fresh = known
                try:
                    hit = await self.cache.get(keys[0])
                    if hit is not None:
                        if self.demand is not None:
                            self.demand.seen(keys[0], hit)  # XFetch early refresh
                        answer = self.encoder.answer(
                            keys[0], hit, fresh, headers.get("if-none-match")
                        )
                    else:
                        answer = await self._miss(keys[0], None)
                except Exception:
                    answer = _failed(path)
                proto.response_bytes(*answer)
                STATS.record(route, answer.status, _perf() - started)
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
            route = known[0]
        if method != "GET" and method != "HEAD":
            detail = f"{method} is not allowed here; use GET"
            answer = error(405, "method_not_allowed", detail)
            answer.headers.append(("allow", ALLOW))
            return route, answer
        try:
            if known is None:
                known = self._resolve(path, *found)  # type: ignore[misc]
            return route, await self._serve(route, known[1], query, headers)
        except routes.BadRequest as exc:
            return route, error(400, "bad_request", str(exc))
        except Exception:
            return route, _failed(path)

    def _resolve(
        self, path: str, route: str, params: tuple[str, ...]
    ) -> tuple[str, tuple[str, ...], int]:
        """Path parameters -> cache keys (raises BadRequest), remembered per path."""
        prefix = self.prefix
        if route == _TICKER:
            keys: tuple[str, ...] = (routes.ticker_key(prefix, *params),)
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
        fresh = routes.freshness_s(keys[0]) if len(keys) == 1 else 0
        resolved = self._keys[path] = (route, keys, fresh)
        return resolved

    async def _serve(self, route: str, keys: tuple[str, ...], query: str, headers: Any) -> Answer:
        if not keys:
            return await self._plain(route)
        key = keys[0]
        limit = _max_age(query) if query else None
        hit = await self.cache.get(key, max_age=limit)
        if hit is None:
            return await self._miss(key, limit)
        fresh = routes.freshness_s(key)
        if route == _ANALYSIS:
            signals = await self.cache.get(keys[1])
            extra = {"signals": None if signals is None else signals.value}
            return warm_with(key, hit, fresh, headers.get("if-none-match"), extra)
        return self.encoder.answer(key, hit, fresh, headers.get("if-none-match"))

    async def _miss(self, key: str, limit: float | None) -> Answer:
        """The 404 to answer with: cold, or older than the client's max_age."""
        if self.demand is not None and limit is None:  # cold: ask the fleet, wait for it
            found = await self.demand.miss(key)
            if isinstance(found, Answer):
                return found
            if found is not None:
                return self.encoder.answer(key, found, routes.freshness_s(key), None)
        if limit is not None:
            older = await self.cache.get(key)
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


def _failed(path: str) -> Answer:
    log.exception("reader_request_failed", path=path)
    return error(500, "internal", "the reader failed; see its log")


def _max_age(query: str) -> float | None:
    given = [value for name, value in parse_qsl(query, keep_blank_values=True) if name == "max_age"]
    if len(given) > 1:
        raise routes.BadRequest(f"max_age given {len(given)} times; give it once")
    return routes.max_age(given[0]) if given else None


def create_app(
    cache: Reader,
    *,
    key_prefix: str = KEY_PREFIX,
    ready: Probe | None = None,
    limits: ReaderLimits | None = None,
    watch_port: int | None = None,
    on_close: Callable[[], Coroutine[Any, Any, None]] | None = None,
    demand: ReaderDemand | None = None,
) -> ReaderApp:
    return ReaderApp(
        cache,
        key_prefix=key_prefix,
        ready=ready,
        limits=limits,
        watch_port=watch_port,
        on_close=on_close,
        demand=demand,
    )
