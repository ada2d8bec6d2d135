"""The workload: Zipf over symbols x data types, seeded; the split and shadow assignment."""

from __future__ import annotations

import collections
import random

import pytest

from ab import Assignment, Item, Load, Zipf, freshness_s, universe


def test_the_universe_is_every_symbol_type_and_exchange_plus_the_overviews() -> None:
    items = universe(["BTC/USDT", "ETH/USDT"])
    assert len(items) == 3 + 2 * 2 * 2
    assert items[0] == Item("overview", "all")
    assert items[0].key("virt") == "virt:v2:market:overview:1m:all"
    assert Item("tickers", "okx", "BTC/USDT").key("p") == "p:v2:market:ticker:15s:okx:BTC/USDT"
    assert Item("analysis", "binance", "ETH/USDT").key("p") == (
        "p:v2:analysis:volatility:1m:binance:ETH/USDT"
    )
    with pytest.raises(ValueError, match="at least one symbol"):
        universe([])


def test_freshness_classes_come_from_the_key_specs() -> None:
    assert (freshness_s("tickers"), freshness_s("analysis"), freshness_s("overview")) == (
        15.0, 60.0, 60.0,
    )  # fmt: skip


def test_zipf_draws_follow_the_rank_law_and_the_seed() -> None:
    items = universe([f"S{i}/USDT" for i in range(20)])
    zipf = Zipf(items, 1.1)
    harmonic = sum(1 / r**1.1 for r in range(1, len(items) + 1))
    assert zipf.share(0) == pytest.approx(1 / harmonic)
    assert zipf.share(9) == pytest.approx(1 / 10**1.1 / harmonic)
    a = [zipf.draw(random.Random(3)) for _ in range(1)]
    assert a == [zipf.draw(random.Random(3))]
    rng = random.Random(11)
    counts = collections.Counter(zipf.draw(rng) for _ in range(50_000))
    assert counts[items[0]] / 50_000 == pytest.approx(zipf.share(0), abs=0.01)
    assert counts[items[0]] > counts[items[1]] > counts[items[10]]
    with pytest.raises(ValueError, match="finite number"):
        Zipf(items, float("nan"))


@pytest.mark.parametrize("split", [0.25, 0.5])
def test_split_sends_that_share_to_multitier(split: float) -> None:
    rng = random.Random(7)
    arms = collections.Counter(Assignment(split).arm(rng) for _ in range(20_000))
    assert arms["multitier"] / 20_000 == pytest.approx(split, abs=0.015)


def test_shadow_serves_every_read_from_direct_and_bad_splits_are_refused() -> None:
    rng = random.Random(7)
    assert {Assignment(shadow=True).arm(rng) for _ in range(1000)} == {"direct"}
    for bad in (0.0, 1.0, -0.5, 2.0):
        with pytest.raises(ValueError, match="strictly between"):
            Assignment(bad)
    with pytest.raises(ValueError, match="concurrency"):
        Load(concurrency=0)
