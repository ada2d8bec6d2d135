"""The HTTP reader: warm data over HTTP, read through ``MultiTierCache`` (L1 -> L2 -> L3).

Every answer carries ``as_of`` (exchange time, ms), ``age_ms`` and the ``tier`` it came from,
with ``Cache-Control`` and ``ETag``; ``max_age`` (seconds) refuses older data. A client's
mistake is a 400 with a body that says what to send; a cold or unknown key is a 404.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import orjson
import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest

from readers import _routes as routes
from readers._openapi import openapi_document

log = structlog.get_logger(__name__)

REQUESTS = Counter("warmfleet_reader_requests_total", "Reader HTTP requests", ["route", "status"])
LATENCY = Histogram(
    "warmfleet_reader_request_seconds",
    "Reader HTTP request latency",
    ["route"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5),
)


class HitLike(Protocol):
    value: Any
    as_of: int
    age: float
    tier: str


class Reader(Protocol):
    """What the reader needs of a cache (``tiers.MultiTierCache`` is one)."""

    async def get(self, key: str, *, max_age: float | None = None) -> HitLike | None: ...


Probe = Callable[[], Awaitable[bool]]

CACHE_KEY: web.AppKey[Reader] = web.AppKey("cache", Reader)
PREFIX: web.AppKey[str] = web.AppKey("prefix", str)
READY: web.AppKey[Probe] = web.AppKey("ready", Probe)  # type: ignore[arg-type]
JSON = "application/json"


def _json(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(body), content_type=JSON, headers=headers)


def _not_found(key: str, detail: str) -> web.Response:
    return _json(404, {"error": "not_found", "key": key, "detail": detail})


def _etag(as_of: int) -> str:
    # a resource's value only changes with a newer as_of (writes are monotonic per key)
    return f'"{as_of:x}"'


async def _lookup(request: web.Request, key: str) -> tuple[HitLike | None, web.Response | None]:
    """The hit, or the 404 to answer with (cold, or older than the client's max_age)."""
    cache = request.app[CACHE_KEY]
    limit = routes.max_age(request.query.get("max_age"))
    hit = await cache.get(key, max_age=limit)
    if hit is not None:
        return hit, None
    if limit is not None:
        older = await cache.get(key)
        if older is not None:
            detail = f"the warm value is {older.age:.1f} s old, older than max_age={limit:g}"
            return None, _json(
                404,
                {"error": "stale", "key": key, "detail": detail, "age_ms": round(older.age * 1000)},
            )
    return None, _not_found(key, "no warm value for this key: it is cold or unknown")


def _answer(request: web.Request, key: str, hit: HitLike, extra: dict[str, Any]) -> web.Response:
    etag = _etag(hit.as_of)
    max_age = max(0, int(routes.freshness_s(key) - hit.age))
    headers = {"ETag": etag, "Cache-Control": f"public, max-age={max_age}"}
    if request.headers.get("If-None-Match") == etag:
        return web.Response(status=304, headers=headers)
    body = {
        "key": key,
        "value": hit.value,
        "as_of": hit.as_of,
        "age_ms": round(hit.age * 1000),
        "tier": hit.tier,
        **extra,
    }
    return _json(200, body, headers)


async def _serve_key(request: web.Request, key: str) -> web.Response:
    hit, miss = await _lookup(request, key)
    return miss if hit is None else _answer(request, key, hit, {})  # type: ignore[return-value]


async def ticker(request: web.Request) -> web.Response:
    m = request.match_info
    return await _serve_key(
        request, routes.ticker_key(request.app[PREFIX], m["exchange"], m["symbol"])
    )


async def overview(request: web.Request) -> web.Response:
    return await _serve_key(request, routes.overview_key(request.app[PREFIX], "all"))


async def overview_exchange(request: web.Request) -> web.Response:
    key = routes.overview_key(request.app[PREFIX], request.match_info["exchange"])
    return await _serve_key(request, key)


async def analysis(request: web.Request) -> web.Response:
    m = request.match_info
    key, signals_key = routes.analysis_keys(request.app[PREFIX], m["exchange"], m["symbol"])
    hit, miss = await _lookup(request, key)
    if hit is None:
        return miss  # type: ignore[return-value]
    signals = await request.app[CACHE_KEY].get(signals_key)
    return _answer(request, key, hit, {"signals": None if signals is None else signals.value})


async def raw(request: web.Request) -> web.Response:
    return await _serve_key(request, routes.raw_key(request.match_info["key"]))


async def metrics(request: web.Request) -> web.Response:
    return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})


async def healthz(request: web.Request) -> web.Response:
    return _json(200, {"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    ready = await request.app[READY]()
    return _json(200 if ready else 503, {"status": "ready" if ready else "no cache tier answers"})


async def openapi(request: web.Request) -> web.Response:
    return _json(200, openapi_document())


@web.middleware
async def _errors_and_metrics(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    route = request.match_info.route.resource
    name = route.canonical if route is not None else "unmatched"
    started = time.perf_counter()
    try:
        response = await handler(request)
    except routes.BadRequest as exc:
        response = _json(400, {"error": "bad_request", "detail": str(exc)})
    except web.HTTPException as exc:
        if exc.status == 404:
            response = _json(404, {"error": "not_found", "detail": f"no route for {request.path}"})
        elif exc.status == 405:
            response = _json(405, {"error": "method_not_allowed", "detail": exc.text or ""})
        else:
            raise
    except Exception:
        log.exception("reader_request_failed", path=request.path)
        response = _json(500, {"error": "internal", "detail": "the reader failed; see its log"})
    _count(name, response.status, time.perf_counter() - started)
    return response


_children: dict[tuple[str, int], tuple[Any, Any]] = {}


def _count(route: str, status: int, seconds: float) -> None:
    """Metrics with the label lookups done once per (route, status), not per request."""
    pair = _children.get((route, status))
    if pair is None:
        pair = _children[(route, status)] = (
            REQUESTS.labels(route, str(status)),
            LATENCY.labels(route),
        )
    pair[0].inc()
    pair[1].observe(seconds)


async def _always_ready() -> bool:
    return True


def create_app(
    cache: Reader, *, key_prefix: str = "virt", ready: Probe | None = None
) -> web.Application:
    app = web.Application(middlewares=[_errors_and_metrics])
    app[CACHE_KEY] = cache
    app[PREFIX] = key_prefix
    app[READY] = ready or _always_ready
    app.router.add_get("/v2/tickers/{exchange}/{symbol:.+}", ticker)
    app.router.add_get("/v2/overview", overview)
    app.router.add_get("/v2/overview/{exchange}", overview_exchange)
    app.router.add_get("/v2/analysis/{exchange}/{symbol:.+}", analysis)
    app.router.add_get("/v2/keys/{key:.+}", raw)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/openapi.json", openapi)
    return app
