"""Serve ``ReaderApp``: the native server (default) or granian, with the reader's limits.

``native`` (``readers._http``): an asyncio ``Protocol`` with httptools on uvloop, one
thread; ``granian`` (Rust, hyper) is the fallback, ``--server granian``. Why the native one is
the default, measured: docs/reader.md ("Server choice"). How the limits map onto granian:

* ``header_timeout_s`` -> hyper's ``header_read_timeout``: the timer starts when a
  connection opens and again after each answer, so it also closes idle keep-alive sockets;
* ``max_connections`` -> granian's ``backpressure`` (a semaphore per worker, taken before
  ``accept``: past it the worker stops accepting);
* ``buffer_bytes`` -> hyper's ``max_buf_size``; ``backlog`` -> ``listen()``.

(The native server applies the same four itself.) ``serve`` runs the reader as a process:
``workers`` processes, each binding the port with SO_REUSEPORT (the kernel spreads
connections over them) and building its app from ``factory`` — under a small supervisor
(``readers._workers``) for the native server, granian's own for granian. ``running_reader``
runs one app inside the caller's event loop — for tests and benchmarks that hand it their
cache.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import structlog

from readers._app import ReaderApp
from readers._http import NativeServer
from readers._limits import ServerOptions, usable_connections
from readers._workers import run_native, supervise

log = structlog.get_logger(__name__)


def granian_options(options: ServerOptions) -> dict[str, Any]:
    from granian.constants import HTTPModes, Interfaces
    from granian.http import HTTP1Settings

    limits = options.limits
    return {
        "address": options.host,
        "port": options.port,
        "interface": Interfaces.RSGI,
        "http": HTTPModes.http1,
        "websockets": False,
        "backlog": limits.backlog,
        "backpressure": usable_connections(limits.max_connections),
        "http1_settings": HTTP1Settings(
            header_read_timeout=round(limits.header_timeout_s * 1000),
            keep_alive=True,
            max_buffer_size=limits.buffer_bytes,
        ),
        "log_access": False,
    }


def serve(options: ServerOptions, factory: str) -> int:
    """Run the reader until SIGINT/SIGTERM; the exit status. ``factory`` ("module:function")
    builds one worker's ``ReaderApp``; it reads the options back with
    ``ServerOptions.from_env()``. ``options.server`` picks the HTTP layer."""
    os.environ.update(options.to_env())
    cap = usable_connections(options.limits.max_connections)
    if cap < options.limits.max_connections:
        log.warning(
            "reader_connection_cap_lowered",
            wanted=options.limits.max_connections,
            cap=cap,
            why="the file descriptor limit (ulimit -n) cannot hold more",
        )
    if options.server == "granian":
        _serve_granian(options, factory)
        return 0
    if options.workers == 1:
        return run_native(factory, options)
    return supervise(options, factory)


def _serve_granian(options: ServerOptions, factory: str) -> None:
    from granian.constants import Loops
    from granian.log import LogLevels
    from granian.server import Server

    server = Server(
        factory,
        factory=True,
        workers=options.workers,
        loop=Loops.uvloop,
        log_level=LogLevels.warning,  # granian's own lines; the reader logs its start itself
        **granian_options(options),
    )
    server.serve()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _wait_listening(host: str, port: int, task: asyncio.Task[None]) -> None:
    for _ in range(200):
        if task.done():
            task.result()  # raises why the server stopped
            raise RuntimeError("the reader stopped before it listened")
        try:
            _, writer = await asyncio.open_connection(host, port)
        except OSError:
            await asyncio.sleep(0.02)
            continue
        writer.close()
        await writer.wait_closed()
        return
    raise TimeoutError(f"the reader does not listen on {host}:{port}")


@asynccontextmanager
async def running_reader(
    app: ReaderApp, options: ServerOptions | None = None
) -> AsyncIterator[str]:
    """Serve ``app`` in this event loop (one worker); yields its base URL."""
    options = options or ServerOptions(port=free_port())
    if options.port == 0:
        options = replace(options, port=free_port(), workers=1)
    if options.server == "granian":
        async with _running_granian(app, options) as url:
            yield url
        return
    server = NativeServer(app, options.host, options.port, options.limits)
    await server.start()
    try:
        yield f"http://{options.host}:{server.port}"
    finally:
        await server.stop()
        app.__rsgi_del__(asyncio.get_running_loop())


@asynccontextmanager
async def _running_granian(app: ReaderApp, options: ServerOptions) -> AsyncIterator[str]:
    from granian.log import LogLevels
    from granian.server.embed import Server

    server = Server(app, log_level=LogLevels.error, **granian_options(options))
    task = asyncio.create_task(server.serve())
    try:
        await _wait_listening(options.host, options.port, task)
        yield f"http://{options.host}:{options.port}"
    finally:
        server.stop()  # type: ignore[no-untyped-call]
        try:
            await asyncio.wait_for(task, 10)
        except TimeoutError:
            task.cancel()
