"""Key checks shared by every cache entry point."""

from __future__ import annotations

import re

from topics import MAX_KEY_BYTES, validate_key

# whitespace, C0 and C1 control characters (memcached's and aiomcache's rule)
_BAD = re.compile(r"[\s\x00-\x1f\x7f-\x9f]")


def check_key(key: str) -> str:
    """``topics.validate_key`` (non-empty, <= 250 bytes, no whitespace or control characters)
    plus the C1 control range; a bad key is a ``ValueError`` naming it. One regex search on
    the common path: this runs for every L1 miss."""
    if (
        type(key) is str
        and key
        and (len(key) <= MAX_KEY_BYTES if key.isascii() else len(key.encode()) <= MAX_KEY_BYTES)
        and _BAD.search(key) is None
    ):
        return key
    validate_key(key)  # raises with the precise reason
    raise ValueError(f"cache key contains whitespace or a control character: {key!r}")
