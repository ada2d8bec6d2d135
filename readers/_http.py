"""The reader's own HTTP/1.1 server: ``asyncio.Protocol`` + httptools (the ``native`` server).

It serves an RSGI-shaped app (``ReaderApp``: ``__rsgi_init__``, ``__rsgi__(scope, proto)``,
``__rsgi_del__``) the way granian did, without granian's two threads and their hand-off per
request (docs/reader.md, "Server choice"): the request is parsed by httptools
(llhttp, the parser uvicorn uses) inside the event loop, the app runs in one task per connection,
and its answer leaves in one ``transport.write``.

Per connection, requests are answered one at a time and in order (pipelined ones queue, at
most ``PIPELINE`` of them; past that, reading pauses). ``ReaderLimits`` bounds what a
client can hold:

* ``header_timeout_s`` — a whole request must arrive within it of the connection opening
  and of each answer, else the connection is closed (idle keep-alive sockets, slowloris);
* ``max_connections`` — the accept loop holds a semaphore: past the cap the worker stops
  accepting and new connections wait in the listen backlog (``backlog``);
* ``buffer_bytes`` — a request head larger is a 431 and a body larger a 413, then close;
  bytes that are not HTTP/1.x are a 400 and close.

Why not a Task-free fast path (driving the app's coroutine with ``send(None)``): the cache's
L2/L3 read path asks ``asyncio.current_task()`` for its deadline (``tiers._deadline``) before
it first suspends, so outside a task an L1 miss fails rather than suspends; docs/reader.md
has the measured cost of the task.
"""

from __future__ import annotations

import asyncio
import collections
import socket
import time
from email.utils import formatdate
from http import HTTPStatus
from typing import Any, Protocol
from urllib.parse import unquote

import httptools
import orjson
import structlog

from readers._limits import ReaderLimits, usable_connections

log = structlog.get_logger(__name__)

#: complete requests one connection may have queued behind the one being answered
PIPELINE = 16
#: a refused client's bytes are read and dropped this long before the socket closes
LINGER_S = 2.0
#: ``HTTP/1.1 <code> <phrase>\r\n``, built once
STATUS_LINES = {s.value: f"HTTP/1.1 {s.value} {s.phrase}\r\n".encode() for s in HTTPStatus}
_NO_LENGTH = frozenset((204, 304))  # RFC 9110 8.6: no Content-Length of an empty body


class App(Protocol):
    """What the server runs: the RSGI-shaped part of ``ReaderApp``."""

    def __rsgi_init__(self, loop: asyncio.AbstractEventLoop) -> None: ...

    async def __rsgi__(self, scope: Any, proto: Any) -> None: ...

    def __rsgi_del__(self, loop: asyncio.AbstractEventLoop) -> None: ...


class _Date:
    """The ``date`` header's value (IMF-fixdate, as hyper sends it), made once a second."""

    second = -1
    value = ""


def http_date() -> str:
    now = int(time.time())
    if now != _Date.second:
        _Date.second, _Date.value = now, formatdate(now, usegmt=True)
    return _Date.value


class Headers:
    """A request's headers as granian's RSGI scope has them: lower-case names, ``get`` (the
    first of a repeated header) and ``items`` (all, in order)."""

    __slots__ = ("_pairs",)

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self._pairs = pairs

    def get(self, name: str, default: str | None = None) -> str | None:
        for key, value in self._pairs:
            if key == name:
                return value
        return default

    def items(self) -> list[tuple[str, str]]:
        return self._pairs

    def __contains__(self, name: object) -> bool:
        return any(key == name for key, _ in self._pairs)


class Scope:
    """One request as the app reads it: ``path`` percent-decoded, ``query_string`` raw."""

    __slots__ = ("head", "headers", "http10", "keep_alive", "method", "path", "query_string")

    def __init__(
        self, method: str, path: str, query: str, headers: Headers, keep_alive: bool, http10: bool
    ) -> None:
        self.method, self.path, self.query_string = method, path, query
        self.headers, self.keep_alive, self.head = headers, keep_alive, method == "HEAD"
        self.http10 = http10


class _Refused(Exception):
    """Raised in a parser callback to stop parsing: the connection is answered and closed."""

    def __init__(self, status: int, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.kind, self.detail = status, kind, detail


def _decode_path(raw: bytes) -> str:
    if b"%" in raw:
        return unquote(raw.decode("latin-1"), errors="replace")  # %XX as UTF-8, like granian
    return raw.decode("utf-8", "replace")


class Connection(asyncio.Protocol):
    """One client connection; also the ``proto`` the app answers through."""

    def __init__(self, server: NativeServer) -> None:
        self.server = server
        self.loop = server.loop
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.queue: collections.deque[Scope] = collections.deque()
        self.current: Scope | None = None  # the request being answered
        self.worker: asyncio.Task[None] | None = None  # answers them (``_serve``)
        self.waiter: asyncio.Future[None] | None = None  # the worker waits for a request
        self.answered = False
        self.closing = False  # no more requests: close once the current one is answered
        self.refusal: tuple[int, list[tuple[str, str]], bytes] | None = None
        self.deadline = 0.0  # loop time by which a whole request must be in (0: none)
        self.timer: asyncio.TimerHandle | None = None  # the lingering close of a refusal
        self.write_paused = False
        self.read_paused = False
        self.in_head = True  # the next bytes belong to a request head
        self.head_bytes = 0  # the head's URL and whole header lines so far
        self.raw_head = 0  # the reads an incomplete head has spanned
        self.begun = 0  # messages begun: tells a new head from the same one
        self.body_bytes = 0
        self.url = b""
        self.pairs: list[tuple[str, str]] = []

    # ---- transport events -----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.server.connections.add(self)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self._cancel_linger()
        self.closing = True
        self.queue.clear()
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)  # the idle worker wakes, sees closing, ends
        self.server.connection_closed(self)

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return  # a request asked to close, or we refused one: the rest is not read
        spanning, begun = self.in_head, self.begun
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self.closing = True  # what follows is not HTTP/1.1: answer what came, then close
        except httptools.HttpParserError as exc:
            refused = exc.__context__ if isinstance(exc.__context__, _Refused) else None
            if refused is not None:
                return self._refuse(refused.status, refused.kind, refused.detail)
            return self._refuse(400, "bad_request", f"not an HTTP/1.1 request: {exc}")
        if self.in_head and spanning and begun == self.begun:
            # the same head, still incomplete after another read: what httptools holds of
            # it (a header line it has not finished) is bounded here, to a read more
            self.raw_head += len(data)
            if self.raw_head > self.server.limits.buffer_bytes:
                return self._refuse(431, "headers_too_large", self._head_detail())
        else:
            self.raw_head = 0
        self._next()

    def eof_received(self) -> bool | None:
        if self.closing and self.current is None and not self.queue:
            return None  # refused (lingering) or done: close now
        self.closing = True  # the client sends no more: answer what it sent, then close
        if self.current is None and not self.queue:
            return None  # the transport closes
        return True  # keep the write half open for the answers still to come

    def pause_writing(self) -> None:
        self.write_paused = True  # the client reads slower than we answer: stop reading
        self._reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        self._reading()
        self._next()

    # ---- parser callbacks -----------------------------------------------------------

    def on_message_begin(self) -> None:
        self.in_head, self.url, self.pairs, self.body_bytes = True, b"", [], 0
        self.head_bytes, self.begun = 0, self.begun + 1

    def on_url(self, url: bytes) -> None:
        self.url += url
        self._count(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        self.pairs.append((name.decode("latin-1").lower(), value.decode("latin-1")))
        self._count(len(name) + len(value) + 4)

    def on_headers_complete(self) -> None:
        self.in_head, self.head_bytes = False, 0

    def on_body(self, body: bytes) -> None:
        self.body_bytes += len(body)  # discarded: the reader's routes take no body
        limit = self.server.limits.buffer_bytes
        if self.body_bytes > limit:
            raise _Refused(413, "body_too_large", f"the request body is larger than {limit} bytes")

    def on_message_complete(self) -> None:
        self._disarm()  # the whole request arrived in time
        if self.closing:
            return  # pipelined after a request that closes the connection: not answered
        parser, url = self.parser, self.url
        keep_alive = parser.should_keep_alive()
        if url[:1] == b"/":
            raw_path, _, query = url.partition(b"?")
        else:  # absolute-form (a proxy's) or "*": the path is what the reader routes on
            try:
                parsed = httptools.parse_url(url)
            except httptools.HttpParserInvalidURLError:
                raise _Refused(400, "bad_request", "the request target is not a URL") from None
            raw_path, query = parsed.path or b"/", parsed.query or b""
        scope = Scope(
            parser.get_method().decode("latin-1"),
            _decode_path(raw_path),
            query.decode("latin-1"),
            Headers(self.pairs),
            keep_alive,
            parser.get_http_version() == "1.0",
        )
        self.queue.append(scope)
        self.in_head, self.head_bytes = True, 0
        if not keep_alive:
            self.closing = True  # requests after this one are not read
        self._reading()

    # ---- answering ------------------------------------------------------------------

    def _next(self) -> None:
        """Have the connection's task answer the next queued request, if it is idle."""
        if self.current is not None or self.write_paused or not self.queue:
            return
        if self.worker is None:
            self.worker = self.loop.create_task(self._serve())
        elif self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    async def _serve(self) -> None:
        """The connection's one task: its requests, one at a time. The cache needs a task
        around a request (``tiers._deadline`` reads ``current_task()``; one request at a
        time per task), but not a new one each time: waking a parked task costs 1.4 us of
        loop work against 2.0 us for creating one (asyncio's weak set of all tasks is
        Python code) — ``bench_reader.py`` prints both."""
        app, queue, loop = self.server.app, self.queue, self.loop
        while True:
            while not queue or self.write_paused:
                if self.closing and not queue:
                    return
                self.waiter = loop.create_future()
                try:
                    await self.waiter
                finally:
                    self.waiter = None
            scope = self.current = queue.popleft()
            self.answered = False
            self._reading()
            try:
                await app.__rsgi__(scope, self)
            except Exception:  # ReaderApp never raises; another app might
                log.exception("reader_app_failed", path=scope.path)
            if not self.answered:
                self._write(_error(500, "internal", "the reader failed; see its log"), close=True)
            self._done(scope)
            transport = self.transport
            if transport is None or transport.is_closing():
                return

    def response_bytes(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        """The app's answer to the current request: one write, the head and the body."""
        scope = self.current
        if scope is None or self.answered:
            log.warning("reader_answered_twice", status=status)
            return
        self.answered = True
        close = (self.closing and not self.queue) or not scope.keep_alive
        head = "".join([f"{name}: {value}\r\n" for name, value in headers])
        if status not in _NO_LENGTH:
            head += f"content-length: {len(body)}\r\n"
        head += f"date: {http_date()}\r\n"
        if close:
            head += "connection: close\r\n\r\n"
        elif scope.http10:
            head += "connection: keep-alive\r\n\r\n"  # an HTTP/1.0 client asked for it
        else:
            head += "\r\n"
        line = STATUS_LINES.get(status) or f"HTTP/1.1 {status} Unknown\r\n".encode()
        wire = line + head.encode("latin-1", "replace")
        if transport := self.transport:
            if not transport.is_closing():
                transport.write(wire if scope.head or status in _NO_LENGTH else wire + body)

    def _done(self, scope: Scope) -> None:
        self.current = None
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if self.refusal is not None:  # refused while this one was answered: now say so
            self._write(self.refusal, close=True)
            self._linger()
            return
        if not scope.keep_alive or (self.closing and not self.queue):
            transport.close()
            return
        if self.queue:
            self._next()
        else:
            self._arm()  # the next request must come within the timeout of this answer
            self._reading()

    def _refuse(self, status: int, kind: str, detail: str) -> None:
        """Answer a request the parser or the limits refused, then close the connection."""
        self.closing = True
        self.queue.clear()
        self.refusal = _error(status, kind, detail)
        if self.current is None:  # else the answer in flight goes out first (``_done``)
            self._write(self.refusal, close=True)
            self._linger()

    def _linger(self) -> None:
        """Close after the client stops sending (or ``LINGER_S``): closing a socket with
        unread bytes sends a reset, which can destroy the answer before the client reads
        it. Meanwhile what arrives is discarded (``closing``)."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if not transport.can_write_eof():
            transport.close()
            return
        transport.write_eof()  # the answer, then our FIN
        if self.read_paused:
            self.read_paused = False
            transport.resume_reading()
        self._disarm()
        self.timer = self.loop.call_later(LINGER_S, transport.close)

    def _cancel_linger(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _write(self, answer: tuple[int, list[tuple[str, str]], bytes], *, close: bool) -> None:
        status, headers, body = answer
        head = "".join([f"{name}: {value}\r\n" for name, value in headers])
        head += f"content-length: {len(body)}\r\ndate: {http_date()}\r\n"
        head += "connection: close\r\n\r\n" if close else "\r\n"
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.write(STATUS_LINES[status] + head.encode("latin-1") + body)

    # ---- limits ---------------------------------------------------------------------

    def _count(self, size: int) -> None:
        self.head_bytes += size
        if self.head_bytes > self.server.limits.buffer_bytes:
            raise _Refused(431, "headers_too_large", self._head_detail())

    def _head_detail(self) -> str:
        return f"the request head is larger than {self.server.limits.buffer_bytes} bytes"

    def _reading(self) -> None:
        """Read while the client's answers drain and its queue has room; else pause."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        pause = self.write_paused or len(self.queue) >= PIPELINE
        if pause and not self.read_paused:
            self.read_paused = True
            transport.pause_reading()
        elif not pause and self.read_paused:
            self.read_paused = False
            transport.resume_reading()

    def _arm(self) -> None:
        # a deadline the server's sweep reads, not a loop timer per request: call_later
        # and cancel cost 2-3 us a request under uvloop (in process, this box), a store 0.07
        self.deadline = self.loop.time() + self.server.limits.header_timeout_s

    def _disarm(self) -> None:
        self.deadline = 0.0

    def expired(self) -> None:
        """The sweep found the deadline passed: no whole request in time (idle, slowloris)."""
        self.deadline = 0.0
        if self.current is None and not self.queue and self.transport is not None:
            self.transport.close()

    def shutdown(self) -> None:
        """The server stops: close now if idle, else after the answer in flight."""
        self.closing = True
        self.queue.clear()
        if self.current is None and self.transport is not None:
            self.transport.close()


def _error(status: int, kind: str, detail: str) -> tuple[int, list[tuple[str, str]], bytes]:
    body = orjson.dumps({"error": kind, "detail": detail})
    return status, [("content-type", "application/json")], body


class NativeServer:
    """One worker's server: a listening socket, an accept loop holding the connection cap,
    and the app. ``start`` / ``stop``; ``open_connections`` is the connection gauge."""

    def __init__(
        self,
        app: App,
        host: str,
        port: int,
        limits: ReaderLimits,
        *,
        reuse_port: bool = False,
    ) -> None:
        self.app, self.host, self.port, self.limits = app, host, port, limits
        self.reuse_port = reuse_port
        self.cap = usable_connections(limits.max_connections)
        self.connections: set[Connection] = set()
        self.loop: asyncio.AbstractEventLoop  # set by start()
        self._slots: asyncio.Semaphore | None = None
        self._sock: socket.socket | None = None
        self._accepting: asyncio.Task[None] | None = None
        self._sweeping: asyncio.TimerHandle | None = None
        self._idle = asyncio.Event()
        # the timeout is checked this often: a connection goes within timeout + tick
        self.tick_s = min(0.25, limits.header_timeout_s / 4)

    def open_connections(self) -> int:
        return len(self.connections)

    async def start(self) -> None:
        """Bind, listen, run ``__rsgi_init__`` and start accepting."""
        self.loop = asyncio.get_running_loop()
        self._slots = asyncio.Semaphore(self.cap)
        sock = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if self.reuse_port:  # --workers N: the kernel spreads connections over them
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((self.host, self.port))
            sock.listen(self.limits.backlog)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        self._sock = sock
        self.port = sock.getsockname()[1]
        set_counter = getattr(self.app, "count_connections_with", None)
        if callable(set_counter):
            set_counter(self.open_connections, self.cap)  # the watcher asks us, not /proc
        self.app.__rsgi_init__(self.loop)
        self._accepting = self.loop.create_task(self._accept(sock))
        self._sweeping = self.loop.call_later(self.tick_s, self._sweep)

    def _sweep(self) -> None:
        now = self.loop.time()
        for conn in [c for c in self.connections if 0.0 < c.deadline <= now]:
            conn.expired()
        self._sweeping = self.loop.call_later(self.tick_s, self._sweep)

    async def _accept(self, sock: socket.socket) -> None:
        slots, loop = self._slots, self.loop
        assert slots is not None
        while True:
            await slots.acquire()  # past the cap: stop accepting, the backlog holds them
            try:
                conn, _ = await loop.sock_accept(sock)
            except asyncio.CancelledError:
                slots.release()
                raise
            except OSError as exc:  # EMFILE and the like: wait, do not spin or die
                slots.release()
                log.warning("reader_accept_failed", error=repr(exc))
                await asyncio.sleep(0.1)
                continue
            try:
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                await loop.connect_accepted_socket(lambda: Connection(self), conn)
            except OSError as exc:  # the client went away between accept and setup
                conn.close()
                slots.release()
                log.info("reader_connection_setup_failed", error=repr(exc))

    def connection_closed(self, conn: Connection) -> None:
        if conn in self.connections:
            self.connections.discard(conn)
            if self._slots is not None:
                self._slots.release()
        if not self.connections:
            self._idle.set()

    async def stop(self, grace_s: float = 10.0) -> None:
        """Stop accepting, let the answers in flight finish (at most ``grace_s``), close
        every connection. ``__rsgi_del__`` is the caller's (``run_native``, ``serving``)."""
        if self._accepting is not None:
            self._accepting.cancel()
            try:
                await self._accepting
            except asyncio.CancelledError:
                pass
            self._accepting = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        for conn in list(self.connections):
            conn.shutdown()
        if self.connections:
            self._idle.clear()
            try:
                await asyncio.wait_for(self._idle.wait(), grace_s)
            except TimeoutError:
                log.warning("reader_stop_unfinished", connections=len(self.connections))
        for conn in list(self.connections):
            if conn.transport is not None:
                conn.transport.abort()
        if self._sweeping is not None:
            self._sweeping.cancel()
            self._sweeping = None


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's loop; asyncio's own (logged) where uvloop cannot be imported."""
    try:
        import uvloop
    except ImportError as exc:
        log.warning("reader_uvloop_unavailable", error=repr(exc), loop="asyncio")
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()
