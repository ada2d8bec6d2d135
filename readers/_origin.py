"""A reader's view of which exchanges are failing (their poller breakers are open).

The contract (a Redis hash the pollers keep while a breaker is open) is ``topics.origin``;
the reader serves a failing exchange's keys stale-if-error (``readers._app``).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import structlog

from topics.origin import REFRESH_S, failing_now, origin_key, redis_client

log = structlog.get_logger(__name__)


class OriginWatch:
    """A reader's view of the failing exchanges: ``failing`` (a frozenset of exchange ids),
    refreshed every ``refresh_s`` by ``run()``. While Redis cannot be read, each exchange
    stays failing until its last published ``until_ms``, then counts as healthy."""

    def __init__(self, url: str, prefix: str, *, refresh_s: float = REFRESH_S) -> None:
        self.url, self.key, self.refresh_s = url, origin_key(prefix), refresh_s
        self.failing: frozenset[str] = frozenset()
        self._fields: dict[Any, Any] = {}
        self._client: Any = None
        self._broken = False

    async def refresh(self) -> frozenset[str]:
        """Read the hash once (never raises); returns the failing set now."""
        if self._client is None:
            self._client = redis_client(self.url)
        try:
            self._fields = await asyncio.wait_for(self._client.hgetall(self.key), 1.0)
        except Exception as exc:  # a Redis that is down: keep what was last published
            if not self._broken:
                log.warning("origin_state_unavailable", key=self.key, error=repr(exc)[:200])
            self._broken = True
        else:
            if self._broken:
                log.info("origin_state_available", key=self.key)
            self._broken = False
        before = self.failing
        self.failing = failing_now(self._fields, int(time.time() * 1000))
        if self.failing != before:
            log.info("origin_state_changed", failing=sorted(self.failing))
        return self.failing

    async def run(self) -> None:
        try:
            while True:
                await self.refresh()
                await asyncio.sleep(self.refresh_s)
        finally:
            await self.close()

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()
