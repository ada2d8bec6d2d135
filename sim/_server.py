"""The simulator's HTTP server: both venues, fault injection, admin and metrics on one port.

``create_app`` builds the aiohttp application; ``running_simulator`` serves it on a free
loopback port for a test or a benchmark and yields its base URL.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from sim import _binance, _okx
from sim._faults import KINDS, FaultError, make_fault
from sim._market import DEFAULT_SYMBOLS, default_pairs
from sim._state import SIM, Clock, Simulator

HOST = "127.0.0.1"
DEFAULT_PORT = 8899
#: how long a ``timeout`` fault holds a request before giving up on the client leaving
TIMEOUT_HOLD_S = 300.0

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _venue(path: str) -> tuple[str, Any] | None:
    if path.startswith(_binance.PREFIX + "/"):
        return "binance", _binance
    if path.startswith(_okx.PREFIX + "/"):
        return "okx", _okx
    return None


async def _hold_until_client_leaves(request: web.Request, limit_s: float) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        transport = request.transport
        if transport is None or transport.is_closing():
            return
        await asyncio.sleep(0.05)


@web.middleware
async def faults_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Counts every venue request and applies the fault (if any) it draws."""
    sim: Simulator = request.app[SIM]
    venue = _venue(request.path)
    if venue is None:
        return await handler(request)
    name, module = venue
    sim.total_requests += 1
    endpoint = request.path if request.match_info.http_exception is None else "other"
    fault = sim.faults.draw(request.path)
    response: web.StreamResponse
    if sim.latency_s > 0:
        await asyncio.sleep(sim.response_delay())
    if fault is not None:
        sim.faults_fired.labels(fault.kind).inc()
    if fault is not None and fault.kind in ("429", "418", "500", "503"):
        response = module.fault_response(fault.kind, fault.retry_after_s, sim.now_ms())
    elif fault is not None and fault.kind == "timeout":
        await _hold_until_client_leaves(request, TIMEOUT_HOLD_S)
        response = web.Response(status=504, text="Gateway Timeout")
    else:
        if fault is not None and fault.kind == "slow":
            await asyncio.sleep(fault.delay_s)
        try:
            response = await handler(request)
        except web.HTTPException as exc:  # venue errors are raised as HTTP exceptions
            response = web.Response(status=exc.status, text=exc.text, content_type=exc.content_type)
        if fault is not None and fault.kind in ("truncated", "empty"):
            body = response.body if isinstance(response, web.Response) else b""
            raw = body if isinstance(body, bytes) else b""
            cut = raw[: len(raw) // 2] if fault.kind == "truncated" else b""
            response = web.Response(status=200, body=cut, content_type="application/json")
    sim.requests.labels(name, endpoint, str(response.status)).inc()
    return response


async def admin_faults(request: web.Request) -> web.Response:
    sim: Simulator = request.app[SIM]
    if request.method == "POST":
        try:
            spec = await request.json()
            fault = sim.faults.add(make_fault(spec), sim.now_ms())
        except (FaultError, ValueError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response(fault.as_dict(), status=201)
    if request.method == "DELETE":
        endpoint = request.query.get("endpoint")
        try:
            removed = sim.faults.clear(endpoint)
        except FaultError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response({"removed": removed})
    return web.json_response({"faults": [f.as_dict() for f in sim.faults.list()], "kinds": KINDS})


async def admin_state(request: web.Request) -> web.Response:
    sim: Simulator = request.app[SIM]
    now = sim.now_ms()
    return web.json_response({
        "seed": sim.seed,
        "speed": sim.speed,
        "now_ms": now,
        "origin_ms": sim.origin_ms,
        "regime": sim.model.regime(now),
        "symbols": [p.symbol for p in sim.model.pairs if p.trading],
        "halted": [p.symbol for p in sim.model.pairs if not p.trading],
        "requests": sim.total_requests,
        "latency_ms": sim.latency_s * 1000,
        "jitter_ms": sim.jitter_s * 1000,
        "faults": [f.as_dict() for f in sim.faults.list()],
    })  # fmt: skip


async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[SIM].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def create_app(
    seed: int = 7,
    symbols: int = DEFAULT_SYMBOLS,
    speed: float = 1.0,
    *,
    origin_ms: int | None = None,
    clock: Clock = time.monotonic,
    latency_s: float = 0.0,
    jitter_s: float = 0.0,
) -> web.Application:
    """The simulator as an aiohttp app: Binance ``/api/v3``, OKX ``/api/v5``, ``/admin``
    and ``/metrics``. ``symbols`` trading pairs (plus one halted pair). Every venue request
    is held ``latency_s`` (± ``jitter_s``) before it is answered."""
    sim = Simulator(
        seed, default_pairs(symbols), speed, origin_ms=origin_ms, clock=clock,
        latency_s=latency_s, jitter_s=jitter_s,
    )  # fmt: skip
    app = web.Application(middlewares=[faults_middleware])
    app[SIM] = sim
    _binance.add_routes(app)
    _okx.add_routes(app)
    app.router.add_route("*", "/admin/faults", admin_faults)
    app.router.add_get("/admin/state", admin_state)
    app.router.add_get("/metrics", metrics)
    return app


@dataclass(frozen=True)
class RunningSimulator:
    url: str  # http://127.0.0.1:PORT
    port: int
    simulator: Simulator

    @property
    def binance_url(self) -> str:
        return self.url

    @property
    def okx_url(self) -> str:
        return self.url


@contextlib.asynccontextmanager
async def running_simulator(
    seed: int = 7,
    symbols: int = DEFAULT_SYMBOLS,
    speed: float = 1.0,
    *,
    port: int = 0,
    origin_ms: int | None = None,
    clock: Clock = time.monotonic,
    latency_s: float = 0.0,
    jitter_s: float = 0.0,
) -> AsyncIterator[RunningSimulator]:
    """Serve a simulator on ``127.0.0.1:port`` (0: a free port) for the ``async with``."""
    app = create_app(
        seed, symbols, speed, origin_ms=origin_ms, clock=clock, latency_s=latency_s,
        jitter_s=jitter_s,
    )  # fmt: skip
    app[SIM].warm_up()
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, HOST, port)
        await site.start()
        server = site._server
        assert server is not None
        sockets = getattr(server, "sockets", None) or []
        bound = sockets[0].getsockname()[1] if sockets else port
        yield RunningSimulator(f"http://{HOST}:{bound}", bound, app[SIM])
    finally:
        await runner.cleanup()
