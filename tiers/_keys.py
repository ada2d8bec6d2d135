"""Key checks shared by every cache entry point."""

from __future__ import annotations

from topics import validate_key


def check_key(key: str) -> str:
    """``topics.validate_key`` (non-empty, <= 250 bytes, no whitespace or control characters)
    plus the C1 control range memcached clients refuse; a bad key is a ``ValueError``."""
    validate_key(key)
    if not key.isascii():
        for ch in key:
            if 0x80 <= ord(ch) <= 0x9F:
                raise ValueError(f"cache key contains a control character: {key!r}")
    return key
