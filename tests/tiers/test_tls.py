"""``rediss://``: a private TLS-only Redis with a self-signed certificate."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._servers import free_port
from tiers import MultiTierCache, RedisTier

pytestmark = pytest.mark.integration


@pytest.fixture
def tls_redis(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
         "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    port = free_port()
    proc = subprocess.Popen(
        ["redis-server", "--bind", "127.0.0.1", "--port", "0", "--tls-port", str(port),
         "--tls-cert-file", str(cert), "--tls-key-file", str(key), "--tls-ca-cert-file",
         str(cert), "--tls-auth-clients", "no", "--save", "", "--appendonly", "no",
         "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while subprocess.run(
            ["redis-cli", "--tls", "--cacert", str(cert), "-p", str(port), "ping"],
            capture_output=True, timeout=5,
        ).stdout.strip() != b"PONG":  # fmt: skip
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.skip("this redis-server has no TLS support")
            time.sleep(0.1)
        yield port, cert
    finally:
        proc.terminate()
        proc.wait(10)


async def test_rediss_with_a_trusted_certificate(tls_redis: tuple[int, Path], prefix: str) -> None:
    port, cert = tls_redis
    cache = MultiTierCache.from_urls(
        "memory://", f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={cert}", timeout_s=2.0,
        invalidation_channel=None,
    )  # fmt: skip
    key = f"{prefix}:v2:misc:value:1m:tls"
    try:
        assert isinstance(cache.tiers[1], RedisTier)
        assert set(await cache.set(key, {"x": 1}, data_type="default", as_of=1)) == {
            "memory", "redis",
        }  # fmt: skip
        cache.tiers[0].clear()  # type: ignore[attr-defined]
        hit = await cache.get(key)
        assert hit is not None and hit.tier == "redis" and hit.value == {"x": 1}
    finally:
        await cache.close()


async def test_rediss_with_an_untrusted_certificate_is_a_tier_error(
    tls_redis: tuple[int, Path], prefix: str
) -> None:
    port, _cert = tls_redis
    cache = MultiTierCache.from_urls(f"rediss://127.0.0.1:{port}/0", timeout_s=2.0)
    try:
        assert await cache.get(f"{prefix}:v2:misc:value:1m:tls") is None  # no exception
        assert cache.stats()["redis"]["errors"] == 1
    finally:
        await cache.close()
