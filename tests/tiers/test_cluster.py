"""Redis Cluster: three private masters, keys spread over slots; the Redis tier works the same."""

from __future__ import annotations

import asyncio
import random
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from stack._services import port_free
from tiers import MultiTierCache, RedisTier, Write
from tiers._envelope import encode_body, now_ms
from tiers._protocol import StoreItem

pytestmark = pytest.mark.integration


def start_cluster(tmp_path: Path, *extra: str) -> tuple[list[int], list[subprocess.Popen[bytes]]]:
    """Three private masters (no replicas) made one cluster; the caller stops the procs."""
    ports = _cluster_ports(3)
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
            _wait(["redis-cli", "-p", str(port), "ping"], b"PONG")
        subprocess.run(
            ["redis-cli", "--cluster", "create", *(f"127.0.0.1:{p}" for p in ports),
             "--cluster-replicas", "0", "--cluster-yes"],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30,
        )  # fmt: skip
        for port in ports:
            _wait(["redis-cli", "-p", str(port), "cluster", "info"], b"cluster_state:ok")
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


@pytest.fixture(scope="module")
def cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    ports, procs = start_cluster(tmp_path_factory.mktemp("cluster"))
    try:
        yield f"redis+cluster://127.0.0.1:{ports[0]}"
    finally:
        stop_cluster(procs)


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


async def test_cluster_batches_by_hash_slot(cluster_url: str, prefix: str) -> None:
    """A script may only touch keys of one slot: keys sharing a hash tag go out in one call
    (cut at the chunk size), the rest one slot at a time; answers still follow the items."""
    tagged = [f"{{{prefix}}}:v2:misc:value:1m:t{i}" for i in range(7)]
    spread = [f"{prefix}:v2:misc:value:1m:s{i}" for i in range(7)]
    keys = [k for pair in zip(tagged, spread, strict=True) for k in pair]
    tier = RedisTier(cluster_url.replace("+cluster://", "://"), cluster=True, max_keys_per_script=3)
    try:
        first = [item_for(k, 10) for k in keys[::2]]
        assert await tier.set_many(first) == [True] * 7
        chunks = tier._chunks([item_for(k, 1) for k in keys])
        assert sorted(len(c) for c in chunks if keys[c[0]] in tagged) == [1, 3, 3]
        answers = await tier.set_many([item_for(k, 5 + i) for i, k in enumerate(keys)])
        # the tagged keys hold as_of 10: refused below it, stored from 10 on
        assert answers == [5 + i >= 10 if k in tagged else True for i, k in enumerate(keys)]
        found = await tier.get_many(keys)
        assert [e.as_of if e else None for e in found] == [
            max(10, 5 + i) if k in tagged else 5 + i for i, k in enumerate(keys)
        ]
    finally:
        await tier.close()


def item_for(key: str, as_of: int) -> StoreItem:
    body = encode_body(key, as_of, as_of=as_of, written_at=1, source="t")
    return StoreItem(key, body, 60.0, now_ms() + 60_000)
