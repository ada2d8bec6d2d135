"""toxiproxy for the faults stack: the server built from the Go module proxy into the cache,
and a small async client for its HTTP API.

Installed like helm (helm/check.sh): ``go install github.com/Shopify/toxiproxy/v2/cmd/server``
into ``$WARMFLEET_HOME/bin`` the first time, renamed ``toxiproxy-server`` (the module names
the binary ``server``). The HTTP API is small enough to drive directly; the PyPI client is
from 2019.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from stack._errors import StackError

TOXIPROXY_VERSION = "v2.5.0"
MODULE = "github.com/Shopify/toxiproxy/v2/cmd/server"
HOST = "127.0.0.1"

#: proxy name -> offset of its listen port from the toxiproxy API port
PROXIES: dict[str, int] = {"kafka": 1, "redis": 2, "memcached": 3, "sim-binance": 4, "sim-okx": 5}

Say = Callable[[str], None]


class ToxiproxyError(StackError):
    """The toxiproxy API refused a request or did not answer."""


def binary(home: Path) -> Path:
    return home / "bin" / f"toxiproxy-server-{TOXIPROXY_VERSION}"


def _go() -> str:
    found = shutil.which("go")
    if found:
        return found
    if os.access("/usr/local/go/bin/go", os.X_OK):
        return "/usr/local/go/bin/go"
    raise StackError(
        "no Go toolchain (looked on PATH and in /usr/local/go/bin): cannot install toxiproxy"
    )


def ensure_toxiproxy(home: Path, say: Say) -> Path:
    """The server binary, built once into the cache; later calls return it at once."""
    target = binary(home)
    if target.exists() and os.access(target, os.X_OK):
        return target
    go = _go()
    build_dir = home / "bin" / f".toxiproxy-build-{os.getpid()}"
    build_dir.mkdir(parents=True, exist_ok=True)
    say(f"toxiproxy: go install {MODULE}@{TOXIPROXY_VERSION} (first run only, about a minute)")
    started = time.monotonic()
    env = {**os.environ, "GOBIN": str(build_dir), "CGO_ENABLED": "0"}
    env["GOFLAGS"] = (env.get("GOFLAGS", "") + " -trimpath").strip()
    proc = subprocess.run(
        [go, "install", "-ldflags", "-s -w", f"{MODULE}@{TOXIPROXY_VERSION}"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    built = build_dir / "server"
    if proc.returncode != 0 or not built.exists():
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-8:])
        raise StackError(f"installing toxiproxy failed (exit {proc.returncode}):\n{tail}")
    built.replace(target)  # atomic: a concurrent `up` sees the old state or the whole binary
    shutil.rmtree(build_dir, ignore_errors=True)
    say(f"  toxiproxy {TOXIPROXY_VERSION} installed in {time.monotonic() - started:.0f}s: {target}")
    return target


def server_command(home: Path, port: int) -> list[str]:
    return [str(binary(home)), "-host", HOST, "-port", str(port)]


def api_answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://{HOST}:{port}/version", timeout=1) as resp:
            return bool(resp.status == 200)
    except (OSError, urllib.error.URLError):
        return False


def proxy_port(api_port: int, name: str) -> int:
    return api_port + PROXIES[name]


def ensure_proxies(api_port: int, upstreams: dict[str, str]) -> dict[str, str]:
    """Create (or re-point) one proxy per name -> upstream ``host:port``; returns name ->
    listen address. Synchronous: `warmfleet stack up` is not async."""
    out: dict[str, str] = {}
    for name, upstream in upstreams.items():
        listen = f"{HOST}:{proxy_port(api_port, name)}"
        body = {"name": name, "listen": listen, "upstream": upstream, "enabled": True}
        status, answer = _call_sync(api_port, "POST", "/proxies", body)
        if status == 409:  # exists: point it where it should, enabled, without its toxics
            _call_sync(api_port, "POST", f"/proxies/{name}", body, ok=(200,))
            _, current = _call_sync(api_port, "GET", f"/proxies/{name}/toxics", None, ok=(200,))
            for toxic in current or []:
                _call_sync(
                    api_port, "DELETE", f"/proxies/{name}/toxics/{toxic['name']}", None,
                    ok=(204, 200, 404),
                )  # fmt: skip
        elif status != 201:
            raise ToxiproxyError(f"toxiproxy: creating proxy {name} failed: {status} {answer}")
        out[name] = listen
    return out


def _call_sync(
    api_port: int, method: str, path: str, body: Any, ok: tuple[int, ...] = (200, 201, 204, 409)
) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"http://{HOST}:{api_port}{path}", data=data, method=method)
    req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    except OSError as exc:
        raise ToxiproxyError(f"toxiproxy API on port {api_port} does not answer: {exc}") from exc
    if status not in ok:
        raise ToxiproxyError(f"toxiproxy: {method} {path} -> {status} {raw[:200]!r}")
    return status, json.loads(raw) if raw.strip() else None


@dataclass(frozen=True, slots=True)
class Toxic:
    """One toxic as the API takes it: ``type`` latency | timeout | reset_peer | bandwidth |
    slow_close | limit_data | slicer; ``stream`` downstream (server -> client) or upstream."""

    type: str
    attributes: dict[str, float]
    stream: str = "downstream"
    toxicity: float = 1.0
    name: str | None = None

    def body(self) -> dict[str, Any]:
        return {
            "name": self.name or f"{self.type}_{self.stream}",
            "type": self.type,
            "stream": self.stream,
            "toxicity": self.toxicity,
            "attributes": self.attributes,
        }


class Toxiproxy:
    """Async client of the toxiproxy HTTP API (``http://127.0.0.1:8474``)."""

    def __init__(self, url: str, timeout_s: float = 5.0) -> None:
        self.url = url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Toxiproxy:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _call(self, method: str, path: str, body: Any = None) -> Any:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        try:
            async with self._session.request(method, self.url + path, json=body) as resp:
                text = await resp.text()
                if resp.status >= 300:
                    raise ToxiproxyError(f"toxiproxy: {method} {path} -> {resp.status} {text}")
                return json.loads(text) if text.strip() else None
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ToxiproxyError(f"toxiproxy at {self.url} does not answer: {exc!r}") from exc

    async def version(self) -> str:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        try:
            async with self._session.get(self.url + "/version") as resp:
                return (await resp.text()).strip()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ToxiproxyError(f"toxiproxy at {self.url} does not answer: {exc!r}") from exc

    async def proxies(self) -> dict[str, dict[str, Any]]:
        return dict(await self._call("GET", "/proxies"))

    async def create(self, name: str, listen: str, upstream: str) -> dict[str, Any]:
        body = {"name": name, "listen": listen, "upstream": upstream, "enabled": True}
        return dict(await self._call("POST", "/proxies", body))

    async def update(self, name: str, **fields: Any) -> dict[str, Any]:
        """Change ``upstream``, ``listen`` or ``enabled`` (False cuts every connection)."""
        return dict(await self._call("POST", f"/proxies/{name}", fields))

    async def add_toxic(self, proxy: str, toxic: Toxic) -> str:
        answer = await self._call("POST", f"/proxies/{proxy}/toxics", toxic.body())
        return str(answer["name"])

    async def remove_toxic(self, proxy: str, name: str) -> None:
        await self._call("DELETE", f"/proxies/{proxy}/toxics/{name}")

    async def toxics(self, proxy: str) -> list[dict[str, Any]]:
        return list(await self._call("GET", f"/proxies/{proxy}/toxics"))

    async def reset(self) -> None:
        """Every proxy enabled, every toxic removed."""
        await self._call("POST", "/reset")
