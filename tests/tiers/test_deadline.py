"""The coarse per-call deadline used for every L2/L3 call."""

from __future__ import annotations

import asyncio

import pytest

from tiers._deadline import Watchdog


async def test_a_slow_call_times_out_and_a_quick_one_does_not() -> None:
    dog = Watchdog(tick_s=0.005)
    assert await dog.run(asyncio.sleep(0, result="quick"), 0.05) == "quick"
    with pytest.raises(TimeoutError):
        await dog.run(asyncio.sleep(10), 0.02)
    # the task is usable afterwards: the cancellation was consumed
    assert await dog.run(asyncio.sleep(0.001, result="again"), 0.5) == "again"
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]
    dog.close()


async def test_a_cancel_from_outside_is_not_a_timeout() -> None:
    dog = Watchdog(tick_s=0.005)
    task = asyncio.create_task(dog.run(asyncio.sleep(10), 5.0))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    dog.close()


async def test_an_outer_timeout_still_works_around_it() -> None:
    dog = Watchdog(tick_s=0.005)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.02):
            await dog.run(asyncio.sleep(10), 5.0)
    dog.close()


async def test_concurrent_calls_each_get_their_own_deadline() -> None:
    dog = Watchdog(tick_s=0.005)
    results = await asyncio.gather(
        dog.run(asyncio.sleep(10), 0.02),
        dog.run(asyncio.sleep(0.01, result="ok"), 1.0),
        return_exceptions=True,
    )
    assert isinstance(results[0], TimeoutError) and results[1] == "ok"
    dog.close()
