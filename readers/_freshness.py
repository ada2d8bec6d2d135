"""What a request accepts: ``?max_age=``, ``Cache-Control: max-age / max-stale`` (pure).

RFC 9111 5.2.1: ``max-age=N`` refuses a response older than N seconds, ``max-stale[=N]``
accepts one up to N seconds past its freshness (any, without N). Here the age is the data's
(now - ``as_of``), the freshness the key's fresh TTL in the tiers. Directives the reader has
no use for (``no-cache``, ``min-fresh`` ...) are ignored, as RFC 9111 asks of a recipient.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from readers._routes import MAX_AGE_LIMIT_S, BadRequest

#: max-stale without a value: any copy the tiers still keep
ANY_STALE = math.inf
# What the reader refuses, as a pattern for the OpenAPI document (schemathesis holds the two
# together): an element (after a comma, or first) naming max-age or max-stale, any case,
# whose value is not whole seconds (plain or quoted), or max-age without a value.
_MAX = "[Mm][Aa][Xx]-"
_AGE, _STALE = "[Aa][Gg][Ee]", "[Ss][Tt][Aa][Ll][Ee]"
_ELEMENT = "(.*,)?[ \t]*"
_SECONDS = ' *("[0-9]+"|[0-9]+)[ \t]*(,|$)'
CACHE_CONTROL_PATTERN = (
    f"^(?!{_ELEMENT}{_MAX}({_AGE}|{_STALE}) *=(?!{_SECONDS}))"
    f"(?!{_ELEMENT}{_MAX}{_AGE}[ \t]*(,|$)).*$"
)
_WHAT_TO_SEND = "send whole seconds, e.g. Cache-Control: max-age=30, max-stale=600"


def _seconds(directive: str, value: str) -> int:
    digits = value.strip(" ")
    if len(digits) >= 2 and digits[0] == digits[-1] == '"':  # the quoted-string form
        digits = digits[1:-1]
    if not digits or not digits.isascii() or not digits.isdigit():
        raise BadRequest(f"Cache-Control {directive}={value!r} is not valid; {_WHAT_TO_SEND}")
    # RFC 9111 1.2.2: a delta-seconds too large to hold means "a very long time"
    return MAX_AGE_LIMIT_S if len(digits) > 9 else min(int(digits), MAX_AGE_LIMIT_S)


def request_directives(values: Iterable[str]) -> tuple[float | None, float | None]:
    """``(max_age, max_stale)`` seconds from a request's Cache-Control header lines (None:
    not given). ``max-age=0`` — what a browser's reload sends — asks the caches on the way
    to revalidate; the reader is where they revalidate, so it answers its freshest copy as
    for no directive at all. A malformed value is a BadRequest; of a directive given twice
    the first counts (RFC 9111 4.2.1). ``CACHE_CONTROL_PATTERN`` is the same rule as a
    regular expression (for the OpenAPI document)."""
    max_age: float | None = None
    max_stale: float | None = None
    seen: set[str] = set()
    for line in values:
        for part in line.split(","):
            name, sep, value = part.strip(" \t").partition("=")
            name = name.strip(" ").lower()
            if name == "max-age":
                if not sep:
                    raise BadRequest(f"Cache-Control max-age needs a value; {_WHAT_TO_SEND}")
                seconds = _seconds(name, value)  # every one is checked; the first counts
                if name not in seen:
                    max_age = float(seconds) if seconds > 0 else None
            elif name == "max-stale":
                stale = _seconds(name, value) if sep else None
                if name not in seen:
                    max_stale = ANY_STALE if stale is None else float(stale)
            else:
                continue
            seen.add(name)
    return max_age, max_stale


def stricter(query_max_age: float | None, header_max_age: float | None) -> float | None:
    """``?max_age`` and ``Cache-Control: max-age`` together: the smaller wins."""
    if query_max_age is None:
        return header_max_age
    if header_max_age is None:
        return query_max_age
    return min(query_max_age, header_max_age)
