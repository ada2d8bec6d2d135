"""Which symbols a warm job names and when the clock pre-warms (pure: the hot set is a
parameter here; tests/schedules/test_hotset_clock.py runs the real one)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from schedules import JobKey, Override, Phase, PhaseConfig, parse_config, resolve
from schedules._config import HotSetWarm
from schedules._warmset import (
    HOT_SET_UNKNOWN,
    NO_BUDGET,
    NO_HOT_SYMBOL,
    hot_set_budget,
    job_symbols,
    prewarm_at,
)
from topics import ConfigError, DataType

NY = ZoneInfo("America/New_York")
BASE: dict[str, Any] = {
    "phases": {
        "intervals": {
            "market_hours": 15, "pre_market": 60, "after_hours": 120, "overnight": 300,
            "weekend": 600,
        },
        "multipliers": {"candles": 2},
    },
    "warm": {"exchanges": {"binance": {"data_types": ["tickers", "books", "candles"]}}},
}  # fmt: skip


class Ranked:
    """A hot set that is a fixed ranking (the real one: tiers.HeatView)."""

    def __init__(self, ranking: dict[tuple[str, DataType], list[str]] | None) -> None:
        self.ranking = ranking
        self.asked: list[int] = []

    def hot_symbols(
        self, exchange: str, data_type: DataType, limit: int, allowed: Iterable[str] | None = None
    ) -> list[str] | None:
        self.asked.append(limit)
        if self.ranking is None:
            return None
        ranked = self.ranking.get((exchange, data_type), [])
        if allowed is not None:
            ranked = [s for s in ranked if s in set(allowed)]
        return ranked[:limit]


def config(**binance: Any) -> PhaseConfig:
    raw = {**BASE, "warm": {"exchanges": {"binance": {**BASE["warm"]["exchanges"]["binance"]}}}}
    raw["warm"]["exchanges"]["binance"].update(binance)
    return parse_config(raw)


def test_the_budget_is_the_share_of_requests_per_s_less_the_all_markets_jobs() -> None:
    cfg = config(requests_per_s=10)
    ex = cfg.exchange("binance")
    # 10 req/s * 0.5 = 5; tickers take 1/15; books and candles split 4.933 req/s evenly
    assert hot_set_budget(cfg, ex, Phase.MARKET_HOURS, DataType.BOOKS, 1.0) == 37  # 2.47 * 15
    assert hot_set_budget(cfg, ex, Phase.MARKET_HOURS, DataType.CANDLES, 1.0) == 74  # * 30
    assert hot_set_budget(cfg, ex, Phase.WEEKEND, DataType.BOOKS, 1.0) == 1499
    assert hot_set_budget(cfg, ex, Phase.MARKET_HOURS, DataType.TICKERS, 1.0) == 0
    # the boost halves the intervals, so each job may name half as many
    assert hot_set_budget(cfg, ex, Phase.MARKET_HOURS, DataType.BOOKS, 0.5) == 18
    tight = config(requests_per_s=0.1)  # 0.05 req/s: not even the tickers job fits
    assert hot_set_budget(tight, tight.exchange("binance"), Phase.MARKET_HOURS,
                          DataType.BOOKS, 1.0) == 0  # fmt: skip


def test_books_and_candles_name_the_hot_symbols_within_the_budget() -> None:
    cfg = config(requests_per_s=1)  # 0.5 req/s - 1/15 for tickers: 0.217 each -> 3 books
    hot = Ranked({("binance", DataType.BOOKS): ["A/USDT", "B/USDT", "C/USDT", "D/USDT", "E/USDT"]})
    books = JobKey("binance", DataType.BOOKS)
    assert job_symbols(cfg, books, Phase.MARKET_HOURS, 1.0, hot) == (
        ["A/USDT", "B/USDT", "C/USDT"], None
    )  # fmt: skip
    assert hot.asked == [3]
    # tickers keep their all-markets fetch, whatever is hot
    assert job_symbols(cfg, JobKey("binance", DataType.TICKERS), Phase.MARKET_HOURS, 1.0, hot) == (
        [], None
    )  # fmt: skip
    # nobody read candles: no job, and the reason
    candles = JobKey("binance", DataType.CANDLES)
    assert job_symbols(cfg, candles, Phase.MARKET_HOURS, 1.0, hot) == ([], NO_HOT_SYMBOL)
    assert job_symbols(cfg, candles, Phase.MARKET_HOURS, 1.0, Ranked(None)) == (
        [], HOT_SET_UNKNOWN
    )  # fmt: skip
    tight = config(requests_per_s=0.1)
    assert job_symbols(tight, books, Phase.MARKET_HOURS, 1.0, hot) == ([], NO_BUDGET)
    # without a hot set: the config's list, as before ([] = all markets)
    assert job_symbols(cfg, books, Phase.MARKET_HOURS, 1.0, None) == ([], None)


def test_an_explicit_symbols_by_type_wins_and_symbols_restricts_the_hot_set() -> None:
    hot = Ranked({("binance", DataType.BOOKS): ["A/USDT", "B/USDT", "C/USDT"]})
    books = JobKey("binance", DataType.BOOKS)
    pinned = config(symbols_by_type={"books": ["Z/USDT"]})
    assert job_symbols(pinned, books, Phase.WEEKEND, 1.0, hot) == (["Z/USDT"], None)
    assert hot.asked == []  # not even consulted
    everything = config(symbols_by_type={"books": []})
    assert job_symbols(everything, books, Phase.WEEKEND, 1.0, hot) == ([], None)
    listed = config(symbols=["C/USDT", "A/USDT", "X/USDT"])
    assert job_symbols(listed, books, Phase.WEEKEND, 1.0, hot) == (["A/USDT", "C/USDT"], None)


def test_prewarm_comes_lead_seconds_before_a_change_to_a_faster_phase_only() -> None:
    cfg = config()
    lead = timedelta(seconds=cfg.hot_set.pre_warm_lead_s)
    tue = datetime(2026, 12, 1, 9, 0, tzinfo=NY)  # pre-market; the open at 09:30
    state = resolve(cfg, tue)
    assert state.next_change == datetime(2026, 12, 1, 9, 30, tzinfo=NY)
    assert prewarm_at(cfg, state) == (state.next_change - lead, Phase.MARKET_HOURS)
    overnight = resolve(cfg, datetime(2026, 12, 1, 3, 0, tzinfo=NY))  # -> 04:00 pre-market
    assert prewarm_at(cfg, overnight) == (
        datetime(2026, 12, 1, 4, 0, tzinfo=NY) - lead, Phase.PRE_MARKET
    )  # fmt: skip
    # to slower phases: the close (16:00) and after-hours' end (20:00) are not pre-warmed
    assert prewarm_at(cfg, resolve(cfg, datetime(2026, 12, 1, 15, 0, tzinfo=NY))) is None
    assert prewarm_at(cfg, resolve(cfg, datetime(2026, 12, 1, 19, 0, tzinfo=NY))) is None
    # a clock that takes the lead inside the lead window pre-warms at once
    late = resolve(cfg, datetime(2026, 12, 1, 9, 29, 58, tzinfo=NY))
    assert prewarm_at(cfg, late) == (late.at, Phase.MARKET_HOURS)
    # lead 0: off
    off = PhaseConfig(cfg.calendar, cfg.exchanges, hot_set=HotSetWarm(pre_warm_lead_s=0))
    assert prewarm_at(off, state) is None


def test_prewarm_before_an_override_ends_in_a_faster_phase() -> None:
    cfg = config()
    now = datetime(2026, 12, 1, 10, 0, tzinfo=NY)  # market hours, held at weekend
    until = now + timedelta(minutes=10)
    held = Override(Phase.WEEKEND, until, set_at=now - timedelta(minutes=1))
    state = resolve(cfg, now, override=held)
    assert state.phase is Phase.WEEKEND and state.next_change == until
    assert prewarm_at(cfg, state, held) == (until - timedelta(seconds=5), Phase.MARKET_HOURS)


@pytest.mark.parametrize(
    ("table", "field"),
    [
        ({"pre_warm_lead_s": -1}, "warm.hot_set.pre_warm_lead_s"),
        ({"pre_warm_lead_s": 61}, "warm.hot_set.pre_warm_lead_s"),
        ({"pre_warm_lead_s": "5"}, "warm.hot_set.pre_warm_lead_s"),
        ({"pre_warm_lead_s": True}, "warm.hot_set.pre_warm_lead_s"),
        ({"budget_share": 0}, "warm.hot_set.budget_share"),
        ({"budget_share": 1.5}, "warm.hot_set.budget_share"),
        ({"lead": 5}, "warm.hot_set.lead"),
    ],
)
def test_a_bad_hot_set_table_is_refused_naming_the_field(
    table: dict[str, object], field: str
) -> None:
    raw = {**BASE, "warm": {**BASE["warm"], "hot_set": table}}
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        parse_config(raw)


def test_the_packaged_phases_file_pre_warms_5_s_ahead_with_half_the_budget() -> None:
    from schedules import DEFAULT_PATH, load_config

    cfg = load_config(DEFAULT_PATH)
    assert cfg.hot_set == HotSetWarm(pre_warm_lead_s=5.0, budget_share=0.5)
