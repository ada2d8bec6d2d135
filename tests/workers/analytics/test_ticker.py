from __future__ import annotations

import math

import pytest

from workers.analytics import (
    MOMENTUM_ALPHA,
    WARMUP_RETURNS,
    TickerState,
    TickerView,
    change_pct,
    ewma_variance,
    observe_ticker,
    spread_bps,
    vwap,
)


def tick(last: float, as_of: int, **kw: float | None) -> TickerView:
    fields: dict[str, object] = {
        "exchange": "binance", "symbol": "BTC/USDT", "last": last, "bid": None, "ask": None,
        "open": None, "base_volume": None, "quote_volume": None, "change_pct": None,
        "as_of_ms": as_of,
    }  # fmt: skip
    fields.update(kw)
    return TickerView(**fields)  # type: ignore[arg-type]


def test_spread_bps_of_a_quote() -> None:
    assert spread_bps(99.0, 101.0) == pytest.approx(200.0)  # 2 / 100 * 10_000
    assert spread_bps(None, 101.0) is None
    assert spread_bps(101.0, 99.0) is None  # crossed: not a spread
    assert spread_bps(0.0, 1.0) is None


def test_vwap_is_quote_over_base_volume() -> None:
    assert vwap(2.0, 210.0) == 105.0
    assert vwap(0.0, 210.0) is None
    assert vwap(2.0, None) is None


def test_change_prefers_the_exchange_figure() -> None:
    assert change_pct(110.0, 100.0, 3.5) == 3.5
    assert change_pct(110.0, 100.0, None) == pytest.approx(10.0)
    assert change_pct(110.0, None, None) is None


def test_first_ticker_starts_the_state() -> None:
    state = observe_ticker(None, tick(100.0, 1, bid=99.0, ask=101.0, base_volume=2.0,
                                      quote_volume=210.0, change_pct=1.5))  # fmt: skip
    assert (state.last, state.as_of_ms, state.observations, state.returns) == (100.0, 1, 1, 0)
    assert state.variance == 0.0 and state.volatility == 0.0 and state.last_return is None
    assert state.spread_bps == pytest.approx(200.0) and state.vwap == 105.0
    assert state.change_pct == 1.5 and state.quote_volume == 210.0


def test_returns_update_ewma_variance_and_momentum_by_hand() -> None:
    s1 = observe_ticker(None, tick(100.0, 1))
    s2 = observe_ticker(s1, tick(110.0, 2))
    r = math.log(1.1)
    assert s2.last_return == pytest.approx(r)
    assert s2.variance == pytest.approx(0.06 * r * r)
    assert s2.volatility == pytest.approx(math.sqrt(0.06) * r)
    assert s2.momentum == pytest.approx(MOMENTUM_ALPHA * r)
    s3 = observe_ticker(s2, tick(99.0, 3))
    r2 = math.log(99.0 / 110.0)
    assert s3.variance == pytest.approx(0.94 * 0.06 * r * r + 0.06 * r2 * r2)
    assert s3.momentum == pytest.approx(MOMENTUM_ALPHA * r2 + (1 - MOMENTUM_ALPHA) * s2.momentum)
    assert (s3.observations, s3.returns) == (3, 2)


def test_ewma_variance_is_riskmetrics() -> None:
    assert ewma_variance(0.0004, 0.01) == pytest.approx(0.94 * 0.0004 + 0.06 * 0.0001)


def test_breakout_needs_warmup_and_a_large_move() -> None:
    state = observe_ticker(None, tick(100.0, 0))
    price = 100.0
    for i in range(1, WARMUP_RETURNS + 1):  # alternating 0.1 % moves
        price *= 1.001 if i % 2 else 0.999
        state = observe_ticker(state, tick(price, i))
        assert not state.breakout
    calm = observe_ticker(state, tick(price * 1.001, 100))
    assert not calm.breakout
    jump = observe_ticker(state, tick(price * 1.05, 100))  # 5 % >> 3 x ~0.1 %
    assert jump.breakout


def test_state_round_trips_through_a_dict() -> None:
    state = observe_ticker(observe_ticker(None, tick(100.0, 1)), tick(101.0, 2, bid=1.0, ask=2.0))
    assert TickerState.from_dict(state.to_dict()) == state
