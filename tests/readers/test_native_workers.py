"""`warmfleet reader` as a process on the native server: the supervisor of ``--workers N``
(a worker that dies is named and the reader exits 1), SIGTERM (a clean stop), and
``--server granian`` as the fallback. Real processes, the stack's Redis and Memcached."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import psutil
import pytest

from readers import ServerOptions
from readers._server import free_port
from tests._procs import stop_process
from topics import ConfigError

pytestmark = pytest.mark.integration


def _get(port: int, path: str) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=3) as resp:
        return int(resp.status)


def _events(log: Path) -> list[dict[str, Any]]:
    lines = log.read_text().splitlines()
    return [orjson.loads(line) for line in lines if line.startswith("{")]


@pytest.fixture
def start(stack_urls: Any, namespace: str, tmp_path: Path) -> Iterator[Any]:
    procs: list[subprocess.Popen[bytes]] = []

    def run(*args: str) -> tuple[subprocess.Popen[bytes], int, Path]:
        port, log = free_port(), tmp_path / f"reader{len(procs)}.log"
        env = {
            **os.environ,
            "WARMFLEET_KEY_PREFIX": namespace.rstrip("."),
            "WARMFLEET_REDIS_URL": stack_urls.redis_url,
            "WARMFLEET_MEMCACHED_URL": stack_urls.memcached_url,
            "WARMFLEET_LOG_FORMAT": "json",
            "WARMFLEET_DEMAND": "off",
        }
        cmd = [sys.executable, "-m", "workers.cli", "reader", "--port", str(port), *args]
        with log.open("wb") as out:
            proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
        procs.append(proc)
        deadline = time.monotonic() + 30
        while True:
            try:
                assert _get(port, "/healthz") == 200
                return proc, port, log
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the reader did not start:\n{log.read_text()}") from None
                time.sleep(0.1)

    yield run
    for proc in procs:
        stop_process(proc)


def test_a_worker_that_dies_is_named_and_the_reader_exits_1(start: Any) -> None:
    proc, port, log = start("--workers", "2")
    workers = psutil.Process(proc.pid).children()
    assert len(workers) == 2
    assert len([e for e in _events(log) if e["event"] == "reader_started"]) == 2
    victim = workers[1]
    victim.send_signal(signal.SIGKILL)
    assert proc.wait(30) == 1
    died = [e for e in _events(log) if e["event"] == "reader_worker_died"]
    assert died and died[0]["pid"] == victim.pid and died[0]["returncode"] == -signal.SIGKILL
    assert not workers[0].is_running() or workers[0].status() == psutil.STATUS_ZOMBIE
    with pytest.raises(OSError):
        _get(port, "/healthz")


def test_sigterm_stops_every_worker_cleanly(start: Any) -> None:
    proc, _, log = start("--workers", "2")
    workers = psutil.Process(proc.pid).children()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0
    events = [e["event"] for e in _events(log)]
    assert events.count("reader_stopping") == 2  # each worker ran __rsgi_del__
    assert "reader_worker_died" not in events
    assert not any(w.is_running() and w.status() != psutil.STATUS_ZOMBIE for w in workers)


def test_one_worker_stops_on_sigint_too(start: Any) -> None:
    proc, _, log = start()
    proc.send_signal(signal.SIGINT)
    assert proc.wait(30) == 0
    assert "reader_stopping" in [e["event"] for e in _events(log)]


def test_granian_stays_selectable(start: Any) -> None:
    proc, port, log = start("--server", "granian")
    assert _get(port, "/healthz") == 200
    started = [e for e in _events(log) if e["event"] == "reader_started"]
    assert started and started[0]["server"] == "granian"
    # granian's own workers, not the native supervisor's
    children = [" ".join(p.cmdline()) for p in psutil.Process(proc.pid).children()]
    assert not any("readers._workers" in cmd for cmd in children), children


def test_the_server_choice_travels_to_the_workers() -> None:
    options = ServerOptions(port=0, workers=3, server="granian")
    os.environ.update(options.to_env())
    try:
        assert ServerOptions.from_env() == options
    finally:
        for name in options.to_env():
            del os.environ[name]
    with pytest.raises(ConfigError, match="server"):
        ServerOptions(server="aiohttp")
