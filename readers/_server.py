"""Serve ``ReaderApp`` with granian (RSGI, HTTP/1.1), with the reader's limits applied.

Why granian: measured on loopback against nginx in the same run (bench/bench_reader.py),
its Rust HTTP layer (hyper) answers several times faster than aiohttp's; the numbers are in
docs/reader.md. How the limits map onto it:

* ``header_timeout_s`` -> hyper's ``header_read_timeout``: the timer starts when a
  connection opens and again after each answer, so it also closes idle keep-alive sockets;
* ``max_connections`` -> granian's ``backpressure`` (a semaphore per worker, taken before
  ``accept``: past it the worker stops accepting);
* ``buffer_bytes`` -> hyper's ``max_buf_size``; ``backlog`` -> ``listen()``.

``serve`` runs the reader as a process: a granian supervisor with ``workers`` processes,
each binding the port with SO_REUSEPORT (the kernel spreads connections over them) and
building its app from ``factory``. ``running_reader`` runs one app inside the caller's
event loop (granian's embedded server) — for tests and benchmarks that hand it their cache.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import structlog

from readers._app import ReaderApp
from readers._limits import ServerOptions, usable_connections

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


def serve(options: ServerOptions, factory: str) -> None:
    """Run the reader until SIGINT/SIGTERM. ``factory`` ("module:function") builds one
    worker's ``ReaderApp``; it reads the options back with ``ServerOptions.from_env()``."""
    from granian.constants import Loops
    from granian.log import LogLevels
    from granian.server import Server

    os.environ.update(options.to_env())
    settings = granian_options(options)
    if settings["backpressure"] < options.limits.max_connections:
        log.warning(
            "reader_connection_cap_lowered",
            wanted=options.limits.max_connections,
            cap=settings["backpressure"],
            why="the file descriptor limit (ulimit -n) cannot hold more",
        )
    server = Server(
        factory,
        factory=True,
        workers=options.workers,
        loop=Loops.uvloop,
        log_level=LogLevels.warning,  # granian's own lines; the reader logs its start itself
        **settings,
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
    from granian.log import LogLevels
    from granian.server.embed import Server

    options = options or ServerOptions(port=free_port())
    if options.port == 0:
        options = ServerOptions(options.host, free_port(), 1, options.limits)
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
