"""What every agent shares in one worker process: settings, topic names, the tiered cache
and the phase intervals."""

from __future__ import annotations

import faust

from tiers import HeatView, MultiTierCache, TTLPolicy
from topics import (
    ANALYSIS_OVERVIEW,
    ANALYSIS_SYMBOLS,
    CONTROL_PHASE,
    DEAD_LETTER,
    MARKET_OHLCV,
    MARKET_TICKERS,
    TopicSpec,
    key_for,
    record_bytes,
)
from workers.agents._phase import PhaseFollower
from workers.agents._progress import Progress
from workers.settings import Settings

__all__ = ["OVERVIEW_PARTS", "Runtime", "record_bytes"]

#: per-partition snapshots of the ticker table, merged into the overview by one agent
OVERVIEW_PARTS = TopicSpec("analysis.overview.parts", 1, 24 * 3600 * 1000, False, "partition")


#: cache keys remembered per worker (3 per symbol); past this the memo starts again
KEYS_REMEMBERED = 300_000


class Runtime:
    def __init__(self, app: faust.App, settings: Settings) -> None:
        self.app, self.settings = app, settings
        ns = settings.namespace
        self.app_id = f"{ns}warmfleet-agents"
        self.tickers_topic = MARKET_TICKERS.named(ns)
        self.ohlcv_topic = MARKET_OHLCV.named(ns)
        self.symbols_topic = ANALYSIS_SYMBOLS.named(ns)
        self.overview_topic = ANALYSIS_OVERVIEW.named(ns)
        self.parts_topic = OVERVIEW_PARTS.named(ns)
        self.dead_letter_topic = DEAD_LETTER.named(ns)
        self.phase = PhaseFollower(
            ",".join(settings.kafka_servers),
            CONTROL_PHASE.named(ns),
            settings.kafka_client_options(),
        )
        self.progress = Progress()
        self.progress.guard(self.parts_topic)
        #: most events one batch of the symbol stream takes (it takes what has arrived)
        self.batch_max = 20_000
        self._cache: MultiTierCache | None = None
        #: the fleet's hot set: each key's measured access weight in the TTL policy
        self.heat = HeatView(settings.redis_url, prefix=settings.key_prefix)
        self._keys: dict[tuple[str, ...], str] = {}

    @property
    def cache(self) -> MultiTierCache:
        """Created on first use, inside the worker's event loop."""
        if self._cache is None:
            s = self.settings
            self._cache = MultiTierCache.from_urls(
                s.memory_url, s.memcached_url, s.redis_url, source="agents",
                ttl_policy=TTLPolicy(heat=self.heat),
            )  # fmt: skip
        return self._cache

    async def close(self) -> None:
        if self._cache is not None:
            await self._cache.close()
            self._cache = None
        await self.heat.close()

    def key(self, data_type: str, *ids: str) -> str:
        """``key_for`` with this worker's prefix, remembered: every event of a batch needs
        three keys, and building and validating them was a tenth of the worker's CPU."""
        memo = (data_type, *ids)
        key = self._keys.get(memo)
        if key is None:
            if len(self._keys) >= KEYS_REMEMBERED:
                self._keys.clear()
            key = self._keys[memo] = key_for(data_type, *ids, prefix=self.settings.key_prefix)
        return key

    def interval(self, data_type: str) -> float:
        return self.phase.interval(data_type)
