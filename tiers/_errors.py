"""The cache's exceptions: one root, one line each."""

from __future__ import annotations

from topics import WarmfleetError


class CacheError(WarmfleetError):
    """Root of every error the tiers package raises on purpose."""


class CacheUnavailable(CacheError):
    """A tier could not answer (down, refused, timed out, spoke garbage); the cause is chained."""

    def __init__(self, tier: str, operation: str, detail: str = "") -> None:
        self.tier, self.operation, self.detail = tier, operation, detail
        super().__init__(f"{tier} {operation} failed" + (f": {detail}" if detail else ""))


class ValueTooLarge(CacheError, ValueError):
    """An encoded value is over the size cap; nothing was written."""

    def __init__(self, key: str, size: int, limit: int) -> None:
        self.key, self.size, self.limit = key, size, limit
        super().__init__(f"value for {key!r} encodes to {size} bytes, over the {limit}-byte cap")


class UnencodableValue(CacheError, TypeError):
    """A value is not JSON-able (orjson refused it); nothing was written."""


class CorruptEntry(CacheError):
    """Bytes in a tier are not a warmfleet envelope; the read treats them as a miss."""
