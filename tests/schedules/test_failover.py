"""One active clock, elected through Kafka: real `warmfleet clock` processes. The leader
killed, frozen, or Redis gone — exactly one clock publishes, and the warm jobs go on."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio
import redis

from schedules import CLOCK_HEADER, DEFAULT_PATH
from schedules._leader import members
from tests._servers import PrivateServer, private_server
from tests.schedules.conftest import Recorder, Seen
from tiers import HotSetOptions
from tiers._hotset import FLUSH, set_names
from topics import WARM_JOBS, key_for

__all__ = ["private_server"]  # the fixture, imported to be used here

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# every instant is weekend (no trading days), warmed every second
FAST = (
    DEFAULT_PATH.read_text(encoding="utf-8")
    .replace('trading_days = ["mon", "tue", "wed", "thu", "fri"]', "trading_days = []")
    .replace("weekend = 600", "weekend = 1")
    .replace("min_interval_s = 5", "min_interval_s = 0.5")
)
SESSION_S = 6  # Kafka's default floor for a group's session timeout


def spawn(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "workers.cli", "clock",
             "--lease-ttl", str(SESSION_S), "--renew-every", "1"],
            env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip


def seed_hot_set(redis_url: str, prefix: str) -> None:
    """Readers have read BTC/USDT's books and candles on both exchanges: the clocks' books
    and candles jobs name it (with an empty hot set they would publish none)."""
    options = HotSetOptions()
    keys = [
        key_for(data_type, exchange, "BTC/USDT", prefix=prefix)
        for data_type in ("books", "candles")
        for exchange in ("binance", "okx")
    ]
    args = [round(options.half_life_s * 1000), options.floor, options.max_keys, options.keep_ms]
    client = redis.Redis.from_url(redis_url)
    try:
        client.eval(FLUSH, 2, *set_names(prefix), *args, *itertools.chain(*((k, 50) for k in keys)))
    finally:
        client.close()


def pid_of(owner: str) -> int:
    return int(owner.split(":")[-2])  # host:pid:random


@pytest.fixture
def clocks(
    tmp_path: Path, kafka_bootstrap: str, namespace: str
) -> Iterator[Callable[..., list[subprocess.Popen[bytes]]]]:
    """``clocks(2, redis_url=...)`` starts real clock processes; all are killed at the end."""
    phases = tmp_path / "phases.toml"
    phases.write_text(FAST, encoding="utf-8")
    started: list[subprocess.Popen[bytes]] = []

    def start(n: int, redis_url: str = "redis://127.0.0.1:6379/0") -> list[subprocess.Popen[bytes]]:
        seed_hot_set(redis_url, namespace.rstrip("."))
        env = {
            **os.environ,
            "WARMFLEET_NAMESPACE": namespace,
            "WARMFLEET_PHASES": str(phases),
            "WARMFLEET_KAFKA_URL": f"kafka://{kafka_bootstrap}",
            "WARMFLEET_REDIS_URL": redis_url,
            "WARMFLEET_KEY_PREFIX": namespace.rstrip("."),
            "WARMFLEET_LOG_FORMAT": "json",
            "WARMFLEET_METRICS_PORT": "0",
        }
        procs = [spawn(env, tmp_path / f"clock{len(started) + i}.log") for i in range(n)]
        started.extend(procs)
        return procs

    yield start
    for p in started:
        if p.poll() is None:
            p.send_signal(signal.SIGCONT)
            p.kill()
            p.wait(10)


def jobs_of(recorder: Recorder, namespace: str, since: int = 0) -> list[Seen]:
    topic = WARM_JOBS.named(namespace)
    return [s for s in recorder.seen[since:] if s.topic == topic]


def owners(seen: list[Seen]) -> set[str]:
    return {s.headers[CLOCK_HEADER] for s in seen}


def not_from(owner: str, seen: list[Seen]) -> list[Seen]:
    return [s for s in seen if s.headers[CLOCK_HEADER] != owner]


@dataclass
class Elected:
    procs: list[subprocess.Popen[bytes]]
    leader: str  # its owner id, host:pid:random
    token: int  # the fencing token of its jobs


async def elect(
    clocks: Callable[..., list[subprocess.Popen[bytes]]],
    recorder: Recorder,
    namespace: str,
    **kw: str,
) -> Elected:
    """Two clock processes (``kw`` to ``clocks``), and the one that leads them."""
    procs = clocks(2, **kw)
    await recorder.wait_for(
        "warm jobs from a leader", lambda: len(jobs_of(recorder, namespace)) >= 12, 90
    )
    await asyncio.sleep(3)  # both clocks are up by now: still only one publishes
    seen = owners(jobs_of(recorder, namespace))
    assert len(seen) == 1, seen
    token = jobs_of(recorder, namespace)[-1].value.fencing_token
    return Elected(procs, seen.pop(), token)


@pytest_asyncio.fixture(loop_scope="function")
async def two_clocks(
    clocks: Callable[..., list[subprocess.Popen[bytes]]], recorder: Recorder, namespace: str
) -> Elected:
    return await elect(clocks, recorder, namespace)


async def test_the_second_clock_takes_over_when_the_leader_is_killed(
    two_clocks: Elected, kafka_bootstrap: str, namespace: str, recorder: Recorder
) -> None:
    procs, leader, first_token = two_clocks.procs, two_clocks.leader, two_clocks.token
    assert first_token >= 1
    # `warmfleet phase show` names the leader, its token and the standby, from Kafka alone
    env = {**os.environ, "WARMFLEET_NAMESPACE": namespace,
           "WARMFLEET_KAFKA_URL": f"kafka://{kafka_bootstrap}"}  # fmt: skip
    shown = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "workers.cli", "phase", "show", "--json"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    state = json.loads(shown.stdout)["clock"]
    assert (state["owner"], state["token"]) == (leader, first_token)
    assert len(state["standby"]) == 1 and state["standby"][0] != leader
    victim = next(p for p in procs if p.pid == pid_of(leader))
    survivor = next(p for p in procs if p is not victim)
    assert survivor.poll() is None
    victim.send_signal(signal.SIGKILL)
    victim.wait(10)
    mark = len(recorder.seen)
    await recorder.wait_for(
        "jobs from the second clock",
        lambda: len(not_from(leader, jobs_of(recorder, namespace, mark))) >= 6,
        90,
    )
    after = not_from(leader, jobs_of(recorder, namespace, mark))
    assert len(owners(after)) == 1 and pid_of(owners(after).pop()) == survivor.pid
    assert {s.value.fencing_token for s in after} == {after[0].value.fencing_token}
    assert after[0].value.fencing_token > first_token
    # a clean stop leaves the group, so a replacement need not wait out the session
    survivor.send_signal(signal.SIGTERM)
    assert survivor.wait(30) == 0
    assert await members(kafka_bootstrap, namespace) == []


async def test_warming_goes_on_from_exactly_one_clock_while_redis_is_down(
    clocks: Callable[..., list[subprocess.Popen[bytes]]],
    private_server: Callable[..., PrivateServer],
    namespace: str,
    recorder: Recorder,
) -> None:
    redis = private_server("redis")  # the fleet's Redis, ours alone: we stop it
    leader = (await elect(clocks, recorder, namespace, redis_url=redis.url)).leader
    redis.stop()
    mark = len(recorder.seen)
    await asyncio.sleep(12)  # two session timeouts: a lease in Redis would have run out
    during = jobs_of(recorder, namespace, mark)
    # 2 exchanges x 3 data types at 1 s (okx and binance floors 0.5 s): dozens of jobs;
    # books and candles name the hot set the clock read before Redis went away
    assert len(during) >= 30, len(during)
    assert {tuple(s.value.symbols) for s in during if s.value.data_type != "tickers"} == {
        ("BTC/USDT",)
    }
    assert owners(during) == {leader}
    assert len({s.value.fencing_token for s in during}) == 1
    # no key went unwarmed: per (exchange, data type), consecutive jobs within a few seconds
    by_job: dict[tuple[str, str], list[int]] = {}
    for s in during:
        by_job.setdefault((s.value.exchange, s.value.data_type), []).append(s.value.issued_ms)
    assert len(by_job) == 6
    for issued in by_job.values():
        assert max(b - a for a, b in itertools.pairwise(issued)) < 5_000


async def test_a_frozen_leader_is_deposed_and_publishes_nothing_when_it_wakes(
    two_clocks: Elected, tmp_path: Path, namespace: str, recorder: Recorder
) -> None:
    procs, leader, old_token = two_clocks.procs, two_clocks.leader, two_clocks.token
    frozen = next(p for p in procs if p.pid == pid_of(leader))
    os.kill(frozen.pid, signal.SIGSTOP)
    mark = len(recorder.seen)
    try:
        await recorder.wait_for(
            "the standby to take over",
            lambda: bool(not_from(leader, jobs_of(recorder, namespace, mark))),
            90,
        )
    finally:
        os.kill(frozen.pid, signal.SIGCONT)  # its scheduler wakes with every job overdue
    woke = len(recorder.seen)
    await asyncio.sleep(SESSION_S + 2)
    new = not_from(leader, jobs_of(recorder, namespace, mark))
    assert new and all(s.value.fencing_token > old_token for s in new)
    # self-fencing: its lead was no longer confirmed, so not one job left the woken clock
    assert leader not in owners(jobs_of(recorder, namespace, woke))
    assert frozen.poll() is None  # deposed, alive, a standby now
    log = await asyncio.to_thread((tmp_path / f"clock{procs.index(frozen)}.log").read_text)
    assert "warm_job_withheld" in log or "clock_not_leading" in log
