"""Envelope and codec: every cached value travels with its metadata, as orjson bytes.

Wire form (one JSON object, ``a`` first so the Redis script can read it without decoding)::

    {"a": as_of_ms, "e": expires_at_ms, ["f": fresh_until_ms,] "w": written_at_ms,
     "s": source, "x": schema, "v": value}

``e`` is when the copy in *that* tier expires (wall clock, ms; 0 = unknown). It lets a read
promote a lower-tier hit upward with a TTL no longer than what is left at the source
without a second round trip (PTTL / ``mg t``). ``f`` is when the copy stops being fresh: the
deepest tier keeps a copy past its fresh TTL for a stale window (``TTLPolicy.stale_s``),
served only to a reader that accepts stale data; without ``f`` a copy is fresh until it
expires. The body after the head is encoded once per write and shared by every tier; only
the short head differs. Never pickle.
"""

from __future__ import annotations

import decimal
from typing import Any, NamedTuple

import orjson
import structlog

from tiers._errors import CorruptEntry, UnencodableValue, ValueTooLarge
from topics import now_ms as now_ms  # the one clock of the records' unit (ms)

_log = structlog.get_logger(__name__)

#: memcached's default item limit is 1 MiB including key and header; stay under it
DEFAULT_MAX_BYTES = 1_000_000
SCHEMA = "wf1"
_OPTS = orjson.OPT_NON_STR_KEYS


def _default(obj: Any) -> Any:
    if isinstance(obj, decimal.Decimal):
        return str(obj)  # exact; a float would round prices
    for method in ("asdict", "to_representation"):  # Faust records and friends
        fn = getattr(obj, method, None)
        if callable(fn):
            return fn()
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    raise TypeError(f"type {type(obj).__name__} is not JSON-able")


def as_of_ms(as_of: float | int) -> int:
    """Exchange time in ms; accepts int/float ms (the records' unit)."""
    if isinstance(as_of, bool) or not isinstance(as_of, (int, float)):
        raise TypeError(f"as_of must be epoch milliseconds (int), got {as_of!r}")
    if as_of != as_of or as_of < 0:  # NaN or negative
        raise ValueError(f"as_of must be non-negative epoch milliseconds, got {as_of!r}")
    return int(as_of)


class Envelope(NamedTuple):
    """A value with its metadata (a NamedTuple: built for every L2/L3 read, so it is cheap)."""

    value: Any
    as_of: int  # exchange timestamp, ms
    written_at: int  # ms
    source: str = ""
    schema: str = SCHEMA
    expires_at: int = 0  # ms wall clock when the copy this came from expires; 0 = unknown
    fresh_until: int = 0  # ms wall clock when that copy stops being fresh; 0 = when it expires

    def remaining_s(self, now: int | None = None) -> float | None:
        """Seconds left at the source tier, or None when unknown."""
        if not self.expires_at:
            return None
        return (self.expires_at - (now_ms() if now is None else now)) / 1000.0

    def fresh_s(self, now: int | None = None) -> float | None:
        """Seconds the copy stays fresh (negative: stale for that long), None when unknown."""
        until = self.fresh_until or self.expires_at
        if not until:
            return None
        return (until - (now_ms() if now is None else now)) / 1000.0

    def with_expiry(self, expires_at: int) -> Envelope:
        return self._replace(expires_at=expires_at)


class Body:
    """An envelope encoded once, re-headed per tier with that tier's expiry."""

    __slots__ = ("as_of", "tail")

    def __init__(self, as_of: int, tail: bytes) -> None:
        self.as_of = as_of
        self.tail = tail  # b'"w":...,"v":...}'

    def for_tier(self, expires_at: int, fresh_until: int = 0) -> bytes:
        if fresh_until:
            return b'{"a":%d,"e":%d,"f":%d,%b' % (self.as_of, expires_at, fresh_until, self.tail)
        return b'{"a":%d,"e":%d,%b' % (self.as_of, expires_at, self.tail)

    def __len__(self) -> int:
        return len(self.tail) + 60  # the head, with "f"


def encode_body(
    key: str,
    value: Any,
    *,
    as_of: int,
    written_at: int,
    source: str,
    schema: str = SCHEMA,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> Body:
    try:
        raw = orjson.dumps(
            {"w": written_at, "s": source, "x": schema, "v": value}, default=_default, option=_OPTS
        )
    except TypeError as exc:  # orjson.JSONEncodeError is a TypeError
        raise UnencodableValue(f"value for {key!r} is not JSON-able: {exc}") from exc
    body = Body(as_of, raw[1:])
    if len(body) > max_bytes:
        raise ValueTooLarge(key, len(body), max_bytes)
    return body


def encode(envelope: Envelope, key: str = "?", max_bytes: int = DEFAULT_MAX_BYTES) -> bytes:
    body = encode_body(
        key,
        envelope.value,
        as_of=envelope.as_of,
        written_at=envelope.written_at,
        source=envelope.source,
        schema=envelope.schema,
        max_bytes=max_bytes,
    )
    return body.for_tier(envelope.expires_at, envelope.fresh_until)


def decode(data: bytes | bytearray | memoryview | str) -> Envelope:
    """Bytes from a tier -> Envelope; anything else is ``CorruptEntry``."""
    try:
        obj = orjson.loads(data)
        return Envelope(
            obj["v"], int(obj["a"]), int(obj["w"]), str(obj["s"]), str(obj["x"]), int(obj["e"]),
            int(obj.get("f", 0)),
        )  # fmt: skip
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        head = data[:60] if isinstance(data, (bytes, str)) else bytes(data[:60])
        raise CorruptEntry(f"not a warmfleet envelope: {head!r}") from exc


class EnvelopeDecoder:
    """For the remote tiers: a stored body that does not decode is counted, logged with its
    key, and read as a miss, so one corrupt entry never fails a read."""

    name: str
    corrupt: int = 0

    def _decode(self, key: str, raw: bytes) -> Envelope | None:
        try:
            return decode(raw)
        except CorruptEntry:
            self.corrupt += 1
            _log.warning("cache_entry_corrupt", tier=self.name, key=key, size=len(raw))
            return None
