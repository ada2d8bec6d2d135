"""The overview's volatility index, which drives the clock's boost, is robust to one bad
symbol (issue 12: one ticker at last = 1e-300 made one symbol's volatility 169, the index
went from 0.0004 to 2.85 and the clock halved every interval fleet-wide)."""

from __future__ import annotations

import pytest

from schedules import boost_active, default_path, load_config
from workers.analytics import OverviewRow, market_overview


def row(i: int, volatility: float) -> OverviewRow:
    return OverviewRow(
        exchange="binance", symbol=f"S{i}/USDT", last=1.0, change_pct=0.1, quote_volume=1.0,
        spread_bps=1.0, volatility=volatility, returns=20, as_of_ms=1,
    )  # fmt: skip


@pytest.mark.parametrize("outlier", [169.0, 1e300, float("inf")])
def test_one_wild_symbol_does_not_move_the_index_or_the_boost(outlier: float) -> None:
    calm = [row(i, 0.0004) for i in range(60)]
    index = market_overview("all", [*calm, row(60, outlier)], computed_ms=1)["volatility_index"]
    assert index == pytest.approx(0.0004)
    boost = load_config(default_path()).boost
    assert not boost_active(boost, False, index, 0.0)


def test_a_market_wide_move_still_boosts() -> None:
    wild = [row(i, 0.02) for i in range(40)] + [row(40 + i, 0.0004) for i in range(20)]
    index = market_overview("all", wild, computed_ms=1)["volatility_index"]
    assert index == pytest.approx(0.02)
    assert boost_active(load_config(default_path()).boost, False, index, 0.0)


def test_the_index_is_bounded_even_when_every_symbol_is_wild() -> None:
    index = market_overview("all", [row(0, 50.0), row(1, 80.0)], computed_ms=1)
    assert index["volatility_index"] == 1.0
