"""The two arms: ``direct`` (the old design, reading through to the origin) and
``multitier`` (``MultiTierCache`` fed by the running fleet).

An arm's ``read`` answers one item and says where from: ``memory`` (L1), ``memcached``
(L2), ``redis`` (L3) or ``origin``, with the answer's exchange time.
"""

from __future__ import annotations

from typing import Generic, Protocol, TypeVar

from ab._origin import Origin
from ab._workload import Item, freshness_s
from tiers import DirectCacheAdapter, MultiTierCache

#: the tier names of both arms, shallow to deep, and what the report calls them
TIERS = ("memory", "memcached", "redis", "origin")
TIER_LABEL = {"memory": "L1", "memcached": "L2", "redis": "L3", "origin": "origin"}


class _Closes(Protocol):
    async def close(self) -> None: ...


C = TypeVar("C", bound=_Closes)


class Arm(Protocol):
    name: str
    origin: Origin

    async def read(self, item: Item) -> tuple[str, int]:
        """(tier, as_of ms) of the answer; raises on an error the reader would see."""
        ...

    async def close(self) -> None: ...


class _CachedArm(Generic[C]):
    """What both arms hold: a cache, the origin behind it, the key prefix they read, and
    whether a copy older than the item's freshness class is refused (``strict``)."""

    def __init__(self, cache: C, origin: Origin, prefix: str, *, strict: bool = False) -> None:
        self.cache = cache
        self.origin = origin
        self.prefix = prefix
        self.strict = strict

    def max_age(self, item: Item) -> float | None:
        return freshness_s(item.data_type) if self.strict else None

    async def close(self) -> None:
        await self.cache.close()
        await self.origin.close()


class DirectArm(_CachedArm[DirectCacheAdapter]):
    """The old design: L1 dict -> Memcached -> Redis -> origin with write-back, one TTL.
    Keys live under their own prefix, so the fleet's warm copies are never read.
    ``strict``: a copy older than the item's freshness class counts as a miss."""

    name = "direct"

    async def read(self, item: Item) -> tuple[str, int]:
        key = item.key(self.prefix)
        hit = await self.cache.get_or_load(
            key, lambda: self.origin.load(item), max_age=self.max_age(item)
        )
        return hit.tier, hit.as_of


class MultiTierArm(_CachedArm[MultiTierCache]):
    """The fleet's read path: ``MultiTierCache.get`` on the keys the fleet warms, as the
    HTTP reader calls it (``strict``: with the item's freshness class as ``max_age``, so a
    copy older than that is refused). The fleet has no demand path yet, so a miss is
    answered from the origin by the reader itself and not written back: the fleet stays
    the only writer of its keys."""

    name = "multitier"

    async def read(self, item: Item) -> tuple[str, int]:
        hit = await self.cache.get(item.key(self.prefix), max_age=self.max_age(item))
        if hit is not None:
            return hit.tier, hit.as_of
        _, as_of = await self.origin.load(item)
        return "origin", as_of
