"""Coherence: this process's L1 against writes and deletes made by others, over a ``Bus``.

* ``announce`` sends one payload per batch: the keys and their ``as_of`` (or ``DROPPED``).
* The listener applies what others announce: an L1 copy older than the announced ``as_of``
  (or any copy of a dropped key) goes, and lookups in flight for it promote nothing older.
* A lost subscription means announcements were missed: the L1 is cleared when the bus
  comes back, since any entry in it may have been overwritten meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable, Sequence

import structlog

from tiers._breaker import CircuitBreaker
from tiers._bus import Bus, Subscription, decode_message, encode_message
from tiers._errors import CacheError
from tiers._memory import MemoryTier

log = structlog.get_logger(__name__)


class Coherence:
    def __init__(
        self,
        bus: Bus,
        l1: MemoryTier | None,
        *,
        on_change: Callable[[str, int], None],
        publish_timeout_s: float = 1.0,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        self.bus = bus
        self.l1 = l1
        self.id = uuid.uuid4().hex[:12]
        self.publish_timeout_s = publish_timeout_s
        self.breaker = breaker or CircuitBreaker("bus", failure_threshold=3, cooldown_s=1.0)
        self.invalidations = 0  # L1 entries dropped because of others' announcements
        self.published = 0
        self.publish_errors = 0
        self.bad_messages = 0
        self.subscribed = asyncio.Event()
        self._on_change = on_change
        self._listener: asyncio.Task[None] | None = None
        self._closed = False

    # ---- sending --------------------------------------------------------------------

    async def announce(self, entries: Sequence[tuple[str, int]]) -> bool:
        """Tell every other cache that these keys now hold these ``as_of``; False if the
        message could not be sent (counted and logged; the writes themselves stand)."""
        if not entries or not self.breaker.allow():
            return False
        payload = encode_message(self.id, entries)
        try:
            async with asyncio.timeout(self.publish_timeout_s):
                await self.bus.publish(payload)
        except (CacheError, TimeoutError) as exc:
            self.publish_errors += 1
            self.breaker.failure(type(exc).__name__)
            log.debug("bus_publish_failed", bus=self.bus.name, keys=len(entries), error=str(exc))
            return False
        except BaseException:
            self.breaker.abandon()
            raise
        self.breaker.success()
        self.published += 1
        return True

    # ---- receiving ------------------------------------------------------------------

    def start(self) -> None:
        """Start listening (once; only a cache with an L1 has anything to keep coherent)."""
        if self._listener is None and not self._closed and self.l1 is not None:
            self._listener = asyncio.get_running_loop().create_task(self._listen())

    @property
    def listening(self) -> bool:
        return self._listener is not None

    async def wait_subscribed(self, wait_s: float) -> bool:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait_s):
                await self.subscribed.wait()
        return self.subscribed.is_set()

    def deliver(self, payload: bytes) -> None:
        """Apply one payload from the bus to the L1."""
        assert self.l1 is not None
        try:
            sender, entries = decode_message(payload)
        except (ValueError, UnicodeDecodeError):
            self.bad_messages += 1
            log.warning("bus_message_unreadable", bus=self.bus.name, head=payload[:60])
            return
        if sender == self.id:
            return
        drop = self.l1.drop_older
        for key, as_of in entries:
            if drop(key, as_of):
                self.invalidations += 1
            self._on_change(key, as_of)

    async def _listen(self) -> None:
        backoff, lost = 0.1, False
        while not self._closed:
            subscription: Subscription | None = None
            try:
                subscription = await self.bus.subscribe()
                if lost:
                    self._resumed()
                    lost = False
                self.subscribed.set()
                backoff = 0.1
                while True:
                    payload = await subscription.next(timeout_s=1.0)
                    if payload is not None:
                        self.deliver(payload)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # CacheUnavailable, or a bug: never end the listener
                if not lost:
                    log.warning("invalidation_listener_lost", bus=self.bus.name,
                                error=type(exc).__name__)  # fmt: skip
                lost = True
                self.subscribed.clear()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
            finally:
                if subscription is not None:
                    with contextlib.suppress(Exception):
                        async with asyncio.timeout(1.0):
                            await subscription.close()

    def _resumed(self) -> None:
        assert self.l1 is not None
        # announcements published while we were away were missed: start L1 afresh
        log.warning("l1_cleared_after_resubscribe", entries=len(self.l1))
        self.l1.clear()

    async def close(self) -> None:
        self._closed = True
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                async with asyncio.timeout(2.0):
                    await self._listener
        with contextlib.suppress(CacheError, TimeoutError):
            async with asyncio.timeout(2.0):
                await self.bus.close()
