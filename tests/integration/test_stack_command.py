"""`warmfleet stack` as a user runs it: a second stack on its own ports and state dir."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

WARMFLEET = [sys.executable, "-m", "workers.cli"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _cli(*args: str, stack_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "WARMFLEET_STACK_DIR": str(stack_dir)}
    for name in ("KAFKA", "KAFKA_CONTROLLER", "REDIS", "MEMCACHED"):
        env.pop(f"WARMFLEET_{name}_PORT", None)
    return subprocess.run(
        [*WARMFLEET, "stack", *args], env=env, capture_output=True, text=True, timeout=180
    )


@pytest.fixture
def ports() -> list[str]:
    return [
        "--kafka-port", str(_free_port()),
        "--kafka-controller-port", str(_free_port()),
        "--redis-port", str(_free_port()),
        "--memcached-port", str(_free_port()),
    ]  # fmt: skip


@pytest.fixture
def stack_dir(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path
    _cli("down", stack_dir=tmp_path)  # never leave a test's servers behind


@pytest.mark.timeout(240)
def test_up_twice_reuses_and_down_leaves_nothing(stack_dir: Path, ports: list[str]) -> None:
    first = _cli("up", *ports, stack_dir=stack_dir)
    assert first.returncode == 0, first.stderr
    urls = json.loads(first.stdout)
    assert urls["redis"].startswith("redis://127.0.0.1:")

    status = json.loads(_cli("status", "--json", stack_dir=stack_dir).stdout)
    pids = {name: p["pid"] for name, p in status["processes"].items()}
    assert set(pids) == {"kafka", "redis", "memcached"}
    assert status["running"] is True
    assert all(psutil.pid_exists(pid) for pid in pids.values())

    second = _cli("up", *ports, stack_dir=stack_dir)
    assert second.returncode == 0, second.stderr
    assert second.stderr.count("already running") == 3
    again = json.loads(_cli("status", "--json", stack_dir=stack_dir).stdout)
    assert {n: p["pid"] for n, p in again["processes"].items()} == pids

    stopped = _cli("down", stack_dir=stack_dir)
    assert stopped.returncode == 0, stopped.stderr
    for pid in pids.values():
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    after = json.loads(_cli("status", "--json", stack_dir=stack_dir).stdout)
    assert after["processes"] == {} and after["running"] is False


def test_foreign_process_on_port_is_named(stack_dir: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        result = _cli("up", "--only", "redis", "--redis-port", str(port), stack_dir=stack_dir)
    assert result.returncode == 2
    assert f"port {port}" in result.stderr
    assert f"pid {os.getpid()}" in result.stderr
    assert "--redis-port PORT" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_port_value_names_the_flag(stack_dir: Path) -> None:
    result = _cli("up", "--redis-port", "seventy", stack_dir=stack_dir)
    assert result.returncode == 2
    assert "--redis-port must be a port number, got 'seventy'" in result.stderr


def test_exec_runs_with_the_stack_and_stops_what_it_started(stack_dir: Path) -> None:
    redis_port, memcached_port = _free_port(), _free_port()
    probe = (
        "import os, sys; print(os.environ['WARMFLEET_REDIS_URL'], "
        "os.environ['WARMFLEET_MEMCACHED_URL']); sys.exit(7)"
    )
    result = _cli(
        "exec",
        "--only",
        "redis,memcached",
        "--redis-port",
        str(redis_port),
        "--memcached-port",
        str(memcached_port),
        "--",
        sys.executable,
        "-c",
        probe,
        stack_dir=stack_dir,
    )
    assert result.returncode == 7, result.stderr  # the command's own exit code
    assert result.stdout.split() == [
        f"redis://127.0.0.1:{redis_port}/0",
        f"memcached://127.0.0.1:{memcached_port}",
    ]
    assert "redis: stopping" in result.stderr  # it started them, so it stops them
    after = json.loads(_cli("status", "--json", stack_dir=stack_dir).stdout)
    assert after["processes"] == {}


def _free_block(size: int) -> int:
    """The first of ``size`` consecutive free ports (toxiproxy's API and its proxies)."""
    for _ in range(50):
        base = _free_port()
        socks = []
        try:
            for port in range(base, base + size):
                sock = socket.socket()
                socks.append(sock)
                sock.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
    raise RuntimeError("no block of free ports")


@pytest.mark.timeout(240)
def test_exec_faults_points_the_command_at_toxiproxy(stack_dir: Path) -> None:
    redis_port, memcached_port, toxiproxy_port = _free_port(), _free_port(), _free_block(6)
    probe = (
        "import os, socket\n"
        "url = os.environ['WARMFLEET_REDIS_URL']\n"
        "host, port = url.removeprefix('redis://').removesuffix('/0').split(':')\n"
        "with socket.create_connection((host, int(port)), timeout=2) as s:\n"
        "    s.sendall(b'PING\\r\\n'); pong = s.recv(16).decode().strip()\n"
        "print(url, os.environ['WARMFLEET_MEMCACHED_URL'], os.environ['WARMFLEET_TOXIPROXY_URL'],"
        " os.environ['WARMFLEET_EXCHANGE_URLS'], pong)\n"
    )
    result = _cli(
        "exec", "--faults", "--only", "redis,memcached",
        "--redis-port", str(redis_port), "--memcached-port", str(memcached_port),
        "--toxiproxy-port", str(toxiproxy_port), "--sim-port", str(_free_port()),
        "--", sys.executable, "-c", probe,
        stack_dir=stack_dir,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    p = toxiproxy_port
    assert result.stdout.split() == [
        f"redis://127.0.0.1:{p + 2}/0",  # the proxies, not the servers
        f"memcached://127.0.0.1:{p + 3}",
        f"http://127.0.0.1:{p}",
        f"binance=http://127.0.0.1:{p + 4},okx=http://127.0.0.1:{p + 5}",
        "+PONG",  # through the proxy to the real Redis
    ]
    assert "toxiproxy: stopping" in result.stderr and "redis: stopping" in result.stderr
    after = json.loads(_cli("status", "--json", stack_dir=stack_dir).stdout)
    assert after["processes"] == {}
