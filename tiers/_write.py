"""The write path: one batch through every tier, each with its own TTL from the policy.

Every value is checked and encoded once (nothing is written if one of them is bad); L1 is
written directly, each lower tier with one batched call (a Redis pipeline of EVALSHA,
pipelined memcached cas/add), all concurrently; every tier refuses an ``as_of`` older than
the one it holds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from tiers._calls import Parts, Slot, TierPath
from tiers._envelope import Body, as_of_ms, encode_body
from tiers._errors import CacheUnavailable
from tiers._hit import Hit, Write
from tiers._keys import check_key
from tiers._metrics import TierStats
from tiers._protocol import StoreItem
from tiers._ttl import TierLevel

#: per write, the TTL written per tier name (a tier that refused it or was down is absent)
Written = list[dict[str, float]]


class WritePath(TierPath):
    def __init__(self, parts: Parts, levels: tuple[TierLevel, ...]) -> None:
        super().__init__(parts)
        self.l1_stats = TierStats()  # writes and stale (refused as older) of L1
        self.levels = levels
        # the lower tiers' positions in the cache's tiers (and in each row of TTLs)
        self._lower_at = [levels.index(TierLevel(slot.tier.level)) for slot in self.lower]
        self._name_at = dict(zip(self._lower_at, (slot.name for slot in self.lower), strict=True))
        if self.l1 is not None:
            self._name_at[0] = self.l1.name

    def encode(self, writes: Sequence[Write], now: int) -> list[Body]:
        """Check every key and encode every value before anything is written."""
        source, max_bytes = self.options.source, self.options.max_value_bytes
        bodies: list[Body] = []
        for w in writes:
            check_key(w.key)
            bodies.append(
                encode_body(
                    w.key, w.value, as_of=as_of_ms(w.as_of), written_at=now, source=source,
                    max_bytes=max_bytes,
                )
            )  # fmt: skip
        return bodies

    async def set_many(
        self, writes: Sequence[Write], bodies: list[Body], now: int, warm_interval: float | None
    ) -> Written:
        ttls = self.policy.ttls_many(
            [(w.data_type, w.volatility) for w in writes], self.levels,
            warm_interval=warm_interval,
            keys=None if self.policy.heat is None else [w.key for w in writes],
        )  # fmt: skip
        columns: dict[int, list[float | None]] = {}  # tier position -> TTL per write or None
        in_l1: list[Hit | None] = []
        if self.l1 is not None:
            columns[0], in_l1 = self._write_l1(writes, bodies, ttls, now)
        refused = [False] * len(writes)  # some lower tier holds a newer as_of

        deepest = self._lower_at[-1] if self.lower else -1

        async def write(slot: Slot, at: int) -> None:
            if at == deepest:
                items = self._with_stale_window(writes, bodies, ttls, at, now)
            else:
                items = [
                    StoreItem(w.key, body, ttl[at], now + int(ttl[at] * 1000))
                    for w, body, ttl in zip(writes, bodies, ttls, strict=True)
                ]
            ok, stored = await self.calls.call(
                slot, "set", slot.tier.set_many, items, limit_s=self.options.write_timeout_s
            )
            if not ok:
                return
            column: list[float | None] = []
            for i, (ttl, was_stored) in enumerate(zip(ttls, stored, strict=True)):
                if was_stored:
                    column.append(ttl[at])  # the fresh TTL
                else:
                    column.append(None)
                    refused[i] = True
            slot.stats.writes += len(column) - column.count(None)
            slot.stats.stale += column.count(None)
            columns[at] = column

        if self.lower:
            await asyncio.gather(
                *(write(slot, at) for slot, at in zip(self.lower, self._lower_at, strict=True))
            )
            if in_l1:
                self._unshadow(writes, columns[0], in_l1, refused)
        if not columns:
            raise CacheUnavailable("all tiers", "set", f"{len(writes)} writes not stored")
        results: Written = [{} for _ in writes]
        for at in sorted(columns):  # shallow to deep
            name = self._name_at[at]
            for result, ttl in zip(results, columns[at], strict=True):
                if ttl is not None:
                    result[name] = ttl
        return results

    def _with_stale_window(
        self,
        writes: Sequence[Write],
        bodies: list[Body],
        ttls: list[list[float]],
        at: int,
        now: int,
    ) -> list[StoreItem]:
        """The deepest tier keeps each copy for its fresh TTL plus the data type's stale
        window; the head says until when it is fresh."""
        windows: dict[str, float] = {}
        items: list[StoreItem] = []
        for w, body, row in zip(writes, bodies, ttls, strict=True):
            window = windows.get(w.data_type)
            if window is None:
                window = windows[w.data_type] = self.policy.stale_for(w.data_type)
            fresh = row[at]
            kept = fresh + window
            items.append(
                StoreItem(w.key, body, kept, now + int(kept * 1000), now + int(fresh * 1000))
            )
        return items

    def _write_l1(
        self, writes: Sequence[Write], bodies: list[Body], ttls: list[list[float]], now: int
    ) -> tuple[list[float | None], list[Hit | None]]:
        """Straight into L1; the TTL written per write (None where L1 kept a newer value)
        and the entries stored."""
        assert self.l1 is not None
        store = self.l1.store
        column: list[float | None] = []
        entries: list[Hit | None] = []
        for w, body, row in zip(writes, bodies, ttls, strict=True):
            ttl = row[0]
            stored = store(StoreItem(w.key, body, ttl, now + int(ttl * 1000)))
            column.append(None if stored is None else ttl)
            entries.append(stored)
        stale = column.count(None)
        self.l1_stats.writes += len(column) - stale
        self.l1_stats.stale += stale
        return column, entries

    def _unshadow(
        self,
        writes: Sequence[Write],
        l1_column: list[float | None],
        in_l1: list[Hit | None],
        refused: list[bool],
    ) -> None:
        """An L1 that had evicted a key took an older write that L2/L3 refused; drop it so
        reads do not answer older data than the tiers below hold."""
        assert self.l1 is not None
        for i, entry in enumerate(in_l1):
            if entry is not None and refused[i]:
                self.l1.discard_entry(writes[i].key, entry)
                l1_column[i] = None
                self.l1_stats.writes -= 1
                self.l1_stats.stale += 1
