"""L1: a bounded in-process LRU with per-entry TTL that holds ready-made hits.

Each entry is the ``Hit`` a read returns (tier "memory", live ``age``) with its monotonic
deadline, so a hit is one dict lookup, one clock read and a ``move_to_end``. Why a plain
``OrderedDict`` LRU rather than W-TinyLFU: see ``bench/bench_tiers_eviction.py`` and the
README section — on the Zipf(1.1) workload the hit-ratio gap is small, the hit path is
several times faster, and L1 misses are cheap here because L2/L3 hold every key.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Sequence

import orjson

from tiers._envelope import Envelope
from tiers._hit import Hit
from tiers._protocol import StoreItem
from tiers._ttl import TierLevel
from topics import ConfigError


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
        self.data: OrderedDict[str, Hit] = OrderedDict()
        self.evictions = 0

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        return f"MemoryTier(max_entries={self.max_entries})"

    def lookup(self, key: str) -> Hit | None:
        entry = self.data.get(key)
        if entry is None:
            return None
        if entry.deadline <= self.clock():
            del self.data[key]
            return None
        self.data.move_to_end(key)
        return entry

    def remaining_s(self, key: str) -> float | None:
        entry = self.data.get(key)
        return None if entry is None else entry.deadline - self.clock()

    def put(self, key: str, envelope: Envelope, ttl_s: float) -> Hit | None:
        """Store unless a live entry has a newer ``as_of``; the stored entry, or None."""
        now = self.clock()
        data = self.data
        old = data.get(key)
        if old is not None and old.deadline > now and old.as_of > envelope.as_of:
            return None
        entry = Hit(
            envelope.value, envelope.as_of, None, "memory", envelope.written_at,
            envelope.source, envelope.schema, envelope.expires_at,
        )  # fmt: skip
        entry.deadline = now + ttl_s
        data[key] = entry
        data.move_to_end(key)
        while len(data) > self.max_entries:
            data.popitem(last=False)
            self.evictions += 1
        return entry

    def discard(self, key: str) -> bool:
        return self.data.pop(key, None) is not None

    def clear(self) -> None:
        self.data.clear()

    # the Tier protocol, for uniform use and tests
    async def get_many(self, keys: Sequence[str]) -> list[Envelope | None]:
        out: list[Envelope | None] = []
        for key in keys:
            entry = self.lookup(key)
            out.append(None if entry is None else entry.envelope)
        return out

    async def set_many(self, items: Sequence[StoreItem]) -> list[bool]:
        out = []
        for item in items:
            obj = orjson.loads(item.body.for_tier(item.expires_at))
            env = Envelope(obj["v"], obj["a"], obj["w"], obj["s"], obj["x"], obj["e"])
            out.append(self.put(item.key, env, item.ttl_s) is not None)
        return out

    async def delete_many(self, keys: Sequence[str]) -> None:
        for key in keys:
            self.discard(key)

    async def close(self) -> None:
        self.clear()
