"""topics.tasks.cancel_and_wait: the one way a background task is stopped."""

from __future__ import annotations

import asyncio

from topics.tasks import cancel_and_wait


async def test_a_running_task_has_ended_when_the_call_returns() -> None:
    cleaned: list[str] = []

    async def loop() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            await asyncio.sleep(0)  # its cleanup awaits too, and still runs to the end
            cleaned.append("done")

    task = asyncio.create_task(loop())
    await asyncio.sleep(0)
    await cancel_and_wait(task)
    assert task.cancelled() and cleaned == ["done"]


async def test_none_and_a_finished_task_are_nothing_to_stop() -> None:
    await cancel_and_wait(None)
    task = asyncio.create_task(asyncio.sleep(0, result=7))
    await task
    await cancel_and_wait(task)
    assert task.result() == 7
