"""``_Consumer.wait_first``, the fetch loop's per-message delivery (no servers)."""

from __future__ import annotations

import asyncio
from typing import Any

from workers.app import _Consumer


def consumer() -> Any:
    """Just the state ``wait_first`` touches; the consumer itself needs a broker."""
    c: Any = _Consumer.__new__(_Consumer)
    c.suspend_flow = asyncio.Event()
    c._stopped, c._crashed = asyncio.Event(), asyncio.Event()
    c._loop = asyncio.get_running_loop()
    return c


async def test_a_callback_that_does_not_suspend_is_delivered_in_place() -> None:
    c = consumer()
    order: list[str] = []

    async def callback() -> str:
        order.append("delivered")
        return "ok"

    results = await c.wait_first(callback(), c.suspend_flow.wait())
    assert results.results == ["ok"] and not results.stopped and order == ["delivered"]


async def test_a_blocked_callback_finishes_when_it_can() -> None:
    c = consumer()
    gate = asyncio.Event()

    async def callback() -> str:
        await asyncio.sleep(0)
        await gate.wait()
        return "late"

    waiting = asyncio.ensure_future(c.wait_first(callback(), c.suspend_flow.wait()))
    await asyncio.sleep(0.01)
    assert not waiting.done()
    gate.set()
    assert (await waiting).results == ["late"]


async def test_suspending_the_flow_cancels_a_blocked_callback() -> None:
    # Faust's semantics: a delivery blocked when a rebalance stops the flow never completes
    # later (after the seek to committed offsets), which would move the read offset past
    # the re-fetched messages.
    c = consumer()
    gate = asyncio.Event()
    log: list[str] = []

    async def callback() -> None:
        try:
            await gate.wait()
            log.append("delivered")
        except asyncio.CancelledError:
            log.append("cancelled")
            raise

    waiting = asyncio.ensure_future(c.wait_first(callback(), c.suspend_flow.wait()))
    await asyncio.sleep(0.01)
    c.suspend_flow.set()
    await asyncio.wait_for(waiting, 1.0)  # the flow being suspended ends the wait
    gate.set()
    await asyncio.sleep(0.01)
    assert log == ["cancelled"]
