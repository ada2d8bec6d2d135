"""L1: a bounded in-process LRU with per-entry TTL that holds decoded envelopes.

Why a plain ``OrderedDict`` LRU: on the Zipf(1.1) workload of ``bench/bench_tiers_eviction.py``
it is within a few points of W-TinyLFU (theine) while its hit path is several times faster,
and L1 misses are cheap here because L2/L3 hold every key (see the README section).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Sequence

import orjson

from tiers._envelope import Envelope
from tiers._protocol import StoreItem
from tiers._ttl import TierLevel
from topics import ConfigError

_Entry = tuple[float, Envelope]  # (monotonic deadline, envelope)


class MemoryTier:
    name = "memory"
    level = TierLevel.L1

    def __init__(
        self, max_entries: int = 50_000, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if max_entries < 1:
            raise ConfigError("memory.max_entries", max_entries, "must be >= 1")
        self.max_entries = max_entries
        self.clock = clock
        # read directly by MultiTierCache's hit path; keep the shape
        self.data: OrderedDict[str, _Entry] = OrderedDict()
        self.evictions = 0

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        return f"MemoryTier(max_entries={self.max_entries})"

    def lookup(self, key: str) -> Envelope | None:
        entry = self.data.get(key)
        if entry is None:
            return None
        if entry[0] <= self.clock():
            del self.data[key]
            return None
        self.data.move_to_end(key)
        return entry[1]

    def remaining_s(self, key: str) -> float | None:
        entry = self.data.get(key)
        return None if entry is None else entry[0] - self.clock()

    def put(self, key: str, envelope: Envelope, ttl_s: float) -> bool:
        """Store unless a live entry has a newer ``as_of``; False when refused."""
        now = self.clock()
        data = self.data
        old = data.get(key)
        if old is not None and old[0] > now and old[1].as_of > envelope.as_of:
            return False
        data[key] = (now + ttl_s, envelope)
        data.move_to_end(key)
        if len(data) > self.max_entries:
            self._evict(now)
        return True

    def _evict(self, now: float) -> None:
        data = self.data
        while len(data) > self.max_entries:
            data.popitem(last=False)
            self.evictions += 1

    def discard(self, key: str) -> bool:
        return self.data.pop(key, None) is not None

    def clear(self) -> None:
        self.data.clear()

    # the Tier protocol, for uniform use and tests
    async def get_many(self, keys: Sequence[str]) -> list[Envelope | None]:
        return [self.lookup(k) for k in keys]

    async def set_many(self, items: Sequence[StoreItem]) -> list[bool]:
        out = []
        for item in items:
            obj = orjson.loads(item.body.for_tier(item.expires_at))
            env = Envelope(obj["v"], obj["a"], obj["w"], obj["s"], obj["x"], obj["e"])
            out.append(self.put(item.key, env, item.ttl_s))
        return out

    async def delete_many(self, keys: Sequence[str]) -> None:
        for key in keys:
            self.discard(key)

    async def close(self) -> None:
        self.clear()
