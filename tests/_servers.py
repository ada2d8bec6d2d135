"""Private Redis and Memcached servers of a test's own, on free ports: start, stop, freeze,
thaw. For tests that take a server away; the shared stack is never touched."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from stack._services import memcached_answers, memcached_command, redis_answers, redis_command


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PrivateServer:
    """A redis-server or memcached of our own on a free port: start, stop, freeze, thaw."""

    def __init__(self, kind: str, data_dir: Path, extra: tuple[str, ...] = ()) -> None:
        self.kind = kind
        self.extra = list(extra)  # more server flags, e.g. ("-I", "1k") for memcached
        self.port = free_port()
        self.data_dir = data_dir
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        if self.kind == "redis":
            return f"redis://127.0.0.1:{self.port}/0"
        return f"memcached://127.0.0.1:{self.port}"

    def _answers(self) -> bool:
        if self.kind != "redis":
            return memcached_answers(self.port)
        if redis_answers(self.port):
            return True
        try:  # a server with --requirepass answers PING with -NOAUTH: up all the same
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"-NOAUTH")
        except OSError:
            return False

    def start(self) -> None:
        cmd = (
            redis_command(self.port, self.data_dir)
            if self.kind == "redis"
            else memcached_command(self.port)
        )
        self.proc = subprocess.Popen(
            cmd + self.extra, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        while not self._answers():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()  # never leave a half-started server behind
                raise RuntimeError(f"private {self.kind} on {self.port} did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)  # in case it is frozen
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def freeze(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGCONT)


@pytest.fixture
def private_server(tmp_path: Path) -> Iterator[Callable[..., PrivateServer]]:
    servers: list[PrivateServer] = []

    def make(kind: str, *extra: str) -> PrivateServer:
        server = PrivateServer(kind, tmp_path, extra)
        server.start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()
