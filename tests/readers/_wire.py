"""Raw HTTP/1.1 over asyncio streams, for the native server's tests: what a client sends
byte for byte and what comes back, answer by answer (no client library smoothing it over)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from readers._app import ReaderApp
from readers._http import NativeServer
from readers._limits import ReaderLimits


@dataclass
class Response:
    status: int
    headers: dict[str, str]  # lower-case names; a repeated one keeps the last
    names: list[str]  # every header name, in order
    body: bytes


async def read_response(reader: asyncio.StreamReader, *, head: bool = False) -> Response:
    """One answer off the connection; ``head``: the answer to a HEAD (no body follows)."""
    raw = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    lines = raw.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    assert lines[0].startswith("HTTP/1.1 "), lines[0]
    headers: dict[str, str] = {}
    names = []
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.lower()] = value.strip()
            names.append(name.lower())
    length = int(headers.get("content-length", "0"))
    body = b"" if head else await asyncio.wait_for(reader.readexactly(length), 10)
    return Response(status, headers, names, body)


async def closed_by_server(reader: asyncio.StreamReader, within_s: float) -> bool:
    """True if the server closes the connection (EOF or reset) within ``within_s``."""
    try:
        rest = await asyncio.wait_for(reader.read(65536), within_s)
    except TimeoutError:
        return False
    except ConnectionError:
        return True
    if rest == b"":
        return True
    return await closed_by_server(reader, within_s)  # bytes first, then EOF


def request(path: str, method: str = "GET", version: str = "1.1", **headers: str) -> bytes:
    lines = [f"{method} {path} HTTP/{version}", "Host: reader"]
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


@asynccontextmanager
async def native(app: ReaderApp, limits: ReaderLimits | None = None) -> AsyncIterator[NativeServer]:
    """The native server on a free port in this loop (the test can look inside it)."""
    server = NativeServer(app, "127.0.0.1", 0, limits or app.limits)
    await server.start()
    try:
        yield server
    finally:
        await server.stop(5)
        app.__rsgi_del__(asyncio.get_running_loop())


async def connect(
    server: NativeServer,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", server.port, limit=1 << 22)
