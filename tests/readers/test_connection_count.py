"""The connection watcher's count (``readers._connections.client_connections``): this
process's TCP connections accepted on a port, read from ``/proc`` — the same count psutil
gives, which it replaced on Linux because psutil parses the host's whole TCP table in
Python while holding the GIL, stalling the reader's event loop once a second."""

from __future__ import annotations

import socket
import subprocess
import sys

import psutil

from readers._connections import client_connections


def _psutil_count(port: int) -> int:
    return sum(
        1
        for conn in psutil.Process().net_connections(kind="tcp")
        if conn.raddr and conn.laddr and conn.laddr.port == port
    )


def test_the_count_is_this_process_accepted_connections_on_the_port() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        assert client_connections(port) == 0  # a listening socket has no peer
        clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(5)]
        accepted = [server.accept()[0] for _ in clients]
        try:
            # the client ends are ours too, but their local port is an ephemeral one
            assert client_connections(port) == 5 == _psutil_count(port)
            accepted.pop().close()
            accepted.pop().close()
            assert client_connections(port) == 3 == _psutil_count(port)
        finally:
            for sock in clients + accepted:
                sock.close()


def test_connections_of_another_process_on_the_port_are_not_counted() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        # another process connects to our port and holds its end open
        child = subprocess.Popen(
            [sys.executable, "-c",
             "import socket, sys, time\n"
             f"s = socket.create_connection(('127.0.0.1', {port}))\n"
             "print('up', flush=True)\n"
             "sys.stdin.read()\n"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            assert child.stdout is not None and child.stdout.readline().strip() == "up"
            assert client_connections(port) == 0  # not yet accepted here: the kernel's queue
            conn, _ = server.accept()
            with conn:
                assert client_connections(port) == 1 == _psutil_count(port)
        finally:
            child.communicate("", timeout=10)


def test_a_port_nothing_uses_counts_zero() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert client_connections(port) == 0 == _psutil_count(port)
