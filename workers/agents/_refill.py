"""Cold-tier refill: a Redis or Memcached server that came back empty is written again
from what this worker holds, within seconds instead of at the next warm (up to 600 s).

What is held: ``KeptWrites``, the latest write of every key this worker wrote (tickers,
books, candles, volatility, signals of the partitions it owns, and the overview), with
when it was written and the warm interval it was written for. That is the agents' table
state in the form the tiers take it: the symbol stream already keeps it, and only the
newest value per key, so it costs references, not copies. A compacted latest-value topic
would have to be written for every value (a second copy of the stream's output) and read
back from its start on every refill; the worker has the values in memory already, and each
worker refills exactly the keys of the partitions it owns, so the fleet refills everything
once without coordination.

Detection is ``tiers.EpochWatch`` (``tiers/_epoch.py``): a marker per server; missing or
changed means the tier is new. The refill writes into that tier alone, each value with the
TTL it has left, through the tier's monotonic write: a value the stream wrote after the
restart has a newer ``as_of`` and is never replaced (the hold-off is the tiers' own rule,
so there is no window to tune). A refill that the tier could not take whole (down again,
timed out) is tried again at the next check.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Sequence

import structlog

from tiers import EpochWatch, Kept, MultiTierCache, Write
from workers.agents._metrics import REFILL_KEYS, REFILL_SECONDS, REFILLS

log = structlog.get_logger(__name__)

#: seconds between two reads of the tiers' epoch markers (one small get per tier)
CHECK_EVERY_S = 1.0
#: the partition of keys that belong to no source partition (the overview)
NO_PARTITION = -1


class KeptWrites:
    """The latest write of every key, by the source partition it belongs to."""

    def __init__(self) -> None:
        self.entries: dict[str, tuple[int, Kept]] = {}

    def __len__(self) -> int:
        return len(self.entries)

    def remember(
        self,
        writes: Sequence[Write],
        partitions: Sequence[int],
        written_ms: int,
        warm_interval: float | None,
    ) -> None:
        entries = self.entries
        for write, partition in zip(writes, partitions, strict=True):
            entries[write.key] = (partition, Kept(write, written_ms, warm_interval))

    def drop(self, partitions: Iterable[int]) -> None:
        """Forget the keys of partitions this worker no longer owns (their new owner
        refills them)."""
        gone = set(partitions)
        for key in [k for k, (p, _) in self.entries.items() if p in gone]:
            del self.entries[key]

    def snapshot(self) -> list[Kept]:
        return [kept for _, kept in self.entries.values()]


class Refill:
    """Watches the cache's lower tiers and refills one that came back empty."""

    def __init__(
        self,
        cache: MultiTierCache,
        kept: KeptWrites,
        *,
        prefix: str,
        every_s: float = CHECK_EVERY_S,
    ) -> None:
        """``prefix``: the fleet's key prefix; the markers are ``{prefix}:epoch[:n]``."""
        self.watch: EpochWatch = cache.epoch_watch(f"{prefix}:epoch")
        self.kept = kept
        self.every_s = every_s
        #: tier -> monotonic time it was found new, while its refill is not complete
        self.pending: dict[str, float] = {}
        self.refills = 0

    async def run(self) -> None:
        while True:
            try:
                await self.step()
            except Exception:
                # never a silent stop: the next check tries again
                log.exception("refill_check_failed", retry_in_s=self.every_s)
            await asyncio.sleep(self.every_s)

    async def step(self) -> None:
        """One check of the markers, then a refill of every tier found new (or whose last
        refill was cut short)."""
        for tier in await self.watch.check():
            if tier not in self.pending:
                REFILLS.labels(tier, "started").inc()
            self.pending[tier] = self.pending.get(tier, time.monotonic())
            held = len(self.kept)
            (log.warning if held else log.info)("tier_refill_started", tier=tier, keys=held)
        for tier, since in list(self.pending.items()):
            if await self.refill(tier, since):
                del self.pending[tier]

    async def refill(self, tier: str, since: float) -> bool:
        """True when every kept entry was offered to ``tier`` and taken, refused as older or
        found expired; False when the tier did not take some (tried again next check)."""
        entries = self.kept.snapshot()
        started = time.monotonic()
        done = await self.watch.refill(tier, entries)
        REFILL_KEYS.labels(tier, "written").inc(done.written)
        REFILL_KEYS.labels(tier, "refused").inc(done.refused)
        if done.failed:
            log.warning(
                "tier_refill_incomplete", tier=tier, written=done.written, failed=done.failed,
                retry_in_s=self.every_s,
            )  # fmt: skip
            return False
        self.refills += 1
        REFILLS.labels(tier, "finished").inc()
        REFILL_SECONDS.labels(tier).observe(time.monotonic() - since)
        (log.warning if entries else log.info)(
            "tier_refilled", tier=tier, written=done.written, refused_as_older=done.refused,
            expired=done.expired, seconds=round(time.monotonic() - started, 3),
            since_found_s=round(time.monotonic() - since, 3),
        )  # fmt: skip
        return True
