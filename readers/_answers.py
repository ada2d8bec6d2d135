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
    stale: bool

    @property
    def age(self) -> float: ...


class Answer(NamedTuple):
    status: int
    headers: Headers
    body: bytes


#: ``_new(Answer, (status, headers, body))`` is ``Answer(status, headers, body)`` without the
#: NamedTuple's Python-level ``__new__`` (half the cost; the warm path builds one per request)
_new = tuple.__new__


def json_answer(status: int, body: dict[str, Any], headers: Headers | None = None) -> Answer:
    return Answer(status, [CONTENT_JSON, *(headers or ())], orjson.dumps(body))


def error(status: int, kind: str, detail: str, **extra: Any) -> Answer:
    """Every error the reader answers: ``{"error": kind, "detail": ..., ...}``."""
    return json_answer(status, {"error": kind, "detail": detail, **extra})


def etag(as_of: int) -> str:
    # a resource's value only changes with a newer as_of (writes are monotonic per key)
    return f'"{as_of:x}"'


def cache_control(fresh_s: int, stale_s: int) -> str:
    """``max-age`` is the key's freshness class; with ``Age`` beside it an HTTP cache in
    front (RFC 9111 4.2) keeps the answer fresh for what is left of it (max-age - Age),
    then may serve it stale while it revalidates, or while the reader fails (RFC 5861),
    for as long as the reader itself would (the data type's stale window)."""
    return f"public, max-age={fresh_s}, stale-while-revalidate={stale_s}, stale-if-error={stale_s}"


def age_s(age: float) -> int:
    """RFC 9111 ``Age``: whole seconds, never negative (a future ``as_of`` is age 0)."""
    return int(age) if age > 0 else 0


#: ``Age`` header values, made once: most answers are younger than an hour
_AGES = [("age", str(n)) for n in range(3601)]


def _age_header(seconds: int) -> tuple[str, str]:
    return _AGES[seconds] if seconds <= 3600 else ("age", str(seconds))


class _Encoded:
    __slots__ = ("as_of", "etag", "head", "headers", "stale", "tail", "tier", "value")

    def __init__(self, key: str, hit: HitLike, fresh_s: int, control: str) -> None:
        self.value, self.as_of, self.tier, self.stale = hit.value, hit.as_of, hit.tier, hit.stale
        whole = orjson.dumps({"key": key, "value": hit.value, "as_of": hit.as_of})
        self.head = whole[:-1] + b',"age_ms":'
        self.tail = b',"tier":%s,"stale":%s}' % (
            orjson.dumps(hit.tier),
            b"true" if hit.stale else b"false",
        )
        self.etag = tag = etag(hit.as_of)
        # the header list per Age (whole seconds) within the freshness class: built once,
        # handed to granian as is
        self.headers = [
            [CONTENT_JSON, ("etag", tag), ("cache-control", control), _age_header(n)]
            for n in range(fresh_s + 1)
        ]

    def headers_at(self, age: int) -> Headers:
        """The header list for an answer ``age`` whole seconds old."""
        headers = self.headers
        if age < len(headers):
            return headers[age]
        return [*headers[0][:3], _age_header(age)]


class WarmEncoder:
    """Warm answers, pre-encoded per key (bounded: cleared when it holds ``max_entries``)."""

    def __init__(self, max_entries: int = 65536) -> None:
        self.max_entries = max_entries
        self._encoded: dict[str, _Encoded] = {}

    def answer(
        self,
        key: str,
        hit: HitLike,
        age: float,
        fresh_s: int,
        control: str,
        if_none_match: str | None,
    ) -> Answer:
        """``age`` is ``hit.age`` (read once by the caller); ``control`` the key's
        ``Cache-Control`` (``cache_control``)."""
        enc = self._encoded.get(key)
        # identity, not equality: L1 returns the same object for as long as it holds the copy
        if (
            enc is None
            or enc.value is not hit.value
            or enc.as_of != hit.as_of
            or enc.tier != hit.tier
            or enc.stale is not hit.stale
        ):
            if len(self._encoded) >= self.max_entries:
                self._encoded.clear()
            enc = self._encoded[key] = _Encoded(key, hit, fresh_s, control)
        whole = int(age) if age > 0 else 0
        by_age = enc.headers
        headers = by_age[whole] if whole < len(by_age) else enc.headers_at(whole)
        if if_none_match == enc.etag:
            return _new(Answer, (304, headers[1:], b""))
        return _new(Answer, (200, headers, b"%s%d%s" % (enc.head, round(age * 1000), enc.tail)))


def warm_with(
    key: str,
    hit: HitLike,
    control: str,
    if_none_match: str | None,
    value: Any = None,
    extra: dict[str, Any] | None = None,
) -> Answer:
    """A warm answer encoded per request: with extra fields (the analysis route's signals)
    or another ``value`` than the cached one (the candles route's last ``limit`` rows)."""
    tag = etag(hit.as_of)
    headers = [CONTENT_JSON, ("etag", tag), ("cache-control", control), _age_header(age_s(hit.age))]
    if if_none_match == tag:
        return Answer(304, headers[1:], b"")
    body = {
        "key": key,
        "value": hit.value if value is None else value,
        "as_of": hit.as_of,
        "age_ms": round(hit.age * 1000),
        "tier": hit.tier,
        "stale": hit.stale,
        **(extra or {}),
    }
    return Answer(200, headers, orjson.dumps(body))
