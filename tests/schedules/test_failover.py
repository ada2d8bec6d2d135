"""One active clock: two real `warmfleet clock` processes; kill -9 the leader, the other
takes over and publishes the warm jobs."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from schedules import CLOCK_HEADER, DEFAULT_PATH, ControlKeys
from tests.schedules.conftest import Recorder
from topics import WARM_JOBS

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# every instant is weekend (no trading days), warmed every second
FAST = (
    DEFAULT_PATH.read_text(encoding="utf-8")
    .replace('trading_days = ["mon", "tue", "wed", "thu", "fri"]', "trading_days = []")
    .replace("weekend = 600", "weekend = 1")
    .replace("min_interval_s = 5", "min_interval_s = 0.5")
)


def spawn(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "workers.cli",
                "clock",
                "--lease-ttl",
                "3",
                "--renew-every",
                "1",
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )


def pid_of(owner: str) -> int:
    return int(owner.split(":")[-2])  # host:pid:random


async def test_the_second_clock_takes_over_when_the_leader_is_killed(
    tmp_path: Path,
    stack_urls: object,
    kafka_bootstrap: str,
    redis_url: str,
    namespace: str,
    recorder: Recorder,
) -> None:
    phases = tmp_path / "phases.toml"
    phases.write_text(FAST, encoding="utf-8")
    env = {
        **os.environ,
        "WARMFLEET_NAMESPACE": namespace,
        "WARMFLEET_PHASES": str(phases),
        "WARMFLEET_KAFKA_URL": f"kafka://{kafka_bootstrap}",
        "WARMFLEET_REDIS_URL": redis_url,
        "WARMFLEET_LOG_FORMAT": "json",
        "WARMFLEET_METRICS_PORT": "0",
    }
    procs = [spawn(env, tmp_path / f"clock{i}.log") for i in range(2)]
    jobs_topic = WARM_JOBS.named(namespace)

    def owners(since: int = 0) -> list[str]:
        return [s.headers[CLOCK_HEADER] for s in recorder.seen[since:] if s.topic == jobs_topic]

    try:
        await recorder.wait_for("warm jobs from a leader", lambda: len(owners()) >= 12, 90)
        await asyncio.sleep(3)  # both clocks are up by now: still only one publishes
        assert len(set(owners())) == 1, set(owners())
        leader = owners()[0]
        victim = next(p for p in procs if p.pid == pid_of(leader))
        survivor = next(p for p in procs if p is not victim)
        assert survivor.poll() is None, (tmp_path / "clock0.log").read_text()
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
        mark = len(recorder.seen)
        await recorder.wait_for(
            "jobs from the second clock",
            lambda: len([o for o in owners(mark) if o != leader]) >= 6,
            90,
        )
        newcomer = {o for o in owners(mark) if o != leader}
        assert len(newcomer) == 1 and pid_of(newcomer.pop()) == survivor.pid
        # a clean stop releases the lease, so a replacement need not wait out the TTL
        survivor.send_signal(signal.SIGTERM)
        assert survivor.wait(30) == 0
        redis = aioredis.Redis.from_url(redis_url)
        try:
            assert await redis.get(ControlKeys.for_fleet("virt", namespace).leader) is None
        finally:
            await redis.aclose()
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(10)
