"""Pure parts of the tiers package: codec, keys, hash ring, breaker, L1, URL parsing."""

from __future__ import annotations

import decimal
import random
from collections import Counter

import orjson
import pytest

import tiers
from tiers import (
    BreakerState,
    CacheError,
    CircuitBreaker,
    CorruptEntry,
    Envelope,
    HashRing,
    MemcachedTier,
    MemoryTier,
    MultiTierCache,
    RedisTier,
    UnencodableValue,
    ValueTooLarge,
    check_key,
    decode,
    encode,
    tier_from_url,
)
from tiers._bus import DROPPED, decode_message, encode_message
from tiers._envelope import encode_body, now_ms
from tiers._metrics import ReadStats, summarize_text
from tiers._ttl import LEVELS, TierLevel, TTLPolicy
from topics import ConfigError, DataType, WarmfleetError


def test_the_documented_names_are_exported() -> None:
    # the whole of tiers.__all__ is pinned once, in tests/test_public_names.py
    for name in (
        "MultiTierCache", "MemoryTier", "MemcachedTier", "RedisTier", "TTLPolicy", "TierLevel",
        "Hit", "Envelope", "DirectCacheAdapter", "CacheError", "CacheUnavailable", "Write",
    ):  # fmt: skip
        assert name in tiers.__all__
        assert getattr(tiers, name) is not None
    assert issubclass(CacheError, WarmfleetError)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# ---- envelope ---------------------------------------------------------------------------


def test_envelope_round_trip_and_head() -> None:
    env = Envelope({"last": 1.5, "sym": "BTC/USDT"}, 1_700_000_000_123, 1_700_000_000_200, "w1")
    raw = encode(env.with_expiry(1_700_000_060_000))
    assert raw.startswith(b'{"a":1700000000123,"e":1700000060000,')  # the Redis script reads it
    back = decode(raw)
    assert back == env.with_expiry(1_700_000_060_000)
    assert orjson.loads(raw)["v"] == {"last": 1.5, "sym": "BTC/USDT"}


def test_decimal_and_records_encode_exactly() -> None:
    class Record:
        def asdict(self) -> dict[str, object]:
            return {"price": decimal.Decimal("0.1000000000000000055")}

    raw = encode(Envelope(Record(), 1, 2))
    assert decode(raw).value == {"price": "0.1000000000000000055"}


def test_oversize_value_is_a_clear_error() -> None:
    with pytest.raises(ValueTooLarge, match=r"k1.*over the 1000-byte cap") as info:
        encode_body("k1", "x" * 2000, as_of=1, written_at=1, source="", max_bytes=1000)
    assert isinstance(info.value, ValueError) and info.value.size > 1000


def test_unencodable_value_is_a_clear_error() -> None:
    with pytest.raises(UnencodableValue, match="k2"):
        encode_body("k2", {"f": object()}, as_of=1, written_at=1, source="")


@pytest.mark.parametrize("raw", [b"", b"garbage", b'{"a":1}', b"[1,2]", b'{"a":"x","v":1}'])
def test_foreign_bytes_are_corrupt_entries(raw: bytes) -> None:
    with pytest.raises(CorruptEntry):
        decode(raw)


# ---- keys -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    ["", "has space", "tab\tkey", "new\nline", "nul\x00", "del\x7f", "c1\x85", "c1\x9b", "k" * 251],
)
def test_bad_keys_are_value_errors_naming_the_key(key: str) -> None:
    with pytest.raises(ValueError) as info:
        check_key(key)
    assert repr(key)[:40].strip("'") in str(info.value) or len(key) > 250


def test_good_keys_pass() -> None:
    for key in ("virt:v2:market:ticker:15s:binance:BTC/USDT", "é" * 125, "k" * 250):
        assert check_key(key) == key


# ---- hash ring --------------------------------------------------------------------------


def test_ring_spreads_keys_and_moves_few_when_scaling_out() -> None:
    keys = [f"virt:v2:market:ticker:15s:ex:{i}".encode() for i in range(20_000)]
    three = HashRing(["a:1", "b:1", "c:1"])
    four = HashRing(["a:1", "b:1", "c:1", "d:1"])
    spread = Counter(three.index_for(k) for k in keys)
    assert min(spread.values()) > 20_000 / 3 * 0.8  # within 20 % of even
    moved = sum(three.index_for(k) != four.index_for(k) for k in keys)
    assert 0.15 < moved / len(keys) < 0.35  # about 1/4 move, not all of them
    assert all(four.index_for(k) == 3 for k in keys if three.index_for(k) != four.index_for(k))


# ---- breaker ----------------------------------------------------------------------------


def test_breaker_opens_probes_and_closes() -> None:
    clock = FakeClock()
    b = CircuitBreaker("redis", failure_threshold=3, cooldown_s=2.0, clock=clock)
    for _ in range(2):
        assert b.allow()
        b.failure("TimeoutError")
    assert b.state is BreakerState.CLOSED
    b.failure("TimeoutError")
    assert b.state is BreakerState.OPEN and not b.allow()
    clock.now += 2.0
    assert b.allow()  # one probe
    assert b.state is BreakerState.HALF_OPEN and not b.allow()
    b.failure("ConnectionRefusedError")  # probe failed: open again, new cooldown
    assert b.state is BreakerState.OPEN and not b.allow()
    clock.now += 2.0
    assert b.allow()
    b.success()
    assert b.state is BreakerState.CLOSED and b.allow() and b.failures == 0


def test_breaker_success_resets_the_consecutive_count() -> None:
    b = CircuitBreaker("memcached", failure_threshold=2, clock=FakeClock())
    b.failure()
    b.success()
    b.failure()
    assert b.state is BreakerState.CLOSED


def test_abandoned_probe_lets_the_next_one_through() -> None:
    clock = FakeClock()
    b = CircuitBreaker("redis", failure_threshold=1, cooldown_s=1.0, clock=clock)
    b.failure()
    clock.now += 1.0
    assert b.allow()
    b.abandon()  # the probing call was cancelled
    assert b.allow()


# ---- L1 ---------------------------------------------------------------------------------


def env(as_of: int, value: object = None) -> Envelope:
    return Envelope(value, as_of, as_of)


def test_memory_tier_expires_per_entry() -> None:
    clock = FakeClock()
    m = MemoryTier(10, clock=clock)
    m.put("short", env(1), 1.0)
    m.put("long", env(1), 10.0)
    clock.now += 1.5
    assert m.lookup("short") is None
    assert m.lookup("long") is not None
    assert len(m) == 1


def test_memory_tier_evicts_least_recently_used() -> None:
    m = MemoryTier(3, clock=FakeClock())
    for k in "abc":
        m.put(k, env(1), 60)
    m.lookup("a")  # a is now the most recent
    m.put("d", env(1), 60)
    assert m.lookup("b") is None
    assert [k for k in "acd" if m.lookup(k) is not None] == ["a", "c", "d"]
    assert m.evictions == 1


def test_memory_tier_admits_a_new_key_only_if_it_missed_more_than_the_victim() -> None:
    clock = FakeClock()
    m = MemoryTier(2, clock=clock)
    for key in ("hot", "hot", "hot", "warm"):
        m.note_miss(key)
    m.put("hot", env(1), 60)
    m.put("warm", env(1), 60)
    m.lookup("warm")  # hot is now the LRU victim, with 3 misses
    m.note_miss("once")
    assert m.put("once", env(1), 60) is None  # 1 miss <= 3: kept out
    assert m.rejections == 1 and m.lookup("hot") is not None
    for _ in range(3):
        m.note_miss("rising")
    m.lookup("warm")  # victim is hot again (3 misses); rising has 3: still out
    assert m.put("rising", env(1), 60) is None
    m.note_miss("rising")
    assert m.put("rising", env(1), 60) is not None  # 4 > 3: displaces hot
    assert m.lookup("hot") is None
    clock.now += 61  # an expired victim always makes room
    assert m.put("late", env(1), 60) is not None


def test_memory_tier_without_admission_is_plain_lru() -> None:
    m = MemoryTier(1, admission=False, clock=FakeClock())
    m.note_miss("a")
    m.note_miss("a")
    m.put("a", env(1), 60)
    assert m.put("b", env(1), 60) is not None and m.lookup("a") is None


def test_memory_tier_refuses_older_as_of_until_expiry() -> None:
    clock = FakeClock()
    m = MemoryTier(10, clock=clock)
    assert m.put("k", env(200, "new"), 5)
    assert not m.put("k", env(100, "old"), 5)
    assert m.put("k", env(200, "same as_of refreshes"), 5)
    got = m.lookup("k")
    assert got is not None and got.value == "same as_of refreshes"
    clock.now += 6
    assert m.put("k", env(100, "old but the newer one expired"), 5)


def test_memory_tier_hit_is_what_the_cache_reads() -> None:
    clock = FakeClock()
    m = MemoryTier(10, clock=clock)
    m.put("k", env(now_ms() - 5_000, "v"), 10.0)
    hit = m.hit("k")
    assert hit is not None and hit.value == "v" and hit.tier == "memory"
    assert m.hit("k", max_age=1.0) is None  # 5 s old by its as_of: refused, not counted
    assert m.hit("k", max_age=60.0) is hit
    assert m.hit("absent") is None
    clock.now += 11
    assert m.hit("k") is None  # expired
    assert m.hits == 2


def test_memory_tier_drops_only_older_copies_or_deleted_keys() -> None:
    m = MemoryTier(10, clock=FakeClock())
    m.put("k", env(200), 60)
    assert not m.drop_older("k", 150) and not m.drop_older("k", 200)  # ours is as new
    assert m.drop_older("k", 201) and m.lookup("k") is None
    m.put("k", env(200), 60)
    assert m.drop_older("k", DROPPED) and m.lookup("k") is None
    assert not m.drop_older("absent", 1)
    first = m.put("j", env(1), 60)
    assert first is not None
    m.put("j", env(2), 60)
    assert not m.discard_entry("j", first)  # a newer write replaced it: kept
    assert m.lookup("j") is not None


def test_bus_messages_round_trip_and_read_the_old_form() -> None:
    entries = [("virt:v2:market:ticker:15s:binance:BTC/USDT", 1_700_000_000_123), ("k2", -1)]
    assert decode_message(encode_message("abc", entries)) == ("abc", entries)
    assert decode_message(b"oldsender virt:v2:x") == ("oldsender", [("virt:v2:x", DROPPED)])
    for bad in (b"nokey", b"wf2 s\nnokey", b"wf2 s\nx k"):
        with pytest.raises(ValueError):
            decode_message(bad)


def test_memory_tier_rejects_a_zero_size() -> None:
    with pytest.raises(ConfigError, match="max_entries"):
        MemoryTier(0)


# ---- URLs -------------------------------------------------------------------------------


def test_urls_pick_tiers() -> None:
    m = tier_from_url("memory://?max_entries=1500")
    assert isinstance(m, MemoryTier) and m.max_entries == 1500
    mc = tier_from_url("memcached://10.0.0.1:11211,10.0.0.2:11212")
    assert isinstance(mc, MemcachedTier) and mc.servers == ("10.0.0.1:11211", "10.0.0.2:11212")
    r = tier_from_url("rediss://:s3cret@cache.example:6380/2")
    assert isinstance(r, RedisTier) and not r.cluster
    assert "s3cret" not in repr(r)
    rc = tier_from_url("redis+cluster://127.0.0.1:7000")
    assert isinstance(rc, RedisTier) and rc.cluster


@pytest.mark.parametrize(
    "url, field",
    [
        ("mongodb://x", "scheme"),
        ("memory://?max_entries=zero", "max_entries"),
        ("memcached://host:notaport", "host:port"),
        ("redis://:pw@/0", "host"),
    ],
)
def test_bad_urls_are_config_errors(url: str, field: str) -> None:
    with pytest.raises(ConfigError, match=field) as info:
        tier_from_url(url)
    assert "pw@" not in str(info.value)


def test_tier_order_is_checked() -> None:
    with pytest.raises(ConfigError, match="shallow to deep"):
        MultiTierCache([RedisTier(), MemoryTier()])
    with pytest.raises(ConfigError, match="at least one"):
        MultiTierCache([])


@pytest.mark.parametrize("data_type", ["tickers", DataType.CANDLES, "something-else"])
@pytest.mark.parametrize("warm_interval", [None, 15.0, 600.0])
def test_ttls_is_ttl_for_per_level_with_the_same_draws(
    data_type: str, warm_interval: float | None
) -> None:
    """``ttls`` takes its shortcuts (memoised rows, one volatility factor) without changing a
    figure or the sequence of random draws: seeded, it equals ``ttl_for`` level by level."""
    for levels in (LEVELS, (TierLevel.L1, TierLevel.L2), (TierLevel.L2,)):
        for volatility in (None, 0.0, 0.013, float("nan"), 3.0):
            fast = TTLPolicy(rng=random.Random(5)).ttls(
                data_type, levels, volatility=volatility, warm_interval=warm_interval,
                access_weight=1.7,
            )  # fmt: skip
            slow = TTLPolicy(rng=random.Random(5))
            floor, expected = 0.0, {}
            for i, level in enumerate(levels):
                floor = max(floor, slow.ttl_for(
                    data_type, level.value, volatility=volatility, warm_interval=warm_interval,
                    access_weight=1.7, deepest=i == len(levels) - 1,
                ))  # fmt: skip
                expected[level] = floor
            assert fast == expected


def test_ttls_many_is_ttls_in_turn() -> None:
    batch = [(dt, vol) for dt in ("tickers", "signals", "x") for vol in (None, 0.02, 0.4)] * 3
    for levels in (LEVELS, (TierLevel.L2, TierLevel.L3)):
        for warm_interval in (None, 15.0, 600.0):
            one = TTLPolicy(rng=random.Random(9))
            expected = [
                list(one.ttls(dt, levels, volatility=vol, warm_interval=warm_interval).values())
                for dt, vol in batch
            ]
            many = TTLPolicy(rng=random.Random(9))
            assert many.ttls_many(batch, levels, warm_interval=warm_interval) == expected


def test_ttl_rows_follow_each_policy_and_bad_levels_still_fail() -> None:
    short = TTLPolicy(jitter=0.0, base_s={DataType.DEFAULT: (2.0, 6.0, 40.0)})
    default = TTLPolicy(jitter=0.0)
    for _ in range(2):  # the second round answers from the memo
        assert short.ttls("candles") == {TierLevel.L1: 2.0, TierLevel.L2: 6.0, TierLevel.L3: 40.0}
        assert default.ttls("candles")[TierLevel.L3] == 300.0
        assert short.ttl_for("tickers", TierLevel.L2) == short.ttl_for("tickers", "l2") == 6.0
        with pytest.raises(ValueError, match="l4"):
            default.ttl_for("tickers", "l4")


# ---- read metrics -----------------------------------------------------------------------


def test_read_shares_sum_to_one_and_quantiles_interpolate() -> None:
    stats = ReadStats()
    for _ in range(60):
        stats.record("l2", 0.0003)  # in the (0.00025, 0.0005] bucket
    for _ in range(30):
        stats.record("l3", 0.0008)
    stats.record("stale", 0.002)
    stats.record("miss", 0.2)
    stats.errors = 2
    summary = stats.with_l1_hits(908).summary()
    assert summary["reads"] == 1000
    assert summary["shares"] == {"l1": 0.908, "l2": 0.06, "l3": 0.03, "stale": 0.001, "miss": 0.001}
    assert sum(summary["shares"].values()) == pytest.approx(1.0)
    assert summary["p50_ms"] == pytest.approx(0.01 * 500 / 908)  # inside the first bucket
    assert 0.25 < summary["p95_ms"] <= 0.5 and 0.5 < summary["p99_ms"] <= 1.0
    assert summary["error_rate"] == 0.002
    empty = ReadStats().summary()
    assert empty["reads"] == 0 and empty["p95_ms"] is None and empty["shares"]["l1"] is None


def test_summaries_from_metrics_text_match_the_local_ones() -> None:
    text = "\n".join([
        '# TYPE warmfleet_cache_reads_total counter',
        'warmfleet_cache_reads_total{outcome="l1"} 90.0',
        'warmfleet_cache_reads_total{outcome="miss"} 10.0',
        '# TYPE warmfleet_cache_read_seconds histogram',
        'warmfleet_cache_read_seconds_bucket{le="1e-05"} 90.0',
        'warmfleet_cache_read_seconds_bucket{le="0.001"} 99.0',
        'warmfleet_cache_read_seconds_bucket{le="+Inf"} 100.0',
        'warmfleet_cache_read_seconds_count 100.0',
        'warmfleet_cache_read_seconds_sum 0.5',
        '# TYPE warmfleet_cache_read_errors_total counter',
        'warmfleet_cache_read_errors_total 1.0',
    ]) + "\n"  # fmt: skip
    summary = summarize_text(text)
    assert summary["shares"]["l1"] == 0.9 and summary["shares"]["miss"] == 0.1
    assert summary["p99_ms"] == pytest.approx(1.0) and summary["errors"] == 1
