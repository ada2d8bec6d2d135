"""The whole pipeline as a user runs it: `warmfleet run` (sim, clock, pollers, agents, reader)
on its own namespace and ports, read over HTTP until warm, then stopped with Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.conftest import StackURLs

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return 0, None


def _wait_warm(url: str, deadline: float) -> dict[str, Any]:
    last: tuple[int, Any] = (0, None)
    while time.monotonic() < deadline:
        last = _get(url)
        if last[0] == 200:
            return dict(last[1])
        time.sleep(1)
    raise AssertionError(f"{url} never became warm; last answer {last}")


@pytest.mark.timeout(300)
def test_run_warms_what_readers_ask_for(
    stack_urls: StackURLs, namespace: str, tmp_path: Path
) -> None:
    reader, sim, metrics = _free_port(), _free_port(), _free_port()
    while metrics + 2 in (reader, sim) or metrics + 1 in (reader, sim):
        metrics = _free_port()
    env = {
        **os.environ,
        "WARMFLEET_NAMESPACE": namespace,
        "WARMFLEET_KEY_PREFIX": namespace.rstrip("."),
        "WARMFLEET_KAFKA_URL": stack_urls.kafka_url,
        "WARMFLEET_REDIS_URL": stack_urls.redis_url,
        "WARMFLEET_MEMCACHED_URL": stack_urls.memcached_url,
        "WARMFLEET_HOME": str(tmp_path),  # the run's child logs go here
    }
    cmd = [sys.executable, "-m", "workers.cli", "run", "--phase", "market_hours", "--no-live",
           "--reader-port", str(reader), "--sim-port", str(sim), "--metrics-base", str(metrics),
           "--read-rate", "20", "--duration", "240"]  # fmt: skip
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )
    children: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + 150
        base = f"http://127.0.0.1:{reader}"
        ticker = _wait_warm(f"{base}/v2/tickers/binance/BTC-USDT", deadline)
        assert ticker["value"]["symbol"] == "BTC/USDT" and ticker["value"]["last"] > 0
        assert ticker["tier"] in ("memory", "memcached", "redis")
        okx = _wait_warm(f"{base}/v2/tickers/okx/ETH-USDT", deadline)
        assert okx["value"]["exchange"] == "okx"
        analysis = _wait_warm(f"{base}/v2/analysis/binance/BTC-USDT", deadline)
        assert analysis["value"]["symbol"] == "BTC/USDT" and analysis["value"]["volatility"] >= 0
        overview = _wait_warm(f"{base}/v2/overview", deadline)
        assert overview["value"]["symbols"] > 0
        children = psutil.Process(proc.pid).children(recursive=True)
        assert len(children) >= 5
    finally:
        os.killpg(proc.pid, signal.SIGINT) if proc.poll() is None else None
        out, _ = proc.communicate(timeout=60)
    text = out.decode(errors="replace")
    assert proc.returncode == 0, text[-3000:]
    assert "stopping children" in text
    gone = psutil.wait_procs(children, timeout=10)[1]
    assert not gone, f"left behind: {gone}"
