"""Redis Cluster: three private masters, keys spread over slots; the Redis tier works the same."""

from __future__ import annotations

import asyncio
import random
import subprocess
import time
from collections.abc import Iterator

import pytest

from stack._services import port_free
from tiers import MultiTierCache, RedisTier, Write

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp_path = tmp_path_factory.mktemp("cluster")
    ports = _cluster_ports(3)
    procs = []
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
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        for port in ports:
            _wait(["redis-cli", "-p", str(port), "ping"], b"PONG")
        subprocess.run(
            ["redis-cli", "--cluster", "create", *(f"127.0.0.1:{p}" for p in ports),
             "--cluster-replicas", "0", "--cluster-yes"],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30,
        )  # fmt: skip
        for port in ports:
            _wait(["redis-cli", "-p", str(port), "cluster", "info"], b"cluster_state:ok")
        yield f"redis+cluster://127.0.0.1:{ports[0]}"
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(10)


def _cluster_ports(n: int) -> list[int]:
    """Free ports whose cluster-bus port (+10000) is free and valid too."""
    rng = random.Random()
    ports: list[int] = []
    while len(ports) < n:
        port = rng.randrange(20_000, 50_000)
        if port not in ports and port_free(port) and port_free(port + 10_000):
            ports.append(port)
    return ports


def _wait(cmd: list[str], expect: bytes, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        out = subprocess.run(cmd, capture_output=True, timeout=5).stdout
        if expect in out:
            return
        time.sleep(0.1)
    raise RuntimeError(f"{' '.join(cmd)} never said {expect!r}")


async def test_cluster_write_read_delete_and_monotonic(cluster_url: str, prefix: str) -> None:
    keys = [f"{prefix}:v2:misc:value:1m:c{i}" for i in range(60)]
    writer = MultiTierCache.from_urls(cluster_url, timeout_s=2.0, invalidation_channel=None)
    reader = MultiTierCache.from_urls(
        "memory://", cluster_url, timeout_s=2.0, invalidation_channel=None
    )
    try:
        assert isinstance(writer.tiers[0], RedisTier) and writer.tiers[0].cluster
        results = await writer.set_many([Write(k, i, "default", 10) for i, k in enumerate(keys)])
        assert all("redis" in r for r in results)
        stale = await writer.set_many([Write(k, -1, "default", 5) for k in keys])
        assert all(r == {} for r in stale)  # monotonic on every node
        hits = await reader.get_many(keys)
        assert [h.value if h else None for h in hits] == list(range(60))
        assert {h.tier for h in hits if h} == {"redis"}
        await writer.delete(keys[0])
        reader.tiers[0].clear()  # type: ignore[attr-defined]
        assert await reader.get(keys[0]) is None
        assert (await reader.get(keys[1])).value == 1  # type: ignore[union-attr]
        await asyncio.sleep(0)
    finally:
        await writer.close()
        await reader.close()


async def test_cluster_invalidation_reaches_other_l1(cluster_url: str, prefix: str) -> None:
    channel = f"{prefix}:invalidate"
    a = MultiTierCache.from_urls("memory://", cluster_url, invalidation_channel=channel)
    b = MultiTierCache.from_urls("memory://", cluster_url, invalidation_channel=channel)
    key = f"{prefix}:v2:misc:value:1m:inv"
    try:
        assert await a.start() and await b.start()
        await a.set(key, "v", data_type="default", as_of=1)
        assert (await b.get(key)).tier == "redis"  # type: ignore[union-attr]
        assert (await b.get(key)).tier == "memory"  # type: ignore[union-attr]
        await a.delete(key)
        for _ in range(100):
            if b.tiers[0].remaining_s(key) is None:  # type: ignore[attr-defined]
                break
            await asyncio.sleep(0.05)
        assert await b.get(key) is None
        assert b.stats()["overall"]["invalidations"] == 1
    finally:
        await a.close()
        await b.close()
