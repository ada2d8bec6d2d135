"""What a tier is, to the cache that drives it: a few small async primitives.

The cache (``MultiTierCache``) does key checks, codec, TTLs, timeouts, circuit breaking,
single-flight and batching once; a tier only moves envelopes for many keys at a time.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, Protocol, runtime_checkable

from tiers._envelope import Body, Envelope
from tiers._ttl import TierLevel


class StoreItem(NamedTuple):
    """One monotonic write: store ``body`` under ``key`` for ``ttl_s`` unless the tier holds a
    newer ``as_of``. ``expires_at`` and ``fresh_until`` (wall ms; 0 = fresh until it
    expires) are written into the envelope head."""

    key: str
    body: Body
    ttl_s: float
    expires_at: int
    fresh_until: int = 0

    def encoded(self) -> bytes:
        """The envelope bytes this tier stores."""
        return self.body.for_tier(self.expires_at, self.fresh_until)


@runtime_checkable
class Tier(Protocol):
    #: "memory", "memcached" or "redis": the label in stats, metrics and ``Hit.tier``
    name: str
    level: TierLevel

    async def get_many(self, keys: Sequence[str]) -> list[Envelope | None]:
        """Envelopes in key order; None for a miss or an unreadable entry."""
        ...

    async def set_many(self, items: Sequence[StoreItem]) -> list[bool]:
        """Monotonic writes; False where the tier kept a newer ``as_of``."""
        ...

    async def delete_many(self, keys: Sequence[str]) -> None: ...

    async def close(self) -> None: ...


@runtime_checkable
class Pinged(Protocol):
    """A tier that can say whether ALL of it answers, without reading a key: the breaker's
    background probe asks this (a key lands on one node of a cluster or pool, so a key's
    answer speaks for that node only)."""

    async def ping(self) -> None:
        """Return once every node of the tier answered (one round trip each);
        ``CacheUnavailable`` if any did not."""
        ...
