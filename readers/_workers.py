"""The native server as processes: one worker in this process, or N under a supervisor.

``run_native`` is one worker: its event loop (uvloop), its app built from the factory, the
server until SIGTERM/SIGINT, then a bounded drain and ``__rsgi_del__`` (which closes the
cache). ``supervise`` starts N of them, each binding the port with SO_REUSEPORT, forwards
SIGTERM/SIGINT to them, and when one dies unexpectedly says which, stops the others and
exits non-zero (an orchestrator restarts the whole reader; a half-dead one would keep taking
a share of the connections it cannot serve).

The workers start listening together: each builds its app, says so on a pipe, and binds only
when the supervisor has heard from all of them and writes "go" to its stdin — so the first
answer means every worker serves (a worker still importing cannot take connections it would
leave in its backlog).
"""

from __future__ import annotations

import asyncio
import importlib
import os
import select
import signal
import subprocess
import sys
import time
from typing import Any

import structlog

from readers._http import App, NativeServer, new_event_loop
from readers._limits import ServerOptions

log = structlog.get_logger(__name__)

STOP_GRACE_S = 10.0  # in-flight answers get this long after SIGTERM; then connections abort
START_S = 120.0  # every worker must have built its app within this


def load_factory(factory: str) -> Any:
    module, _, name = factory.partition(":")
    return getattr(importlib.import_module(module), name)


def run_native(
    factory: str, options: ServerOptions, *, reuse_port: bool = False, ready_fd: int = -1
) -> int:
    """One worker, until SIGTERM/SIGINT; the exit status. Under the supervisor
    (``ready_fd``): report the app built, bind when stdin says "go"."""
    loop = new_event_loop()
    asyncio.set_event_loop(loop)
    app: App | None = None
    try:
        app = load_factory(factory)()
        if ready_fd >= 0:
            os.write(ready_fd, b"1")
            os.close(ready_fd)
            if sys.stdin.readline().strip() != "go":
                return 1  # the supervisor went away before all workers were built
        server = NativeServer(
            app, options.host, options.port, options.limits, reuse_port=reuse_port
        )
        loop.run_until_complete(_until_signalled(server))
        return 0
    finally:
        if app is not None:
            app.__rsgi_del__(loop)  # the loop is stopped: it runs on_close to the end
        loop.close()


async def _until_signalled(server: NativeServer) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await server.start()
    await stop.wait()
    log.info("reader_draining", connections=server.open_connections(), grace_s=STOP_GRACE_S)
    await server.stop(STOP_GRACE_S)


def supervise(options: ServerOptions, factory: str) -> int:
    """``options.workers`` worker processes (the options travel in the environment, set by
    ``serve``); the exit status: 0 after SIGTERM/SIGINT, 1 if a worker died on its own."""
    read_fd, write_fd = os.pipe()
    main = "import sys; from readers._workers import worker_main; sys.exit(worker_main())"
    cmd = [sys.executable, "-c", main, factory, str(write_fd)]
    procs = [
        subprocess.Popen(cmd, stdin=subprocess.PIPE, pass_fds=(write_fd,))
        for _ in range(options.workers)
    ]
    os.close(write_fd)
    signalled: list[int] = []

    def forward(sig: int, _frame: object) -> None:
        signalled.append(sig)
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(sig)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, forward)
    log.info("reader_supervising", workers=[p.pid for p in procs], port=options.port)
    built, deadline = 0, time.monotonic() + START_S
    try:
        while not signalled:
            died = _died(procs)
            if died is not None:
                forward(signal.SIGTERM, None)
                _reap(procs)
                return 1
            if built < len(procs):
                if time.monotonic() > deadline:
                    log.error("reader_workers_not_built", built=built, workers=len(procs))
                    forward(signal.SIGTERM, None)
                    _reap(procs)
                    return 1
                if select.select([read_fd], [], [], 0.2)[0]:
                    built += len(os.read(read_fd, 256))
                    if built >= len(procs):
                        _go(procs)
                continue
            time.sleep(0.2)
    finally:
        os.close(read_fd)
    _reap(procs)
    return 0


def _died(procs: list[subprocess.Popen[bytes]]) -> int | None:
    """The index of a worker that exited (logged), or None."""
    for index, proc in enumerate(procs):
        code = proc.poll()
        if code is not None:
            log.error(
                "reader_worker_died",
                worker=index,
                pid=proc.pid,
                returncode=code,
                effect="stopping the other workers; the reader exits 1",
            )
            return index
    return None


def _go(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        assert proc.stdin is not None
        try:
            proc.stdin.write(b"go\n")
            proc.stdin.close()
        except OSError:
            pass  # it died meanwhile: the next poll says so


def _reap(procs: list[subprocess.Popen[bytes]]) -> None:
    deadline = time.monotonic() + STOP_GRACE_S + 5
    for proc in procs:
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.warning("reader_worker_killed", pid=proc.pid, why="it did not stop in time")
            proc.kill()
            proc.wait()


def worker_main() -> int:
    """A worker process under ``supervise``: argv is [-c, FACTORY, READY_FD]."""
    options = ServerOptions.from_env()
    if options is None or len(sys.argv) != 3:
        print("a reader worker needs WARMFLEET_READER_SERVER and: FACTORY READY_FD")
        return 2
    return run_native(sys.argv[1], options, reuse_port=True, ready_fd=int(sys.argv[2]))
