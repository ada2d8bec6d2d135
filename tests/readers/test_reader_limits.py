"""Idle and hostile connections against `warmfleet reader` as a process (real granian).

Before the hardening (issue 12, defect 5) idle sockets stayed open for good and 20,000 of
them exhausted the reader's file descriptors: every request failed while they were held.
These tests run the reader with its default limits (5 s header/idle timeout, 4,096
connections per worker) on the real Redis and Memcached.
"""

from __future__ import annotations

import os
import select
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests._procs import stop_process

pytestmark = pytest.mark.integration

HEADER_TIMEOUT_S = 5.0  # the reader's default (readers.ReaderLimits)
DEFAULT_CAP = 4096


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ReaderProcess:
    def __init__(self, port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
        self.port, self.proc, self.log = port, proc, log

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def get(self, path: str, timeout: float = 3.0) -> tuple[int, bytes]:
        with urllib.request.urlopen(self.url(path), timeout=timeout) as resp:
            return int(resp.status), bytes(resp.read())

    def fds(self) -> int:
        """Open file descriptors of the reader and its workers (the most of any one)."""
        parent = psutil.Process(self.proc.pid)
        return max(p.num_fds() for p in [parent, *parent.children(recursive=True)])


@pytest.fixture
def reader_args() -> list[str]:
    return []


@pytest.fixture
def reader(
    stack_urls: Any, namespace: str, tmp_path: Path, reader_args: list[str]
) -> Iterator[ReaderProcess]:
    port = free_port()
    log = tmp_path / "reader.log"
    env = {
        **os.environ,
        "WARMFLEET_KEY_PREFIX": namespace.rstrip("."),
        "WARMFLEET_REDIS_URL": stack_urls.redis_url,
        "WARMFLEET_MEMCACHED_URL": stack_urls.memcached_url,
        "WARMFLEET_LOG_FORMAT": "json",
    }
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "workers.cli", "reader", "--port", str(port), *reader_args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    running = ReaderProcess(port, proc, log)
    deadline = time.monotonic() + 20
    while True:
        try:
            running.get("/healthz", timeout=1)
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"the reader did not start:\n{log.read_text()}") from None
            time.sleep(0.1)
    yield running
    stop_process(proc)


@pytest.mark.parametrize("reader_args", [["--workers", "2"]])
def test_workers_share_the_port(reader: ReaderProcess) -> None:
    workers = psutil.Process(reader.proc.pid).children(recursive=True)
    assert len(workers) == 2
    # SO_REUSEPORT: the kernel spreads new connections over both; each counts its own
    for _ in range(40):
        assert reader.get("/healthz")[0] == 200
    started = [line for line in reader.log.read_text().splitlines() if "reader_started" in line]
    assert len(started) == 2


def _closed_by_server(socks: list[socket.socket], within_s: float) -> int:
    """How many of ``socks`` the server closes (EOF) within ``within_s``."""
    pending = {s.fileno(): s for s in socks}
    deadline = time.monotonic() + within_s
    closed = 0
    while pending and time.monotonic() < deadline:
        poller = select.poll()
        for fd in pending:
            poller.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)
        for fd, _ in poller.poll(200):
            sock = pending.pop(fd)
            try:
                data = sock.recv(1)
            except OSError:
                data = b""
            closed += data == b""
    return closed


def test_idle_sockets_are_closed_and_the_reader_keeps_serving(reader: ReaderProcess) -> None:
    idle = [socket.create_connection(("127.0.0.1", reader.port)) for _ in range(2000)]
    # a keep-alive connection that made one request and then went quiet
    kept = socket.create_connection(("127.0.0.1", reader.port))
    kept.sendall(b"GET /healthz HTTP/1.1\r\nHost: reader\r\n\r\n")
    assert kept.recv(4096).startswith(b"HTTP/1.1 200")
    try:
        # 2,000 idle sockets do not stop anyone else (the cap is 4,096)
        status, body = reader.get("/healthz", timeout=HEADER_TIMEOUT_S - 0.5)
        assert status == 200 and b"ok" in body
        # every idle one is closed by the reader within its timeout (plus scheduling slack)
        closed = _closed_by_server([*idle, kept], HEADER_TIMEOUT_S + 5)
        assert closed == len(idle) + 1
        assert reader.get("/healthz")[0] == 200
    finally:
        for sock in [*idle, kept]:
            sock.close()


def test_a_request_head_sent_a_byte_at_a_time_is_cut_off(reader: ReaderProcess) -> None:
    """Slowloris: bytes keep arriving, but the head is never complete within the timeout."""
    sock = socket.create_connection(("127.0.0.1", reader.port))
    sock.settimeout(0.5)
    head = b"GET /healthz HTTP/1.1\r\nHost: reader\r\nX-Slow: " + b"z" * 1000
    started = time.monotonic()
    closed_at = None
    try:
        for byte in head:
            if time.monotonic() - started > HEADER_TIMEOUT_S + 10:
                break
            try:
                sock.sendall(bytes([byte]))
                if sock.recv(1) == b"":
                    closed_at = time.monotonic() - started
                    break
            except TimeoutError:
                continue  # nothing from the server yet: keep trickling
            except OSError:
                closed_at = time.monotonic() - started
                break
    finally:
        sock.close()
    assert closed_at is not None, "the reader kept a trickling connection open"
    assert reader.get("/healthz")[0] == 200


FLOOD = textwrap.dedent(
    """
    import socket, sys
    socks = []
    for _ in range(int(sys.argv[2])):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", int(sys.argv[1])))  # in progress: the backlog may be full
        socks.append(s)
    print("ready", flush=True)
    sys.stdin.read()  # hold them until the test closes our stdin
    """
)


@pytest.mark.slow
def test_20000_idle_sockets_never_exhaust_the_readers_file_descriptors(
    reader: ReaderProcess, tmp_path: Path
) -> None:
    script = tmp_path / "flood.py"
    script.write_text(FLOOD)
    # two processes of 10,000: one process could not hold 20,000 under ulimit -n 20000
    floods = [
        subprocess.Popen(
            [sys.executable, str(script), str(reader.port), "10000"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        for _ in range(2)
    ]
    try:
        for flood in floods:
            assert flood.stdout is not None and flood.stdout.readline().strip() == b"ready"
        most = 0
        for _ in range(6):  # through at least one header timeout
            time.sleep(1)
            most = max(most, reader.fds())
        assert most <= DEFAULT_CAP + 400, most  # the cap, plus the reader's own files
        deadline = time.monotonic() + 20
        while b"reader_connection_cap_reached" not in reader.log.read_bytes():
            assert time.monotonic() < deadline, reader.log.read_text()[-2000:]
            time.sleep(0.5)
    finally:
        for flood in floods:
            assert flood.stdin is not None and flood.stdout is not None
            flood.stdin.close()
            flood.wait(30)
            flood.stdout.close()
    # once the flood is gone the reader serves at once, and says what happened
    deadline = time.monotonic() + 30
    while True:
        try:
            status, metrics = reader.get("/metrics")
            break
        except OSError:
            assert time.monotonic() < deadline
            time.sleep(0.5)
    assert status == 200
    reached = [
        line
        for line in metrics.decode().splitlines()
        if line.startswith("warmfleet_reader_connection_cap_reached_total")
    ]
    assert reached and float(reached[0].split()[-1]) >= 1
