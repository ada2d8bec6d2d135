"""Wake a reader when a key is written: "tell me when K holds an ``as_of`` >= X".

The write-coherence bus already tells every cache with an L1 which keys were written and
at which ``as_of`` (``tiers._coherence``); a ``Waiters`` registry hangs on that stream so
the demand path (``demand``, ``readers._demand``) can sleep until the value it asked the
fleet for has landed, instead of polling the tiers. Waiting is bounded by the caller's
deadline; ``notify`` is a dict lookup when nobody waits for the key.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any


class Waiters:
    """Futures per key, resolved with the announced ``as_of`` once it reaches the floor."""

    __slots__ = ("_waiting",)

    def __init__(self) -> None:
        self._waiting: dict[str, list[tuple[int, asyncio.Future[int]]]] = {}

    def __len__(self) -> int:
        return sum(len(w) for w in self._waiting.values())

    def register(self, key: str, min_as_of: int = 0) -> asyncio.Future[int]:
        """A future resolved with the ``as_of`` of the first announced write of ``key`` at
        or above ``min_as_of``. Register before asking for the write, so it cannot be
        missed; ``discard`` it if you stop waiting."""
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(key, []).append((min_as_of, fut))
        return fut

    def discard(self, key: str, fut: asyncio.Future[Any]) -> None:
        waiting = self._waiting.get(key)
        if waiting is None:
            return
        waiting[:] = [(floor, f) for floor, f in waiting if f is not fut]
        if not waiting:
            del self._waiting[key]
        if not fut.done():
            fut.cancel()

    def notify(self, key: str, as_of: int) -> None:
        """``key`` was written at ``as_of`` (a delete, ``as_of`` < 0, wakes nobody)."""
        waiting = self._waiting.get(key)
        if waiting is None or as_of < 0:
            return
        keep = []
        for floor, fut in waiting:
            if fut.done():
                continue
            if as_of >= floor:
                fut.set_result(as_of)
            else:
                keep.append((floor, fut))
        if keep:
            self._waiting[key] = keep
        else:
            del self._waiting[key]

    async def wait(self, key: str, min_as_of: int, timeout_s: float) -> int | None:
        """Register and wait up to ``timeout_s``: the announced ``as_of``, or None."""
        fut = self.register(key, min_as_of)
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout_s):
                    return await fut
            return None
        finally:
            self.discard(key, fut)


def waiters_of(cache: object) -> Waiters | None:
    """The ``Waiters`` of a ``MultiTierCache`` that listens to a bus (it needs an L1), or
    None when nothing would ever wake them."""
    coherence = getattr(cache, "_coherence", None)
    if coherence is None or getattr(cache, "_l1", None) is None:
        return None
    waiters = getattr(coherence, "waiters", None)
    return waiters if isinstance(waiters, Waiters) else None
