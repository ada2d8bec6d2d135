"""Watch this worker's client connections: a gauge, and a log line when the cap is reached.

The cap itself is enforced by the HTTP layer (the accept loop's semaphore of the native
server, ``readers._http``; granian's per-worker connection semaphore): past it, the worker
stops accepting. The native server knows its connections, so the watcher asks it (``counter``:
a ``len``, once a second, in the loop). Granian cannot tell us, so under granian each worker
samples its own sockets (this process's TCP sockets on the reader's port) about once a
second. The sample costs time in proportion to the worker's own sockets, so when it gets
slow (a flood of connections) the watcher samples less often.

The sample runs in a thread, but a thread holding the GIL slows the event loop all the same,
and psutil's ``net_connections`` reads and parses the host's whole TCP table (every socket
of every process: ~75-125 ms per sample with 21,000 sockets on the shared test box, 1-25 ms
with 1,400). On Linux the sample instead asks this process's own sockets (``/proc/self/fd``)
for their port and peer: a few system calls per socket of the reader's, whatever else runs
on the host. psutil stays the fallback where ``/proc`` cannot be read.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Callable

import psutil
import structlog

from readers._metrics import RequestStats

log = structlog.get_logger(__name__)

_COST_SHARE = 50  # sleep at least 50x what a sample cost: <= 2 % of the loop


def client_connections(port: int) -> int:
    """TCP connections this process holds on ``port`` with a peer (accepted clients)."""
    try:
        return _from_own_sockets(port)
    except OSError:  # no Linux /proc/self/fd: psutil's portable, host-wide way
        return sum(
            1
            for conn in psutil.Process().net_connections(kind="tcp")
            if conn.raddr and conn.laddr and conn.laddr.port == port
        )


def _from_own_sockets(port: int) -> int:
    """Ask each of this process's own sockets for its local port and peer: a few system
    calls per socket of ours, whatever else runs on the host."""
    fds = "/proc/self/fd"
    mine = 0
    for name in os.listdir(fds):
        try:
            if not os.readlink(f"{fds}/{name}").startswith("socket:["):
                continue
            dup = os.dup(int(name))  # a second handle: closing it leaves the connection be
        except (OSError, ValueError):  # closed since the listing
            continue
        try:
            sock = socket.socket(fileno=dup)
        except OSError:
            os.close(dup)
            continue
        with sock:
            if sock.type != socket.SOCK_STREAM or sock.family not in _INET:
                continue
            try:
                if sock.getsockname()[1] == port:
                    sock.getpeername()  # raises for a listener (no peer)
                    mine += 1
            except OSError:
                continue
    return mine


_INET = (socket.AF_INET, socket.AF_INET6)


class ConnectionWatch:
    def __init__(
        self,
        port: int,
        cap: int,
        stats: RequestStats,
        *,
        interval_s: float = 1.0,
        counter: Callable[[], int] | None = None,
    ) -> None:
        self.port, self.cap, self.stats, self.interval_s = port, cap, stats, interval_s
        self.counter = counter  # the server's own count (native); None: sample the sockets
        self.at_cap = False
        stats.connection_cap = cap

    def sample(self) -> float:
        """Take one sample; the seconds it took."""
        started = time.perf_counter()
        try:
            open_now = self.counter() if self.counter else client_connections(self.port)
        except (psutil.Error, OSError) as exc:
            log.warning("reader_connection_sample_failed", error=repr(exc))
            return time.perf_counter() - started
        self.stats.open_connections = open_now
        if open_now >= self.cap and not self.at_cap:
            self.at_cap = True
            self.stats.cap_reached += 1
            log.warning(
                "reader_connection_cap_reached",
                open_connections=open_now,
                cap=self.cap,
                port=self.port,
                pid=psutil.Process().pid,
                effect="new connections wait in the listen backlog until one closes",
            )
        elif self.at_cap and open_now < self.cap * 0.9:
            self.at_cap = False
            log.info("reader_connection_cap_cleared", open_connections=open_now, cap=self.cap)
        return time.perf_counter() - started

    async def run(self) -> None:
        while True:
            if self.counter is not None:  # a len(): no thread, no system call
                self.sample()
                await asyncio.sleep(self.interval_s)
                continue
            cost = await asyncio.to_thread(self.sample)  # the loop keeps serving meanwhile
            await asyncio.sleep(max(self.interval_s, cost * _COST_SHARE))
