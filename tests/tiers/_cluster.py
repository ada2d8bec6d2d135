"""A private Redis Cluster for the tier tests: three masters on free ports, started,
stopped, and one node restarted (its nodes.conf keeps its slots) — never the shared stack."""

from __future__ import annotations

import random
import subprocess
import time
from pathlib import Path

from redis.crc import key_slot

from stack._services import port_free

#: the slot ranges `redis-cli --cluster create` gives three masters, in the order given
SLOT_RANGES = ((0, 5460), (5461, 10922), (10923, 16383))


def start_cluster(tmp_path: Path, *extra: str) -> tuple[list[int], list[subprocess.Popen[bytes]]]:
    """Three private masters (no replicas) made one cluster; the caller stops the procs."""
    ports = cluster_ports(3)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for port in ports:
            data = tmp_path / str(port)
            data.mkdir()
            procs.append(
                subprocess.Popen(
                    [
                        "redis-server",
                        "--bind",
                        "127.0.0.1",
                        "--port",
                        str(port),
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        "nodes.conf",
                        "--save",
                        "",
                        "--appendonly",
                        "no",
                        "--dir",
                        str(data),
                        "--loglevel",
                        "warning",
                        *extra,
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        for port in ports:
            wait_for(["redis-cli", "-p", str(port), "ping"], b"PONG")
        subprocess.run(
            ["redis-cli", "--cluster", "create", *(f"127.0.0.1:{p}" for p in ports),
             "--cluster-replicas", "0", "--cluster-yes"],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30,
        )  # fmt: skip
        for port in ports:
            wait_for(["redis-cli", "-p", str(port), "cluster", "info"], b"cluster_state:ok")
    except BaseException:
        stop_cluster(procs)
        raise
    return ports, procs


def stop_cluster(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        proc.wait(10)


def cluster_ports(n: int) -> list[int]:
    """Free ports whose cluster-bus port (+10000) is free and valid too."""
    rng = random.Random()
    ports: list[int] = []
    while len(ports) < n:
        port = rng.randrange(20_000, 50_000)
        if port not in ports and port_free(port) and port_free(port + 10_000):
            ports.append(port)
    return ports


def wait_for(cmd: list[str], expect: bytes, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        out = subprocess.run(cmd, capture_output=True, timeout=5).stdout
        if expect in out:
            return
        time.sleep(0.1)
    raise RuntimeError(f"{' '.join(cmd)} never said {expect!r}")


def restart_node(procs: list[subprocess.Popen[bytes]], index: int, port: int) -> None:
    """Start node ``index`` again with its own command line (same port, same nodes.conf);
    the new process replaces the old one in ``procs``, so the fixture stops it."""
    procs[index] = subprocess.Popen(
        procs[index].args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    wait_for(["redis-cli", "-p", str(port), "ping"], b"PONG")


def key_on_node(prefix: str, index: int, tag: str = "c") -> str:
    """A key whose slot node ``index`` (0, 1, 2 in the order created) serves."""
    low, high = SLOT_RANGES[index]
    for i in range(10_000):
        key = f"{prefix}:v2:misc:value:1m:{tag}{i}"
        if low <= key_slot(key.encode()) <= high:
            return key
    raise AssertionError("no key found")
