"""The invalidation bus: how caches in other processes learn that a key changed.

A ``Bus`` carries opaque payloads to every subscriber; ``tiers._redis_bus.RedisBus`` is
the one we ship (Redis pub/sub on a channel). The cache is handed a bus — it never asks
which tier is Redis — and ``tiers._coherence`` decides what a payload means for its L1.

Payload (one per write batch or delete, never one per key)::

    b"wf2 <sender>\\n<as_of> <key>\\n<as_of> <key>..."

``as_of`` -1 means "dropped" (a delete). Keys never hold whitespace (``check_key``), so a
space and a newline are safe separators. A payload without the ``wf2`` head is the older
form ``b"<sender> <key>"``: a delete of that key.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

DROPPED = -1  # the as_of of a deleted key
_HEAD = b"wf2 "


def encode_message(sender: str, entries: Sequence[tuple[str, int]]) -> bytes:
    lines = [b"%d %b" % (as_of, key.encode()) for key, as_of in entries]
    return _HEAD + sender.encode() + b"\n" + b"\n".join(lines)


def decode_message(payload: bytes) -> tuple[str, list[tuple[str, int]]]:
    """(sender, [(key, as_of)]); ``ValueError`` for bytes that are not a bus message."""
    if not payload.startswith(_HEAD):
        sender, _, key = payload.partition(b" ")
        if not key:
            raise ValueError(f"bus message without a key: {payload[:60]!r}")
        return sender.decode(), [(key.decode(), DROPPED)]
    head, _, body = payload[len(_HEAD) :].partition(b"\n")
    entries: list[tuple[str, int]] = []
    for line in body.split(b"\n"):
        as_of, _, key = line.partition(b" ")
        if not key:
            raise ValueError(f"bus message line without a key: {line[:60]!r}")
        entries.append((key.decode(), int(as_of)))
    return head.decode(), entries


class Subscription(Protocol):
    async def next(self, timeout_s: float) -> bytes | None:
        """The next payload, None after ``timeout_s`` of silence; ``CacheUnavailable``
        once the connection is lost (messages may have been missed)."""
        ...

    async def close(self) -> None: ...


@runtime_checkable
class Bus(Protocol):
    name: str

    async def publish(self, payload: bytes) -> None:
        """Send to every subscriber; ``CacheUnavailable`` when it could not be sent."""
        ...

    async def subscribe(self) -> Subscription:
        """A live subscription (``CacheUnavailable`` if none can be made now)."""
        ...

    async def close(self) -> None: ...
