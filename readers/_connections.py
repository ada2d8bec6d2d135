"""Watch this worker's client connections: a gauge, and a log line when the cap is reached.

The cap itself is enforced by the HTTP layer (granian's per-worker connection semaphore:
past it, the worker stops accepting). It cannot tell us when that happens, so each worker
samples its own sockets (psutil: this process's TCP sockets on the reader's port) about
once a second. The sample costs time in proportion to all TCP sockets of the host, so
when it gets slow (a flood of sockets) the watcher samples less often, never spending
more than ~2 % of the loop on it.
"""

from __future__ import annotations

import asyncio
import time

import psutil
import structlog

from readers._metrics import RequestStats

log = structlog.get_logger(__name__)

_COST_SHARE = 50  # sleep at least 50x what a sample cost: <= 2 % of the loop


def client_connections(port: int) -> int:
    """TCP connections this process holds on ``port`` with a peer (accepted clients)."""
    return sum(
        1
        for conn in psutil.Process().net_connections(kind="tcp")
        if conn.raddr and conn.laddr and conn.laddr.port == port
    )


class ConnectionWatch:
    def __init__(
        self, port: int, cap: int, stats: RequestStats, *, interval_s: float = 1.0
    ) -> None:
        self.port, self.cap, self.stats, self.interval_s = port, cap, stats, interval_s
        self.at_cap = False
        stats.connection_cap = cap

    def sample(self) -> float:
        """Take one sample; the seconds it took."""
        started = time.perf_counter()
        try:
            open_now = client_connections(self.port)
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
            cost = await asyncio.to_thread(self.sample)  # the loop keeps serving meanwhile
            await asyncio.sleep(max(self.interval_s, cost * _COST_SHARE))
