"""Secrets and bad URLs at the command line (issue 12, defects 7 and 8): a password carried in
a URL's query string never reaches a log line, and a bad URL is one line naming the variable."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests._procs import stop_process
from tests._servers import PrivateServer, free_port

SECRET = "hunter2-Zq9"


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WARMFLEET_")}
    env.update(WARMFLEET_LOG_FORMAT="json", **extra)
    return env


KEY = "virt:v2:market:ticker:15s:binance:BTC/USDT"


@pytest.mark.parametrize("command", [["reader", "--port", "0"], ["clock"], ["cache", "get", KEY]])
@pytest.mark.parametrize(
    "url",
    [
        f"redis://:{SECRET}@127.0.0.1:notaport/0",
        f"redis://:{SECRET}@[::1/0",
        f"http://:{SECRET}@127.0.0.1:6379",
    ],
)
def test_a_bad_redis_url_is_one_line_naming_the_variable(command: list[str], url: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "workers.cli", *command],
        env=_env(WARMFLEET_REDIS_URL=url),
        capture_output=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    err = done.stderr.decode()
    assert done.returncode == 2, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith(f"warmfleet {command[0]}: WARMFLEET_REDIS_URL: ")
    assert SECRET not in err + done.stdout.decode()


def _run_until(cmd: list[str], env: dict[str, str], event: str, log: Path) -> str:
    """Start ``warmfleet CMD``, wait until its output has ``event``, stop it; its output."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "workers.cli", *cmd],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        deadline = time.monotonic() + 60
        while event not in log.read_text(errors="replace"):
            assert proc.poll() is None, log.read_text(errors="replace")
            assert time.monotonic() < deadline, f"no {event}: " + log.read_text(errors="replace")
            time.sleep(0.1)
        time.sleep(1.0)  # what it logs right after starting counts too
    finally:
        stop_process(proc)
    return log.read_text(errors="replace")


@pytest.mark.integration
@pytest.mark.parametrize(
    ("command", "event", "logs_redis"),
    [
        (["reader", "--port", "{port}"], "reader_started", True),
        # the clock no longer uses Redis (elected through Kafka): it must not leak it either
        (["clock"], "clock_process", False),
    ],
)
def test_a_query_string_password_never_reaches_a_log_line(
    command: list[str],
    event: str,
    logs_redis: bool,
    tmp_path: Path,
    kafka_bootstrap: str,
    namespace: str,
    private_server: Callable[..., PrivateServer],
) -> None:
    redis = private_server("redis", "--requirepass", SECRET)
    url = f"redis://127.0.0.1:{redis.port}/0?password={SECRET}"
    env = _env(
        WARMFLEET_REDIS_URL=url,
        WARMFLEET_KAFKA_URL=f"kafka://{kafka_bootstrap}",
        WARMFLEET_NAMESPACE=namespace,
    )
    cmd = [part.format(port=free_port()) for part in command]
    output = _run_until(cmd, env, event, tmp_path / "out.log")
    assert event in output
    assert SECRET not in output
    if logs_redis:
        assert "password=***" in output  # the URL is logged, only its secret is hidden
