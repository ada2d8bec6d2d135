"""The native server holds ``ReaderLimits``: the header timeout (idle, slowloris, after each
answer), the connection cap (past it, the backlog), the read buffer (431), write
backpressure, and a drain on stop. Real sockets, the real ``ReaderApp`` on the stack."""

from __future__ import annotations

import asyncio
import socket
import time

import orjson
import pytest

from readers import ReaderLimits, create_app
from readers._http import new_event_loop
from tests.readers._wire import closed_by_server, connect, native, read_response, request
from tiers import MultiTierCache

pytestmark = pytest.mark.integration

SHORT = ReaderLimits(header_timeout_s=0.5)


async def test_a_socket_that_sends_nothing_is_closed_and_others_are_served(
    cache: MultiTierCache, prefix: str
) -> None:
    async with native(create_app(cache, key_prefix=prefix, limits=SHORT)) as server:
        idle = [await connect(server) for _ in range(20)]
        reader, writer = await connect(server)
        writer.write(request("/healthz"))
        assert (await read_response(reader)).status == 200  # not held up by the idle ones
        started = time.monotonic()
        for idle_reader, _ in idle:
            assert await closed_by_server(idle_reader, 3)
        assert time.monotonic() - started < 3
        # the keep-alive connection that answered is closed the same way after its answer
        assert await closed_by_server(reader, 3)
        for _, idle_writer in idle:
            idle_writer.close()
        writer.close()
        await asyncio.sleep(0.1)
        assert server.open_connections() == 0


async def test_a_head_trickled_a_byte_at_a_time_is_cut_off(
    cache: MultiTierCache, prefix: str
) -> None:
    async with native(create_app(cache, key_prefix=prefix, limits=SHORT)) as server:
        reader, writer = await connect(server)
        started = time.monotonic()
        closed = False
        for byte in b"GET /healthz HTTP/1.1\r\nHost: reader\r\nX-Slow: " + b"z" * 200:
            try:
                writer.write(bytes([byte]))
                await writer.drain()
            except ConnectionError:
                closed = True
                break
            if reader.at_eof() or await closed_by_server(reader, 0.05):
                closed = True
                break
        assert closed and time.monotonic() - started < 3
        writer.close()


async def test_the_timeout_restarts_after_each_answer(cache: MultiTierCache, prefix: str) -> None:
    """A client that sends a request every 0.3 s is never cut off by a 0.5 s timeout."""
    async with native(create_app(cache, key_prefix=prefix, limits=SHORT)) as server:
        reader, writer = await connect(server)
        for _ in range(5):
            writer.write(request("/healthz"))
            assert (await read_response(reader)).status == 200
            await asyncio.sleep(0.3)
        writer.close()


async def test_past_the_cap_connections_wait_in_the_backlog(
    cache: MultiTierCache, prefix: str
) -> None:
    limits = ReaderLimits(header_timeout_s=30, max_connections=3)
    async with native(create_app(cache, key_prefix=prefix, limits=limits)) as server:
        held = [await connect(server) for _ in range(3)]
        await asyncio.sleep(0.1)
        assert server.open_connections() == 3
        reader, writer = await connect(server)  # the kernel completes it: the backlog
        writer.write(request("/healthz"))
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 0.5)
        assert server.open_connections() == 3
        held[0][1].close()  # one goes: the waiting one is accepted and answered
        assert (await read_response(reader)).status == 200
        for _, held_writer in held[1:]:
            held_writer.close()
        writer.close()


async def test_a_head_larger_than_the_buffer_is_431_and_closed(
    cache: MultiTierCache, prefix: str
) -> None:
    limits = ReaderLimits(max_url_bytes=256, max_header_bytes=1024, buffer_bytes=8192)
    async with native(create_app(cache, key_prefix=prefix, limits=limits)) as server:
        # over the reader's own limit, within the buffer: the reader's JSON 431, kept open
        reader, writer = await connect(server)
        writer.write(request("/healthz", X_Big="b" * 2000))
        resp = await read_response(reader)
        assert resp.status == 431 and orjson.loads(resp.body)["error"] == "headers_too_large"
        assert "connection" not in resp.headers
        writer.close()
        # over the buffer, in one write, in many header lines, and trickled in pieces
        for head in (
            request("/healthz", X_Big="b" * 10_000),
            request("/healthz", **{f"X_H{i}": "v" * 100 for i in range(100)}),
            None,
        ):
            reader, writer = await connect(server)
            if head is not None:
                writer.write(head)
            else:  # one header line that never ends, 1 KiB a write
                writer.write(b"GET /healthz HTTP/1.1\r\nX-Big: ")
                for _ in range(12):
                    writer.write(b"c" * 1024)
                    await writer.drain()
                    await asyncio.sleep(0.01)
            resp = await read_response(reader)
            assert resp.status == 431 and resp.headers["connection"] == "close"
            assert await closed_by_server(reader, 2)
            writer.close()
        await asyncio.sleep(0.1)
        assert server.open_connections() == 0


async def test_reading_pauses_while_the_client_does_not_read_its_answers(
    cache: MultiTierCache, prefix: str
) -> None:
    """Write backpressure: a client pipelining big answers it does not read stops being
    read (the server's buffer stays bounded); once it reads, every answer arrives."""
    count = 400  # /openapi.json answers, ~15 KB each: far past the transport's high mark
    async with native(create_app(cache, key_prefix=prefix)) as server:
        loop = asyncio.get_running_loop()
        sock = socket.create_connection(("127.0.0.1", server.port))
        sock.setblocking(False)
        await loop.sock_sendall(sock, request("/openapi.json") * count)  # and read nothing
        deadline = time.monotonic() + 10
        conn = None
        while time.monotonic() < deadline:
            conn = next(iter(server.connections), None)
            if conn is not None and conn.write_paused and conn.read_paused:
                break
            await asyncio.sleep(0.05)
        assert conn is not None and conn.write_paused and conn.read_paused
        assert conn.transport is not None
        await asyncio.sleep(0.3)  # paused stays paused: the buffer does not grow
        assert conn.write_paused and len(conn.queue) > 0
        assert conn.transport.get_write_buffer_size() < 256 * 1024  # not count answers' worth
        reader, writer = await asyncio.open_connection(sock=sock, limit=1 << 22)
        first = await read_response(reader)
        for _ in range(count - 1):
            resp = await read_response(reader)
            assert resp.status == 200 and resp.body == first.body
        assert not conn.write_paused and not conn.read_paused
        writer.close()


async def test_stop_finishes_the_answer_in_flight_and_closes_the_cache(
    cache: MultiTierCache, prefix: str
) -> None:
    closed = []

    async def slow_ready() -> bool:
        await asyncio.sleep(0.5)
        return True

    async def on_close() -> None:
        closed.append(True)

    app = create_app(cache, key_prefix=prefix, ready=slow_ready, on_close=on_close)
    async with native(app) as server:
        reader, writer = await connect(server)
        idle_reader, idle_writer = await connect(server)
        writer.write(request("/readyz"))
        await asyncio.sleep(0.1)  # in flight
        stopping = asyncio.ensure_future(server.stop(5))
        resp = await read_response(reader)
        assert resp.status == 200 and resp.headers["connection"] == "close"
        assert await closed_by_server(idle_reader, 1)  # idle: closed at once
        await stopping
        with pytest.raises(OSError):
            await asyncio.open_connection("127.0.0.1", server.port)  # no longer accepting
        writer.close()
        idle_writer.close()
    await asyncio.sleep(0.05)  # __rsgi_del__ in a running loop schedules on_close
    assert closed == [True]


def test_without_uvloop_the_loop_is_asyncios_and_says_so(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop raises ImportError
    loop = new_event_loop()
    try:
        assert type(loop).__module__.startswith("asyncio")
    finally:
        loop.close()
    assert "reader_uvloop_unavailable" in capsys.readouterr().out
    monkeypatch.undo()
    loop = new_event_loop()
    assert type(loop).__module__.startswith("uvloop")
    loop.close()


async def test_the_connection_gauge_is_the_native_servers_own_count(
    cache: MultiTierCache, prefix: str
) -> None:
    """Under the native server the watcher asks the server (no /proc sample): the gauge
    ``warmfleet_reader_open_connections`` follows the connections the server holds."""
    from readers._metrics import STATS

    app = create_app(cache, key_prefix=prefix, watch_port=0)
    async with native(app) as server:
        held = [await connect(server) for _ in range(3)]
        reader, writer = await connect(server)
        deadline = time.monotonic() + 5
        while STATS.open_connections != 4:  # sampled once a second
            assert time.monotonic() < deadline, STATS.open_connections
            await asyncio.sleep(0.1)
        assert STATS.connection_cap == server.cap
        writer.write(request("/metrics"))
        metrics = (await read_response(reader)).body.decode()
        assert "warmfleet_reader_open_connections 4.0" in metrics
        for _, held_writer in held:
            held_writer.close()
        deadline = time.monotonic() + 5
        while STATS.open_connections != 1:
            assert time.monotonic() < deadline, STATS.open_connections
            await asyncio.sleep(0.1)
        writer.close()
