"""L2: Memcached through aiomcache's connection pools, one pool per server, keys spread by
consistent hashing.

The text protocol is spoken here on the pooled connections (``get``/``gets`` for many keys
in one command, pipelined ``cas``/``add``/``delete``) because aiomcache sends one command
per round trip and returns a half-read connection to its pool when a call is cancelled by
a timeout. A connection whose call did not finish is closed, never reused.

Monotonic writes: ``gets`` reads the stored ``as_of`` and cas token, then ``cas`` (or
``add`` when absent) writes only if nothing changed in between; a lost race is retried up
to ``max_cas_retries`` times, after which the write reports False (the key is being
written faster than we can compare — the newer writers' values stay).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import aiomcache
import structlog
from aiomcache.pool import Connection

from tiers._envelope import Envelope, EnvelopeDecoder, blocks, write_horizon
from tiers._errors import CacheUnavailable
from tiers._hashring import HashRing
from tiers._protocol import StoreItem
from tiers._ttl import TierLevel
from topics import ConfigError

log = structlog.get_logger(__name__)

_AS_OF = re.compile(rb'^\{"a":(\d+)')
_GET_CHUNK = 100  # keys per get command


def stored_as_of(raw: bytes) -> int:
    """The ``as_of`` at the head of an envelope; -1 for bytes that are not ours."""
    m = _AS_OF.match(raw)
    return int(m.group(1)) if m else -1


def exptime(ttl_s: float) -> int:
    """Memcached wants whole seconds; 0 would mean 'never', so at least 1."""
    return max(1, math.ceil(ttl_s))


_DRIVER_ERRORS = (OSError, EOFError, asyncio.IncompleteReadError, ValueError)
_CONNECTION_LOST = (ConnectionError, EOFError, asyncio.IncompleteReadError)


@contextlib.contextmanager
def _mapped(op: str) -> Iterator[None]:
    """The one place socket and protocol errors become ``CacheUnavailable``."""
    try:
        yield
    except _DRIVER_ERRORS as exc:
        raise CacheUnavailable("memcached", op, type(exc).__name__) from exc


class _Abandoned(ConnectionError):
    pass


class MemcachedProtocolError(ConnectionError):
    pass


class MemcachedTier(EnvelopeDecoder):
    name = "memcached"
    level = TierLevel.L2

    def __init__(
        self,
        servers: Sequence[str] = ("127.0.0.1:11211",),
        *,
        pool_size: int = 4,
        max_cas_retries: int = 5,
        vnodes: int = 160,
    ) -> None:
        if not servers:
            raise ConfigError("memcached.servers", servers, "needs at least one host:port")
        if pool_size < 1:
            raise ConfigError("memcached.pool_size", pool_size, "must be >= 1")
        self.servers = tuple(servers)
        self.max_cas_retries = max_cas_retries
        self._clients: list[aiomcache.Client] = []
        for server in self.servers:
            host, _, port = server.rpartition(":")
            if not host or not port.isdigit():
                raise ConfigError("memcached.servers", server, "each server must be host:port")
            self._clients.append(aiomcache.Client(host, int(port), pool_size=pool_size))
        self._ring = HashRing(self.servers, vnodes)
        self.corrupt = 0
        self.cas_conflicts = 0
        self.refused = 0  # items the server refused (SERVER_ERROR), the tier staying healthy

    def __repr__(self) -> str:
        return f"MemcachedTier(servers={list(self.servers)!r})"

    def _group(self, keys: Sequence[str]) -> dict[int, list[int]]:
        """server index -> positions in ``keys``."""
        if len(self.servers) == 1:
            return {0: list(range(len(keys)))}
        groups: dict[int, list[int]] = {}
        ring = self._ring
        for pos, key in enumerate(keys):
            groups.setdefault(ring.index_for(key.encode()), []).append(pos)
        return groups

    @asynccontextmanager
    async def _conn(self, index: int) -> AsyncIterator[Connection]:
        pool = self._clients[index]._pool
        conn = await pool.acquire()
        try:
            yield conn
        except BaseException:
            # cancelled or failed mid-command: the reply may be half read; never reuse it
            conn.reader.set_exception(_Abandoned("connection abandoned mid-command"))
            raise
        finally:
            pool.release(conn)

    async def _once_more(self, index: int, fn: Callable[..., Awaitable[None]], *args: Any) -> None:
        """``fn(*args)`` on server ``index``; once more on a fresh connection if a pooled one
        turned out dead (the server restarted or dropped idle clients). The idle ones died
        with it, so they go first. Every call is safe to repeat: gets, deletes, and the
        monotonic gets/cas (a value already written compares equal)."""
        try:
            await fn(*args)
        except MemcachedProtocolError:
            raise  # the server answered, with garbage: a retry would not help
        except _CONNECTION_LOST as exc:
            log.info("memcached_connection_lost_retrying", server=self.servers[index],
                     error=type(exc).__name__)  # fmt: skip
            await self._clients[index]._pool.clear()
            await fn(*args)

    # ---- reads ----------------------------------------------------------------------

    async def get_many(self, keys: Sequence[str]) -> list[Envelope | None]:
        out: list[Envelope | None] = [None] * len(keys)
        groups = self._group(keys)
        with _mapped("get"):
            if len(groups) == 1:  # one server: no gather, no extra task
                for i, positions in groups.items():
                    await self._once_more(i, self._get_on, i, keys, positions, out)
            else:
                await asyncio.gather(
                    *(
                        self._once_more(i, self._get_on, i, keys, positions, out)
                        for i, positions in groups.items()
                    )
                )
        return out

    async def _get_on(
        self, index: int, keys: Sequence[str], positions: list[int], out: list[Envelope | None]
    ) -> None:
        wanted = list(dict.fromkeys(keys[p].encode() for p in positions))
        pool = self._clients[index]._pool  # inlined self._conn(): this is the read hot path
        conn = await pool.acquire()
        try:
            replies = _Replies(conn.reader)
            found = await _fetch(conn, replies, wanted, with_cas=False)
            replies.done()
        except BaseException:
            conn.reader.set_exception(_Abandoned("connection abandoned mid-command"))
            raise
        finally:
            pool.release(conn)
        for p in positions:
            hit = found.get(keys[p].encode())
            if hit is not None:
                out[p] = self._decode(keys[p], hit[0])

    # ---- writes ---------------------------------------------------------------------

    async def set_many(self, items: Sequence[StoreItem]) -> list[bool]:
        out = [False] * len(items)
        keys = [item.key for item in items]
        with _mapped("set"):
            await asyncio.gather(
                *(
                    self._once_more(i, self._set_on, i, items, positions, out)
                    for i, positions in self._group(keys).items()
                )
            )
        return out

    async def _set_on(
        self, index: int, items: Sequence[StoreItem], positions: list[int], out: list[bool]
    ) -> None:
        # the last write per key wins inside one batch, as sequential sets would
        latest: dict[str, int] = {}
        for p in positions:
            prev = latest.get(items[p].key)
            if prev is None or items[p].body.as_of >= items[prev].body.as_of:
                latest[items[p].key] = p
        pending = list(latest.values())
        async with self._conn(index) as conn:
            replies = _Replies(conn.reader)
            horizon = write_horizon()
            for _attempt in range(self.max_cas_retries + 1):
                if not pending:
                    break
                keys = [items[p].key.encode() for p in pending]
                current = await _fetch(conn, replies, keys, True)
                commands: list[bytes] = []
                sent: list[int] = []
                for p, bkey in zip(pending, keys, strict=True):
                    item = items[p]
                    cur = current.get(bkey)
                    if cur is not None and blocks(stored_as_of(cur[0]), item.body.as_of, horizon):
                        continue  # a newer value is there: refuse, out[p] stays False
                    data = item.encoded()
                    exp = exptime(item.ttl_s)
                    if cur is None:
                        commands.append(b"add %b 0 %d %d\r\n%b\r\n" % (bkey, exp, len(data), data))
                    else:
                        commands.append(
                            b"cas %b 0 %d %d %d\r\n%b\r\n" % (bkey, exp, len(data), cur[1], data)
                        )
                    sent.append(p)
                conn.writer.write(b"".join(commands))
                await conn.writer.drain()
                retry: list[int] = []
                for p in sent:
                    line = replies.line(item_errors=True) or await replies.next_line(
                        item_errors=True
                    )
                    if line == b"STORED\r\n":
                        out[p] = True
                    elif line in (b"EXISTS\r\n", b"NOT_STORED\r\n", b"NOT_FOUND\r\n"):
                        retry.append(p)  # someone wrote (or it expired) between gets and cas
                    elif line.startswith(b"SERVER_ERROR"):
                        # e.g. "object too large for cache" (a server with a small -I): this
                        # item is refused, the tier is fine
                        self.refused += 1
                        log.warning(
                            "memcached_item_refused", key=items[p].key,
                            reply=line.decode("latin-1").strip(),
                        )  # fmt: skip
                    else:
                        raise MemcachedProtocolError(f"store reply {line[:80]!r}")
                pending = retry
            replies.done()
            if pending:
                self.cas_conflicts += len(pending)
                log.info("memcached_cas_gave_up", keys=len(pending), retries=self.max_cas_retries)

    async def delete_many(self, keys: Sequence[str]) -> None:
        with _mapped("delete"):
            await asyncio.gather(
                *(
                    self._once_more(i, self._delete_on, i, keys, positions)
                    for i, positions in self._group(keys).items()
                )
            )

    async def _delete_on(self, index: int, keys: Sequence[str], positions: list[int]) -> None:
        wanted = list(dict.fromkeys(keys[p].encode() for p in positions))
        async with self._conn(index) as conn:
            conn.writer.write(b"".join(b"delete %b\r\n" % k for k in wanted))
            await conn.writer.drain()
            replies = _Replies(conn.reader)
            for _ in wanted:
                line = replies.line() or await replies.next_line()
                if line not in (b"DELETED\r\n", b"NOT_FOUND\r\n"):
                    raise MemcachedProtocolError(f"delete reply {line[:80]!r}")
            replies.done()

    async def ping(self) -> None:
        """Every server of the pool answers ``version``: one server down is part of the
        tier down, whichever keys hash to it."""
        with _mapped("ping"):
            await asyncio.gather(
                *(self._once_more(i, self._version_on, i) for i in range(len(self.servers)))
            )

    async def _version_on(self, index: int) -> None:
        async with self._conn(index) as conn:
            conn.writer.write(b"version\r\n")
            await conn.writer.drain()
            replies = _Replies(conn.reader)
            line = replies.line() or await replies.next_line()
            if not line.startswith(b"VERSION "):
                raise MemcachedProtocolError(f"version reply {line[:80]!r}")
            replies.done()

    async def close(self) -> None:
        for client in self._clients:
            await client.close()


class _Replies:
    """Reply lines and data blocks cut from large reads of one connection.

    A batch of 2,000 writes answers ~4,000 short lines (``VALUE``/``END`` from ``gets``,
    ``STORED`` from ``cas``); a ``StreamReader.readline()`` per line was most of this
    tier's client time. ``line()`` and ``block()`` answer from the buffer without an await
    and return None when it holds too little; ``fill()`` then reads more. Only replies to
    commands already sent are ever pending on a pooled connection, so nothing is read that
    belongs to a later caller.
    """

    __slots__ = ("_buf", "_pos", "_stream")

    def __init__(self, stream: asyncio.StreamReader) -> None:
        self._stream = stream
        self._buf = b""
        self._pos = 0

    def line(self, *, item_errors: bool = False) -> bytes | None:
        """The next line with its CRLF; error replies raise, except SERVER_ERROR when
        ``item_errors`` (a per-item refusal such as an oversize value, the caller's)."""
        end = self._buf.find(b"\r\n", self._pos)
        if end < 0:
            return None
        line = self._buf[self._pos : end + 2]
        self._pos = end + 2
        if line[0] in _ERROR_INITIALS and line.startswith(_ERRORS):
            if not (item_errors and line.startswith(b"SERVER_ERROR")):
                raise MemcachedProtocolError(line[:120].decode("latin-1").strip())
        return line

    def block(self, size: int) -> bytes | None:
        """``size`` bytes of data and the CRLF after them, without the CRLF."""
        end = self._pos + size
        if len(self._buf) < end + 2:
            return None
        if self._buf[end : end + 2] != b"\r\n":
            raise MemcachedProtocolError(f"data block of {size} bytes not followed by CRLF")
        data = self._buf[self._pos : end]
        self._pos = end + 2
        return data

    async def fill(self) -> None:
        data = await self._stream.read(_READ_BYTES)
        if not data:
            raise asyncio.IncompleteReadError(self._buf[self._pos :], None)
        self._buf = self._buf[self._pos :] + data  # the rest is at most one partial reply
        self._pos = 0

    async def next_line(self, *, item_errors: bool = False) -> bytes:
        while (line := self.line(item_errors=item_errors)) is None:
            await self.fill()
        return line

    async def next_block(self, size: int) -> bytes:
        while (data := self.block(size)) is None:
            await self.fill()
        return data

    def done(self) -> None:
        """Every expected reply was read; anything more is a protocol error (and the
        connection is then not reused)."""
        if self._pos != len(self._buf):
            raise MemcachedProtocolError(f"unexpected bytes {self._buf[self._pos :][:80]!r}")


_READ_BYTES = 1 << 16
_ERRORS = (b"SERVER_ERROR", b"CLIENT_ERROR", b"ERROR")
_ERROR_INITIALS = frozenset(b"SCE")


async def _fetch(
    conn: Connection, replies: _Replies, keys: list[bytes], with_cas: bool
) -> dict[bytes, tuple[bytes, int]]:
    """``get``/``gets`` for many keys (pipelined in chunks) -> key -> (bytes, cas token)."""
    cmd = b"gets " if with_cas else b"get "
    chunks = [keys[i : i + _GET_CHUNK] for i in range(0, len(keys), _GET_CHUNK)]
    conn.writer.write(b"".join(cmd + b" ".join(chunk) + b"\r\n" for chunk in chunks))
    await conn.writer.drain()
    found: dict[bytes, tuple[bytes, int]] = {}
    ends = 0
    while ends < len(chunks):
        line = replies.line() or await replies.next_line()
        if line == b"END\r\n":
            ends += 1
            continue
        terms = line.split()
        if len(terms) < 4 or terms[0] != b"VALUE":
            raise MemcachedProtocolError(f"get reply {line[:80]!r}")
        size = int(terms[3])
        data = replies.block(size)
        if data is None:
            data = await replies.next_block(size)
        found[terms[1]] = (data, int(terms[4]) if with_cas else 0)
    return found
