"""`warmfleet phase set|show|clear` against the real Kafka (``control.phase``)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable

import pytest

from schedules import Phase, PhaseClock
from tests._servers import PrivateServer, private_server
from tests.schedules.conftest import Recorder, fast_config
from topics import CONTROL_PHASE

__all__ = ["private_server"]  # the fixture, imported to be used here

pytestmark = pytest.mark.integration


def phase(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "workers.cli", "phase", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def kafka_env(kafka_bootstrap: str, namespace: str) -> dict[str, str]:
    return {
        **os.environ,
        "WARMFLEET_KAFKA_URL": f"kafka://{kafka_bootstrap}",
        "WARMFLEET_NAMESPACE": namespace,
    }


def test_set_show_clear(kafka_bootstrap: str, namespace: str) -> None:
    env = kafka_env(kafka_bootstrap, namespace)
    got = phase("set", "market_hours", "--for", "30m", "--json", env=env)
    assert got.returncode == 0, got.stderr
    assert json.loads(got.stdout)["topic"] == f"{namespace}control.phase"
    shown = json.loads(phase("show", "--json", env=env).stdout)
    assert shown["phase"] == "market_hours" and shown["source"] == "override"
    assert shown["intervals_s"]["tickers"] == 15.0
    assert shown["override_until_ms"] == shown["next_transition_ms"]
    assert 29 * 60_000 < shown["override_until_ms"] - time.time() * 1000 <= 30 * 60_000
    human = phase("show", env=env).stdout
    assert "source           override" in human and "override until" in human
    assert "leader           none (no clock is in the election group)" in human
    cleared = phase("clear", env=env)
    assert cleared.stdout.strip() == "override cleared"
    assert json.loads(phase("show", "--json", env=env).stdout)["source"] == "calendar"
    assert phase("clear", env=env).stdout.strip() == "no override was set"


def test_bad_arguments_are_refused(kafka_bootstrap: str, namespace: str) -> None:
    env = kafka_env(kafka_bootstrap, namespace)
    bad = phase("set", "lunch", env=env)
    assert bad.returncode == 2 and "invalid choice: 'lunch'" in bad.stderr
    bad = phase("set", "weekend", "--for", "soon", env=env)
    assert bad.returncode == 2 and "not a duration" in bad.stderr


def test_show_at_a_time_needs_no_kafka() -> None:
    env = {**os.environ, "WARMFLEET_KAFKA_URL": "kafka://127.0.0.1:1"}
    got = phase("show", "--at", "2027-12-24T10:00", "--json", env=env)  # Christmas observed
    assert got.returncode == 0, got.stderr
    assert json.loads(got.stdout)["phase"] == "weekend"
    got = phase("show", "--at", "2026-12-24T10:00", "--json", env=env)  # an early close
    assert json.loads(got.stdout)["phase"] == "market_hours"
    down = phase("show", env=env)
    assert down.returncode == 1 and "cannot read" in down.stderr and "control.phase" in down.stderr


async def test_an_override_survives_a_redis_restart(
    kafka_bootstrap: str,
    namespace: str,
    private_server: Callable[..., PrivateServer],
    recorder: Recorder,
) -> None:
    """The fleet's Redis keeps nothing on disk: an override kept there was lost with it."""
    redis = private_server("redis")  # ours alone: restarted below, the shared one never
    env = {**kafka_env(kafka_bootstrap, namespace), "WARMFLEET_REDIS_URL": redis.url}
    got = await asyncio.to_thread(phase, "set", "after_hours", "--for", "30m", env=env)
    assert got.returncode == 0, got.stderr
    redis.stop()
    redis.start()  # same port, empty
    shown = json.loads((await asyncio.to_thread(phase, "show", "--json", env=env)).stdout)
    assert (shown["phase"], shown["source"]) == ("after_hours", "override")
    # a clock started after the restart announces the override, not the calendar
    config = fast_config(intervals={p: 2.0 for p in Phase})  # the calendar says weekend
    clock = PhaseClock(config, bootstrap_servers=kafka_bootstrap, namespace=namespace)
    stop = asyncio.Event()
    task = asyncio.create_task(clock.run(stop))
    topic = CONTROL_PHASE.named(namespace)
    try:
        await recorder.wait_for("the clock's first phase", lambda: recorder.values(topic))
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
    first = recorder.values(topic)[0]
    assert first.phase == "after_hours" and first.override_until_ms == shown["override_until_ms"]
