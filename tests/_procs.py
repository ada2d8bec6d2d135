"""Child processes the tests and benchmarks start (`python -m workers.cli ...`): how they
are stopped and how to wait for one to answer, written once (bench/ imports it too)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess

import aiohttp


def stop_process(
    proc: subprocess.Popen[bytes], grace_s: float = 15.0, *, group: bool = False
) -> None:
    """SIGTERM (the whole process group with ``group``, for children started with
    ``start_new_session``), then SIGKILL what is still there after ``grace_s``; reaped."""

    def send(sig: signal.Signals) -> None:
        if proc.poll() is None:
            if group:
                os.killpg(proc.pid, sig)
            else:
                proc.send_signal(sig)

    send(signal.SIGTERM)
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        send(signal.SIGKILL)
        proc.wait(5)


async def wait_http_ok(http: aiohttp.ClientSession, url: str, within_s: float = 30.0) -> None:
    """Until ``url`` answers 200 (a child's /healthz); fails the test after ``within_s``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while loop.time() < deadline:
        try:
            async with http.get(url) as resp:
                if resp.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.1)
    raise AssertionError(f"{url} did not answer 200 within {within_s} s")
