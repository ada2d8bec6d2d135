"""What a scenario observes: a timeline of the fleet's metrics and of what the reader serves,
and the end-of-run ledger of ticker events (produced in Kafka, processed by the worker,
observed in the tiers)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections import defaultdict
from dataclasses import dataclass, field

import aiohttp
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from chaos._fleet import Fleet, Samples, total

#: the reader paths the freshness probe asks for, one per venue
PROBES = {"binance": "/v2/tickers/binance/BTC-USDT", "okx": "/v2/tickers/okx/ETH-USDT"}
TIERS = ("memcached", "redis")


@dataclass(frozen=True, slots=True)
class Observation:
    at: float  # monotonic
    wall_ms: float  # time.time() in ms, to compare with an exchange's as_of
    breakers: dict[tuple[str, str], float]  # (process, tier) -> 1 open / 0 closed
    leaders: dict[str, float]  # clock -> warmfleet_clock_is_leader
    phase: str | None
    served_as_of_ms: dict[str, int | None]  # venue -> as_of the reader serves


@dataclass
class Timeline:
    fleet: Fleet
    base_url: str
    every_s: float = 0.5
    points: list[Observation] = field(default_factory=list)

    async def run(self, stop: asyncio.Event) -> None:
        timeout = aiohttp.ClientTimeout(total=1.0)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while not stop.is_set():
                scraped, served = await asyncio.gather(self.fleet.scrape(), self._serve(session))
                self.points.append(_observe(scraped, served))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.every_s)

    async def _serve(self, session: aiohttp.ClientSession) -> dict[str, int | None]:
        async def one(path: str) -> int | None:
            try:
                async with session.get(self.base_url + path) as resp:
                    if resp.status != 200:
                        return None
                    return int((await resp.json())["as_of"])
            except (aiohttp.ClientError, TimeoutError, ValueError, KeyError, TypeError):
                return None

        answers = await asyncio.gather(*(one(p) for p in PROBES.values()))
        return dict(zip(PROBES, answers, strict=True))

    def between(self, start: float, end: float) -> list[Observation]:
        return [p for p in self.points if start <= p.at < end]


def _observe(scraped: dict[str, Samples], served: dict[str, int | None]) -> Observation:
    breakers = {
        (proc, tier): total(samples, "warmfleet_cache_breaker_open", tier=tier)
        for proc, samples in scraped.items()
        if proc in ("worker", "reader")
        for tier in TIERS
        if ("warmfleet_cache_breaker_open", (("tier", tier),)) in samples
    }
    clocks = {c: s for c, s in scraped.items() if c.startswith("clock")}
    leaders = {c: total(s, "warmfleet_clock_is_leader") for c, s in clocks.items()}
    phase = None
    for c, s in clocks.items():
        if leaders.get(c) == 1.0:
            for (name, labels), value in s.items():
                if name == "warmfleet_phase" and value == 1.0:
                    phase = dict(labels).get("phase")
    return Observation(time.monotonic(), time.time() * 1000, breakers, leaders, phase, served)


def breaker_back_s(
    timeline: Timeline, tier: str, fault_at: float, restored_at: float
) -> tuple[bool, float | None]:
    """(whether any process's breaker for ``tier`` opened after the fault, seconds from the
    restore until every one is closed again -- None if it never closed while watched)."""
    opened = any(
        v == 1.0
        for p in timeline.points
        if p.at >= fault_at
        for (_, t), v in p.breakers.items()
        if t == tier
    )
    if not opened:
        return False, None
    for p in timeline.points:
        if p.at < restored_at:
            continue
        of_tier = [v for (_, t), v in p.breakers.items() if t == tier]
        if of_tier and all(v == 0.0 for v in of_tier):
            return True, round(max(0.0, p.at - restored_at), 2)
    return True, None


#: a ticker is fresh while the reader serves it at most this old: the market-hours warm
#: interval (15 s) plus the pipeline's own few seconds
FRESH_AGE_S = 20.0


def fresh_again_s(
    timeline: Timeline, since: float, venues: tuple[str, ...], fresh_age_s: float = FRESH_AGE_S
) -> float | None:
    """Seconds from ``since`` (the restore) until the reader serves every venue's ticker
    at most ``fresh_age_s`` old (exchange as_of to the moment it is read); 0 when it never
    went stale."""
    for p in timeline.points:
        if p.at < since:
            continue
        ages = [p.served_as_of_ms.get(v) for v in venues]
        if all(a is not None and (p.wall_ms - a) / 1000 <= fresh_age_s for a in ages):
            return round(p.at - since, 2)
    return None


def max_served_age_s(timeline: Timeline, start: float, end: float, venue: str) -> float | None:
    """The oldest ticker the reader served for ``venue`` in the window (its age when read)."""
    ages = []
    for p in timeline.between(start, end):
        as_of = p.served_as_of_ms.get(venue)
        if as_of is not None:
            ages.append((p.wall_ms - as_of) / 1000)
    return round(max(ages), 1) if ages else None


@dataclass(frozen=True, slots=True)
class Ledger:
    """Ticker events: in the topic, distinct (what the agents must count: strictly newer
    ``as_of`` per key, in partition order), processed (worker counters summed over its
    incarnations) and observed in the tiers (``observations`` of each symbol's analysis)."""

    produced: int
    expected: int
    processed: int
    observed: int
    keys: int
    keys_missing: int  # keys with events but no analysis in the tiers
    #: observed minus expected, for the first keys that do not balance (to find them)
    off_by_key: dict[str, int] = field(default_factory=dict)

    @property
    def lost(self) -> int:
        return max(0, self.expected - self.observed)

    @property
    def doubled(self) -> int:
        return max(0, self.observed - self.expected)


async def expected_observations(bootstrap: str, topic: str) -> tuple[int, dict[str, int]]:
    """(records in the topic, key -> strictly-newer as_of count) read from the beginning.
    A key lives in one partition, so the records of a key arrive in the order the agents
    saw them."""
    records = await _read_all(bootstrap, topic)
    newest: dict[str, int] = {}
    counts: dict[str, int] = defaultdict(int)
    for raw_key, value, _ in records:
        if raw_key is None or value is None:
            continue
        key = raw_key.decode()
        try:
            as_of = int(orjson.loads(value)["as_of_ms"])
        except (ValueError, KeyError, TypeError):
            continue  # dead-lettered by the agents: never counted
        if as_of > newest.get(key, -1):
            newest[key] = as_of
            counts[key] += 1
    return len(records), dict(counts)


async def _read_all(bootstrap: str, topic: str) -> list[tuple[bytes | None, bytes | None, int]]:
    """Every record of ``topic`` from the beginning: (key, value, timestamp ms)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        if not parts:
            await consumer._client.force_metadata_update()
            parts = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        if not tps:
            return []
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        out: list[tuple[bytes | None, bytes | None, int]] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            pending = [tp for tp in tps if await consumer.position(tp) < ends[tp]]
            if not pending:
                break
            batch = await consumer.getmany(*pending, timeout_ms=1000, max_records=5000)
            for records in batch.values():
                out.extend((r.key, r.value, r.timestamp) for r in records)
        return out
    finally:
        await consumer.stop()


async def job_times_ms(bootstrap: str, topic: str) -> list[int]:
    """When each warm job was issued (its Kafka timestamp), sorted."""
    return sorted(ts for _, _, ts in await _read_all(bootstrap, topic))


def longest_gap_s(times_ms: list[int], start_ms: float, end_ms: float) -> float | None:
    """The longest stretch of [start, end] without a warm job issued."""
    inside = [t for t in times_ms if start_ms <= t <= end_ms]
    if not times_ms:
        return None
    edges = [start_ms, *inside, end_ms]
    return round(max(b - a for a, b in itertools.pairwise(edges)) / 1000, 1)


async def observed_observations(
    tier_urls: list[str], prefix: str, keys: list[str]
) -> tuple[dict[str, int], dict[str, dict[str, int]]]:
    """key (exchange:symbol) -> ``observations`` of the symbol's analysis in the shared
    tiers, read from each tier on its own (no L1, no promotion) and the larger taken; also
    tier -> key -> what that tier holds."""
    from tiers import MultiTierCache
    from topics import key_for

    cache_keys = [key_for("volatility", *k.split(":", 1), prefix=prefix) for k in keys]
    per_tier: dict[str, dict[str, int]] = {}
    for url in tier_urls:
        cache = MultiTierCache.from_urls(url)
        try:
            hits = await cache.get_many(cache_keys)
        finally:
            await cache.close()
        seen = {}
        for key, hit in zip(keys, hits, strict=True):
            if hit is not None and isinstance(hit.value, dict) and "observations" in hit.value:
                seen[key] = int(hit.value["observations"])
        per_tier[url.split("://", 1)[0]] = seen
    best: dict[str, int] = {}
    for seen in per_tier.values():
        for key, n in seen.items():
            best[key] = max(n, best.get(key, 0))
    return best, per_tier
