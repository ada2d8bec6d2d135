"""Coherence: this process's L1 against writes and deletes made by others, over a ``Bus``.

* ``announce`` sends one payload per batch: the keys and their ``as_of`` (or ``DROPPED``).
  A payload that could not be sent (the bus failed, or its breaker is open) is not lost:
  its keys are kept (newest announcement per key) and re-sent — carried in the next
  batch's message, and by a background re-sender with a short backoff — until sent or
  ``resend_for_s`` old (by then every L1 copy older than the write has expired; an L1
  never holds a copy longer than its maximum TTL), at most ``MAX_UNSENT_KEYS`` keys.
* The listener applies what others announce: an L1 copy older than the announced ``as_of``
  (or any copy of a dropped key) goes, and lookups in flight for it promote nothing older.
* A lost subscription means announcements are being missed: from the moment it is lost
  until the bus is back, the L1 is not trusted — emptied and refusing entries, so reads
  go to the shared tiers — and it starts afresh once resubscribed.
* Until the first subscription, the L1 is trusted as it fills (it starts empty; a miss
  in those first milliseconds can at worst serve a copy one L1 TTL old).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
import uuid
from collections.abc import Callable, Sequence

import structlog

from tiers._breaker import CircuitBreaker
from tiers._bus import Bus, Subscription, decode_message, encode_message
from tiers._errors import CacheError
from tiers._memory import MemoryTier
from tiers._waiters import Waiters
from topics.tasks import cancel_and_wait

log = structlog.get_logger(__name__)

#: keys per bus message: a 2,000-write batch is two messages of ~70 KB, not 2,000 messages
MAX_KEYS_PER_MESSAGE = 1000
#: keys kept for re-sending while the bus is down; beyond it the oldest are given up
MAX_UNSENT_KEYS = 100_000
#: the re-sender's first wait and its longest (below the bus breaker's usual cooldown)
RESEND_BACKOFF_S = (0.02, 0.5)


class Coherence:
    def __init__(
        self,
        bus: Bus,
        l1: MemoryTier | None,
        *,
        on_change: Callable[[str, int], None],
        publish_timeout_s: float = 1.0,
        breaker: CircuitBreaker | None = None,
        resend_for_s: float = 60.0,
    ) -> None:
        self.bus = bus
        self.l1 = l1
        self.id = uuid.uuid4().hex[:12]
        self._own_head = encode_message(self.id, [])  # b"wf2 <id>\n"
        self.publish_timeout_s = publish_timeout_s
        self.breaker = breaker or CircuitBreaker("bus", failure_threshold=3, cooldown_s=1.0)
        self.invalidations = 0  # L1 entries dropped because of others' announcements
        self.published = 0
        self.publish_errors = 0
        self.publish_skipped = 0
        self.bad_messages = 0
        self.resent = 0  # messages that carried keys whose first announcement failed
        self.unsent_given_up = 0  # keys never announced (too old, or too many kept)
        self.resend_for_s = resend_for_s
        # key -> as_of of announcements not sent yet (insertion order: oldest first), and
        # when the oldest of them first failed
        self._unsent: dict[str, int] = {}
        self._unsent_since = 0.0
        self._resender: asyncio.Task[None] | None = None
        self.suspensions = 0  # times the L1 was set aside because the bus was lost
        self.subscribed = asyncio.Event()
        self._on_change = on_change
        self.waiters = Waiters()  # readers waiting for a key to be written (demand path)
        self._listener: asyncio.Task[None] | None = None
        self._closed = False

    # ---- sending --------------------------------------------------------------------

    async def announce(self, entries: Sequence[tuple[str, int]]) -> bool:
        """Tell every other cache that these keys now hold these ``as_of`` (one message per
        ``MAX_KEYS_PER_MESSAGE``, carrying any keys whose announcement failed before);
        False if it could not all be sent now — those keys are then re-sent in the
        background (the writes themselves stand)."""
        if not entries:
            return False
        if self._unsent:
            # coalesce: the keys still owed ride in this batch's message(s); a key's newest
            # announcement wins (a later write, or a delete after a write)
            owed = self._take_unsent()
            owed.update(entries)
            entries = list(owed.items())
            self.resent += 1
        return await self._send(entries)

    async def _send(self, entries: Sequence[tuple[str, int]]) -> bool:
        ok = True
        for start in range(0, len(entries), MAX_KEYS_PER_MESSAGE):
            chunk = entries[start : start + MAX_KEYS_PER_MESSAGE]
            if not await self._publish(chunk):
                ok = False
                self._owe(chunk)
        return ok

    def _take_unsent(self) -> dict[str, int]:
        owed, self._unsent = self._unsent, {}
        return owed

    def _owe(self, entries: Sequence[tuple[str, int]]) -> None:
        """Keep keys whose announcement failed, for the re-sender."""
        if not self._unsent:
            self._unsent_since = time.monotonic()
        for key, as_of in entries:
            self._unsent.pop(key, None)  # re-inserted last: it is the newest now
            self._unsent[key] = as_of
        over = len(self._unsent) - MAX_UNSENT_KEYS
        if over > 0:
            for key in list(itertools.islice(self._unsent, over)):
                del self._unsent[key]
            self._give_up(over, "too_many")
        if not self._closed and (self._resender is None or self._resender.done()):
            self._resender = asyncio.get_running_loop().create_task(self._resend())

    def _give_up(self, keys: int, reason: str) -> None:
        self.unsent_given_up += keys
        log.warning("bus_announcements_given_up", bus=self.bus.name, keys=keys, reason=reason)

    async def _resend(self) -> None:
        """Re-send what failed, with a short backoff, until sent, given up, or closed."""
        backoff, longest = RESEND_BACKOFF_S
        while self._unsent and not self._closed:
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, longest)
            if not self._unsent:
                return  # a later batch carried them
            if time.monotonic() - self._unsent_since > self.resend_for_s:
                # every L1 copy older than these writes has expired by now
                self._give_up(len(self._take_unsent()), "too_old")
                return
            since = self._unsent_since
            entries = list(self._take_unsent().items())
            self.resent += 1
            if await self._send(entries):
                log.info("bus_announcements_resent", bus=self.bus.name, keys=len(entries))
            else:
                self._unsent_since = min(since, self._unsent_since)

    async def _publish(self, entries: Sequence[tuple[str, int]]) -> bool:
        if not self.breaker.allow():
            self.publish_skipped += 1  # the bus failed just now: not waited on again yet
            return False
        payload = encode_message(self.id, entries)
        try:
            async with asyncio.timeout(self.publish_timeout_s):
                await self.bus.publish(payload)
        except (CacheError, TimeoutError) as exc:
            self.publish_errors += 1
            self.breaker.failure(type(exc).__name__)
            log.warning("bus_publish_failed", bus=self.bus.name, keys=len(entries), error=str(exc))
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
        if payload.startswith(self._own_head):
            return  # our own announcement, back from the bus: nothing to parse
        try:
            sender, entries = decode_message(payload)
        except (ValueError, UnicodeDecodeError):
            self.bad_messages += 1
            log.warning("bus_message_unreadable", bus=self.bus.name, head=payload[:60])
            return
        if sender == self.id:
            return
        drop = self.l1.drop_older
        wake = self.waiters.notify
        for key, as_of in entries:
            if drop(key, as_of):
                self.invalidations += 1
            self._on_change(key, as_of)
            wake(key, as_of)

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
                    self._lost()
                lost = True
                self.subscribed.clear()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
            finally:
                if subscription is not None:
                    with contextlib.suppress(Exception):
                        async with asyncio.timeout(1.0):
                            await subscription.close()

    def _lost(self) -> None:
        assert self.l1 is not None
        # from now on announcements are missed: nothing in L1 can be trusted
        self.l1.suspend()
        self.suspensions += 1

    def _resumed(self) -> None:
        assert self.l1 is not None
        log.warning("l1_resumed_after_resubscribe", bus=self.bus.name)
        self.l1.resume()

    @property
    def unsent(self) -> int:
        """Keys whose announcement is still owed."""
        return len(self._unsent)

    async def close(self) -> None:
        self._closed = True
        await cancel_and_wait(self._resender)
        if self._unsent:
            self._give_up(len(self._take_unsent()), "closed")
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                async with asyncio.timeout(2.0):
                    await self._listener
        with contextlib.suppress(CacheError, TimeoutError):
            async with asyncio.timeout(2.0):
                await self.bus.close()
