"""What the reader answers, as (status, headers, body) ready for the wire.

A warm answer's JSON is encoded once per key and ``as_of`` (the value only changes with a
newer ``as_of``: writes are monotonic per key) and kept split around ``age_ms``, the one
field that changes with every request; the ETag is kept with it. The hot path then joins
three byte strings.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol

import orjson

JSON = "application/json"
CONTENT_JSON = ("content-type", JSON)
Headers = list[tuple[str, str]]


class HitLike(Protocol):
    value: Any
    as_of: int
    tier: str

    @property
    def age(self) -> float: ...


class Answer(NamedTuple):
    status: int
    headers: Headers
    body: bytes


def json_answer(status: int, body: dict[str, Any], headers: Headers | None = None) -> Answer:
    return Answer(status, [CONTENT_JSON, *(headers or ())], orjson.dumps(body))


def error(status: int, kind: str, detail: str, **extra: Any) -> Answer:
    """Every error the reader answers: ``{"error": kind, "detail": ..., ...}``."""
    return json_answer(status, {"error": kind, "detail": detail, **extra})


def etag(as_of: int) -> str:
    # a resource's value only changes with a newer as_of (writes are monotonic per key)
    return f'"{as_of:x}"'


class _Encoded:
    __slots__ = ("as_of", "etag", "head", "headers", "tail", "tier", "value")

    def __init__(self, key: str, hit: HitLike, fresh_s: int) -> None:
        self.value, self.as_of, self.tier = hit.value, hit.as_of, hit.tier
        whole = orjson.dumps({"key": key, "value": hit.value, "as_of": hit.as_of})
        self.head = whole[:-1] + b',"age_ms":'
        self.tail = b',"tier":' + orjson.dumps(hit.tier) + b"}"
        self.etag = tag = etag(hit.as_of)
        # the header list per seconds-left value: built once, handed to granian as is
        self.headers = [
            [CONTENT_JSON, ("etag", tag), ("cache-control", f"public, max-age={n}")]
            for n in range(fresh_s + 1)
        ]


class WarmEncoder:
    """Warm answers, pre-encoded per key (bounded: cleared when it holds ``max_entries``)."""

    def __init__(self, max_entries: int = 65536) -> None:
        self.max_entries = max_entries
        self._encoded: dict[str, _Encoded] = {}

    def answer(self, key: str, hit: HitLike, fresh_s: int, if_none_match: str | None) -> Answer:
        enc = self._encoded.get(key)
        # identity, not equality: L1 returns the same object for as long as it holds the copy
        if (
            enc is None
            or enc.value is not hit.value
            or enc.as_of != hit.as_of
            or (enc.tier != hit.tier)
        ):
            if len(self._encoded) >= self.max_entries:
                self._encoded.clear()
            enc = self._encoded[key] = _Encoded(key, hit, fresh_s)
        age = hit.age
        # what is left of the key's freshness class; a future as_of never buys more than it
        left = int(fresh_s - age)
        if left < 0:
            left = 0
        elif left > fresh_s:
            left = fresh_s
        if if_none_match == enc.etag:
            return Answer(304, enc.headers[left][1:], b"")
        return Answer(200, enc.headers[left], b"%s%d%s" % (enc.head, round(age * 1000), enc.tail))


def warm_with(
    key: str, hit: HitLike, fresh_s: int, if_none_match: str | None, extra: dict[str, Any]
) -> Answer:
    """A warm answer with extra fields (the analysis route's signals): encoded per request."""
    tag = etag(hit.as_of)
    left = min(fresh_s, max(0, int(fresh_s - hit.age)))
    headers = [CONTENT_JSON, ("etag", tag), ("cache-control", f"public, max-age={left}")]
    if if_none_match == tag:
        return Answer(304, headers[1:], b"")
    body = {
        "key": key,
        "value": hit.value,
        "as_of": hit.as_of,
        "age_ms": round(hit.age * 1000),
        "tier": hit.tier,
        **extra,
    }
    return Answer(200, headers, orjson.dumps(body))
