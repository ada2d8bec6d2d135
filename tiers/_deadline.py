"""Coarse per-call deadlines without a timer per call.

``asyncio.timeout`` schedules (and cancels) a loop timer for every call; on the L2/L3 read
path that costs about as much as the rest of our bookkeeping together (~10 us of a ~60 us
Memcached read on the dev machine). A ``Watchdog`` keeps one ticking callback per cache
while calls are in flight and cancels the tasks whose deadline has passed, so a call
times out between ``limit`` and ``limit + tick`` seconds after it started.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


class Watchdog:
    def __init__(self, tick_s: float = 0.01) -> None:
        self.tick_s = tick_s
        self._deadlines: dict[asyncio.Task[object], float] = {}
        self._expired: set[asyncio.Task[object]] = set()
        self._handle: asyncio.TimerHandle | None = None

    async def run(self, awaitable: Awaitable[T], limit_s: float) -> T:
        """Await ``awaitable``; ``TimeoutError`` if it takes longer than ``limit_s`` (+tick).
        Must be the only ``run`` in flight in the current task (gather makes tasks)."""
        task = asyncio.current_task()
        if task is None:  # not in a task: nothing to cancel, fall back to asyncio.timeout
            async with asyncio.timeout(limit_s):
                return await awaitable
        loop = asyncio.get_running_loop()
        cancelling_before = task.cancelling()
        self._deadlines[task] = loop.time() + limit_s
        if self._handle is None:
            self._handle = loop.call_later(self.tick_s, self._tick, loop)
        try:
            return await awaitable
        except asyncio.CancelledError:
            if task in self._expired:
                self._expired.discard(task)
                if task.uncancel() <= cancelling_before:  # only our cancel: a timeout
                    raise TimeoutError(f"no answer within {limit_s:g} s") from None
            raise  # someone else cancelled the task too (or only they did)
        finally:
            del self._deadlines[task]
            self._expired.discard(task)

    def _tick(self, loop: asyncio.AbstractEventLoop) -> None:
        self._handle = None
        now = loop.time()
        for task, deadline in self._deadlines.items():
            if deadline <= now and task not in self._expired:
                self._expired.add(task)
                task.cancel()
        if self._deadlines:
            self._handle = loop.call_later(self.tick_s, self._tick, loop)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
