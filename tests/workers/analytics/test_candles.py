from __future__ import annotations

import pytest

from workers.analytics import CandleState, atr, candle_state, ema, rsi, true_ranges


def test_ema_seeded_with_sma_by_hand() -> None:
    # seed = mean(1, 2, 3) = 2; alpha = 0.5: 4 -> 3.0; 5 -> 4.0
    assert ema([1.0, 2.0, 3.0, 4.0, 5.0], 3) == pytest.approx(4.0)
    assert ema([1.0, 2.0], 3) is None


def test_rsi_wilder_by_hand() -> None:
    # changes +1 -1 +1; gains seed (1+0)/2 = .5 -> (.5+1)/2 = .75; losses .5 -> .25; RS 3
    assert rsi([1.0, 2.0, 1.0, 2.0], period=2) == pytest.approx(75.0)
    assert rsi([1.0, 2.0, 3.0, 4.0], period=2) == 100.0
    assert rsi([4.0, 3.0, 2.0, 1.0], period=2) == pytest.approx(0.0)
    assert rsi([1.0, 1.0, 1.0], period=2) == 50.0
    assert rsi([1.0, 2.0], period=2) is None


ROWS = [
    [0, 10.0, 11.0, 9.0, 10.0, 1.0],
    [1, 10.0, 12.0, 10.0, 11.0, 1.0],  # TR max(2, 2, 0) = 2
    [2, 11.0, 11.5, 8.0, 9.0, 1.0],  # TR max(3.5, .5, 3) = 3.5
    [3, 9.0, 10.0, 9.0, 9.5, 1.0],  # TR max(1, 1, 0) = 1
]


def test_true_range_and_atr_by_hand() -> None:
    assert true_ranges(ROWS) == [2.0, 3.5, 1.0]
    # seed (2 + 3.5) / 2 = 2.75; then (2.75 * 1 + 1) / 2 = 1.875
    assert atr(ROWS, period=2) == pytest.approx(1.875)
    assert atr(ROWS[:2], period=2) is None


def test_candle_state_from_a_window() -> None:
    rows = [[i, 100.0 + i, 101.0 + i, 99.0 + i, 100.5 + i, 5.0] for i in range(30)]
    state = candle_state("binance", "BTC/USDT", "1m", rows, 123, None)
    assert state.close == 129.5 and state.rows == 30 and state.observations == 1
    assert state.rsi == 100.0  # closes only rise
    assert state.ema_fast is not None and state.ema_slow is not None
    assert state.ema_fast > state.ema_slow  # a rising series: the fast average leads
    assert state.atr == pytest.approx(2.0)  # every TR is max(2, 1.5, .5)
    again = candle_state("binance", "BTC/USDT", "1m", rows, 124, state)
    assert again.observations == 2
    assert CandleState.from_dict(again.to_dict()) == again


def test_short_window_has_no_indicators() -> None:
    state = candle_state("okx", "ETH/USDT", "1m", [[0, 1.0, 1.0, 1.0, 1.0, 1.0]], 5, None)
    assert (state.rsi, state.ema_fast, state.ema_slow, state.atr) == (None, None, None, None)
