"""The native server (``readers._http``) over real sockets: keep-alive, close, HTTP/1.0,
pipelining, HEAD, bodies, malformed requests, the ``date`` header and the path as the app
sees it. The app is the real ``ReaderApp`` on the stack's Memcached and Redis; the bytes on
the wire are read by hand (``tests/readers/_wire.py``)."""

from __future__ import annotations

import asyncio
import re
import time
from email.utils import parsedate_to_datetime
from typing import Any

import orjson
import pytest

from readers import ReaderApp, create_app
from readers._http import PIPELINE
from tests.readers._helpers import now_ms
from tests.readers._wire import closed_by_server, connect, native, read_response, request
from tiers import MultiTierCache
from topics import key_for

pytestmark = pytest.mark.integration

SYMBOLS = [f"N{i:02d}/USDT" for i in range(5)]


async def warm(cache: MultiTierCache, prefix: str) -> None:
    for sym in SYMBOLS:
        value = {"exchange": "binance", "symbol": sym, "last": 1.5}
        key = key_for("tickers", "binance", sym, prefix=prefix)
        await cache.set(key, value, data_type="tickers", as_of=now_ms() - 1500)


def path_of(sym: str) -> str:
    return f"/v2/tickers/binance/{sym.replace('/', '-')}"


async def app_with_cache(cache: MultiTierCache, prefix: str, **kw: Any) -> ReaderApp:
    await warm(cache, prefix)
    return create_app(cache, key_prefix=prefix, **kw)


async def test_http11_keeps_the_connection_alive_by_default(
    cache: MultiTierCache, prefix: str
) -> None:
    async with native(await app_with_cache(cache, prefix)) as server:
        reader, writer = await connect(server)
        for sym in SYMBOLS:
            writer.write(request(path_of(sym)))
            resp = await read_response(reader)
            assert resp.status == 200 and "connection" not in resp.headers
            assert orjson.loads(resp.body)["value"]["symbol"] == sym
        assert server.open_connections() == 1  # one connection served all five
        writer.close()


async def test_connection_close_is_answered_then_closed(cache: MultiTierCache, prefix: str) -> None:
    async with native(await app_with_cache(cache, prefix)) as server:
        reader, writer = await connect(server)
        writer.write(request("/healthz", Connection="close"))
        resp = await read_response(reader)
        assert resp.status == 200 and resp.headers["connection"] == "close"
        assert await closed_by_server(reader, 2)
        writer.close()


async def test_http10_closes_unless_it_asks_for_keep_alive(
    cache: MultiTierCache, prefix: str
) -> None:
    async with native(await app_with_cache(cache, prefix)) as server:
        reader, writer = await connect(server)
        writer.write(request("/healthz", version="1.0"))
        resp = await read_response(reader)
        assert resp.status == 200 and resp.headers["connection"] == "close"
        assert await closed_by_server(reader, 2)
        writer.close()

        reader, writer = await connect(server)
        for _ in range(2):
            writer.write(request("/healthz", version="1.0", Connection="keep-alive"))
            resp = await read_response(reader)
            assert resp.status == 200 and resp.headers["connection"] == "keep-alive"
        assert not await closed_by_server(reader, 0.3)
        writer.close()


async def test_pipelined_requests_are_answered_in_order_while_one_waits(
    cache: MultiTierCache, prefix: str
) -> None:
    waited = []

    async def slow_ready() -> bool:  # the first request suspends; the others queue behind it
        await asyncio.sleep(0.3)
        waited.append(time.monotonic())
        return True

    async with native(await app_with_cache(cache, prefix, ready=slow_ready)) as server:
        reader, writer = await connect(server)
        writer.write(request("/readyz") + b"".join(request(path_of(s)) for s in SYMBOLS))
        first = await read_response(reader)
        assert first.status == 200 and orjson.loads(first.body) == {"status": "ready"}
        for sym in SYMBOLS:
            resp = await read_response(reader)
            assert orjson.loads(resp.body)["value"]["symbol"] == sym
        assert len(waited) == 1
        writer.close()


async def test_many_pipelined_requests_are_bounded_and_all_answered(
    cache: MultiTierCache, prefix: str
) -> None:
    """More than the queue holds, in one write: reading pauses, nothing is lost."""
    count = PIPELINE * 20
    async with native(await app_with_cache(cache, prefix)) as server:
        reader, writer = await connect(server)
        writer.write(b"".join(request(path_of(SYMBOLS[i % 5])) for i in range(count)))
        for i in range(count):
            resp = await read_response(reader)
            assert orjson.loads(resp.body)["value"]["symbol"] == SYMBOLS[i % 5]
        writer.write(request("/healthz"))
        assert (await read_response(reader)).status == 200
        writer.close()


async def test_head_has_the_get_headers_and_no_body(cache: MultiTierCache, prefix: str) -> None:
    async with native(await app_with_cache(cache, prefix)) as server:
        reader, writer = await connect(server)
        path = path_of(SYMBOLS[0])
        writer.write(request(path, method="HEAD") + request(path))
        head = await read_response(reader, head=True)
        get = await read_response(reader)  # parses only if the HEAD sent no body
        assert head.status == get.status == 200
        assert int(head.headers["content-length"]) == len(get.body) > 0
        for name in ("content-type", "etag", "cache-control", "age"):
            assert head.headers[name] == get.headers[name]
        writer.close()


async def test_the_date_header_is_an_http_date_of_now(cache: MultiTierCache, prefix: str) -> None:
    async with native(await app_with_cache(cache, prefix)) as server:
        reader, writer = await connect(server)
        writer.write(request(path_of(SYMBOLS[1])))
        resp = await read_response(reader)
        date = resp.headers["date"]
        assert re.fullmatch(r"[A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d GMT", date)
        assert abs(parsedate_to_datetime(date).timestamp() - time.time()) < 5
        # what the reader sends today, and the length the body has
        assert {"content-type", "etag", "cache-control", "age", "content-length"} <= set(resp.names)
        assert int(resp.headers["content-length"]) == len(resp.body)
        writer.close()


async def test_the_path_is_percent_decoded_and_the_query_raw(
    cache: MultiTierCache, prefix: str
) -> None:
    async with native(await app_with_cache(cache, prefix)) as server:
        reader, writer = await connect(server)
        writer.write(request("/v2/tickers/binance/N00%2DUSDT"))  # %2D is "-"
        resp = await read_response(reader)
        assert resp.status == 200 and orjson.loads(resp.body)["value"]["symbol"] == "N00/USDT"
        writer.write(request(path_of(SYMBOLS[0]) + "?max_age=0.5"))  # older than 0.5 s
        stale = await read_response(reader)
        assert stale.status == 404 and orjson.loads(stale.body)["error"] == "stale"
        writer.write(request(path_of(SYMBOLS[0]) + "?max_age=1&max_age=2"))
        assert (await read_response(reader)).status == 400  # given twice: parsed from raw
        writer.close()


async def test_a_request_body_is_discarded_and_the_connection_goes_on(
    cache: MultiTierCache, prefix: str
) -> None:
    async with native(await app_with_cache(cache, prefix)) as server:
        reader, writer = await connect(server)
        head = request(path_of(SYMBOLS[2]), Content_Length="11")
        writer.write(head + b"hello world" + request("/healthz"))
        assert (await read_response(reader)).status == 200
        assert (await read_response(reader)).status == 200
        chunked = request("/healthz", Transfer_Encoding="chunked")
        writer.write(chunked + b"5\r\nhello\r\n0\r\n\r\n" + request("/healthz"))
        assert (await read_response(reader)).status == 200
        assert (await read_response(reader)).status == 200
        writer.close()


async def test_a_body_over_the_buffer_is_413_and_closed(cache: MultiTierCache, prefix: str) -> None:
    app = await app_with_cache(cache, prefix)
    async with native(app) as server:
        limit = app.limits.buffer_bytes
        reader, writer = await connect(server)
        writer.write(request("/healthz", Content_Length=str(limit * 4)) + b"x" * (limit + 10))
        resp = await read_response(reader)
        assert resp.status == 413 and orjson.loads(resp.body)["error"] == "body_too_large"
        assert resp.headers["connection"] == "close"
        assert await closed_by_server(reader, 2)
        writer.close()
        await asyncio.sleep(0.1)
        assert server.open_connections() == 0


@pytest.mark.parametrize(
    "garbage",
    [
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40,  # a TLS hello
        b"GET /healthz HTTP/1.1\r\nHost: reader\r\nBad Header Line\r\n\r\n",
        b"GET /healthz HTTP/9.9\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
    ],
    ids=["tls", "header-without-colon", "version", "two-lengths"],
)
async def test_a_malformed_request_is_400_and_closed(
    cache: MultiTierCache, prefix: str, garbage: bytes
) -> None:
    async with native(await app_with_cache(cache, prefix)) as server:
        reader, writer = await connect(server)
        writer.write(garbage)
        resp = await read_response(reader)
        assert resp.status == 400 and orjson.loads(resp.body)["error"] == "bad_request"
        assert await closed_by_server(reader, 2)
        writer.close()
        # the worker goes on, and holds no socket of the bad client
        reader, writer = await connect(server)
        writer.write(request("/healthz"))
        assert (await read_response(reader)).status == 200
        writer.close()
        await asyncio.sleep(0.1)
        assert server.open_connections() == 0


async def test_a_client_that_resets_mid_answer_leaks_nothing(
    cache: MultiTierCache, prefix: str
) -> None:
    async def slow_ready() -> bool:
        await asyncio.sleep(0.2)
        return True

    async with native(await app_with_cache(cache, prefix, ready=slow_ready)) as server:
        for _ in range(5):
            _, writer = await connect(server)
            writer.write(request("/readyz"))
            await writer.drain()
            writer.transport.abort()  # gone before its answer
        await asyncio.sleep(0.5)
        assert server.open_connections() == 0
        reader, writer = await connect(server)
        writer.write(request("/readyz"))
        assert (await read_response(reader)).status == 200
        writer.close()
