"""Publish each exchange's poller breaker state where the readers see it (stale-if-error).

While an exchange's breaker is open (or half-open: a probe is out, nothing proven yet) its
field in the Redis hash ``topics.origin.origin_key(prefix)`` says so, rewritten every
second with ``until_ms`` ``HOLD_S`` ahead; when the breaker closes the field is deleted.
The contract is ``topics.origin``, the reader's side ``readers.OriginWatch``: the reader
then serves the last good copy of that exchange's keys, flagged ``stale``, not a 404.

The publisher starts when a breaker opens (``opened``, called by ``ExchangePoller``) and
stops once every breaker it tracked is closed and its field deleted, so a healthy poller
runs no task and opens no Redis connection. Redis and the key prefix come from the usual
``WARMFLEET_REDIS_URL`` / ``WARMFLEET_KEY_PREFIX``. A Redis that cannot be written is
logged once per episode and counted in ``warmfleet_poller_origin_publish_failures_total``;
the poller never waits on it (each write has a 1 s deadline, in the publisher's own task).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import structlog
from prometheus_client import Counter

from tiers import CircuitBreaker
from topics import ConfigError
from topics.origin import HOLD_S, REFRESH_S, encode_state, origin_key, redis_client
from workers.settings import Settings

log = structlog.get_logger(__name__)

PUBLISH_FAILURES = Counter(
    "warmfleet_poller_origin_publish_failures",
    "Writes of an exchange's breaker state to Redis that failed (readers may not see it)",
)


class OriginPublisher:
    """One per event loop: the breakers it watches and the fields it has published."""

    def __init__(
        self, url: str, prefix: str, *, refresh_s: float = REFRESH_S, hold_s: float = HOLD_S
    ) -> None:
        self.url, self.key = url, origin_key(prefix)
        self.refresh_s, self.hold_s = refresh_s, hold_s
        self.breakers: dict[str, CircuitBreaker] = {}
        self.since_ms: dict[str, int] = {}  # exchange -> wall time its field was first set
        self.task: asyncio.Task[None] | None = None
        self._client: Any = None
        self._failing = False

    def watch(self, exchange: str, breaker: CircuitBreaker) -> None:
        self.breakers[exchange] = breaker
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(
                self.run(), name="origin-state-publisher"
            )

    async def publish_once(self) -> None:
        """Open breakers -> their fields (refreshed); closed or forgotten ones -> deleted."""
        now = int(time.time() * 1000)
        until = now + int(self.hold_s * 1000)
        opened = {ex: b for ex, b in self.breakers.items() if b.is_open}
        gone = [ex for ex in self.since_ms if ex not in opened]
        if self._client is None:
            self._client = redis_client(self.url)
        try:
            async with asyncio.timeout(1.0):
                pipe = self._client.pipeline(transaction=False)
                for exchange, breaker in opened.items():
                    since = self.since_ms.get(exchange, now)
                    state = encode_state(str(breaker.state), since, until, breaker.failures)
                    pipe.hset(self.key, exchange, state)
                if opened:
                    pipe.pexpire(self.key, int(self.hold_s * 1000))
                if gone:
                    pipe.hdel(self.key, *gone)
                await pipe.execute()
        except Exception as exc:  # readers then stop seeing the state within HOLD_S
            PUBLISH_FAILURES.inc()
            if not self._failing:
                log.warning("origin_state_publish_failed", key=self.key, error=repr(exc)[:200])
            self._failing = True
            return
        if self._failing:
            log.info("origin_state_published_again", key=self.key)
        self._failing = False
        for exchange in opened:
            if exchange not in self.since_ms:
                self.since_ms[exchange] = now
                log.info("origin_state_open_published", exchange=exchange, key=self.key)
        for exchange in gone:
            del self.since_ms[exchange]
            log.info("origin_state_cleared", exchange=exchange, key=self.key)
        for exchange in [ex for ex, b in self.breakers.items() if not b.is_open]:
            del self.breakers[exchange]  # closed: watched again when it next opens

    async def run(self) -> None:
        try:
            while True:
                await self.publish_once()
                if not self.breakers and not self.since_ms:
                    return
                await asyncio.sleep(self.refresh_s)
        finally:
            client, self._client = self._client, None
            if client is not None:
                await client.aclose()


_publishers: dict[asyncio.AbstractEventLoop, OriginPublisher] = {}


def _publisher() -> OriginPublisher | None:
    loop = asyncio.get_running_loop()
    publisher = _publishers.get(loop)
    if publisher is None:
        for old in [lp for lp in _publishers if lp.is_closed()]:
            del _publishers[old]
        try:
            settings = Settings.from_env()
        except ConfigError as exc:  # the process would not have started; keep polling
            log.error("origin_state_not_published", problem=str(exc))
            return None
        publisher = _publishers[loop] = OriginPublisher(settings.redis_url, settings.key_prefix)
    return publisher


def opened(exchange: str, breaker: CircuitBreaker) -> None:
    """``exchange``'s breaker just opened: publish it while it stays open."""
    try:
        publisher = _publisher()
    except RuntimeError:  # no running loop (a synchronous caller): nobody to tell
        return
    if publisher is not None:
        publisher.watch(exchange, breaker)


def forget(exchange: str) -> None:
    """The poller of ``exchange`` stops: its field goes at the next round."""
    try:
        publisher = _publishers.get(asyncio.get_running_loop())
    except RuntimeError:
        return
    if publisher is not None:
        publisher.breakers.pop(exchange, None)
