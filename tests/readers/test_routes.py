from __future__ import annotations

import pytest

from readers import _routes as routes


@pytest.mark.parametrize("raw", ["BTC/USDT", "btc-usdt", "BTC_USDT", " BTC/usdt "])
def test_symbol_spellings_normalise(raw: str) -> None:
    assert routes.symbol(raw) == "BTC/USDT"


@pytest.mark.parametrize(
    "raw", ["BTCUSDT", "BTC/", "/USDT", "BTC/US DT", "BTC/USDT/X", "a" * 30 + "/B"]
)
def test_bad_symbols_are_bad_requests(raw: str) -> None:
    with pytest.raises(routes.BadRequest, match="BASE/QUOTE"):
        routes.symbol(raw)


@pytest.mark.parametrize("raw", ["", "Bin ance", "x", "-okx", "b" * 40])
def test_bad_exchange_ids(raw: str) -> None:
    with pytest.raises(routes.BadRequest, match="exchange"):
        routes.exchange_id(raw)


def test_keys_follow_the_contract() -> None:
    assert (
        routes.ticker_key("virt", "binance", "btc-usdt")
        == "virt:v2:market:ticker:15s:binance:BTC/USDT"
    )
    assert routes.overview_key("virt") == "virt:v2:market:overview:1m:all"
    assert routes.overview_key("virt", "OKX") == "virt:v2:market:overview:1m:okx"
    assert routes.analysis_keys("virt", "binance", "ETH/BTC") == (
        "virt:v2:analysis:volatility:1m:binance:ETH/BTC",
        "virt:v2:analysis:signals:5m:binance:ETH/BTC",
    )


@pytest.mark.parametrize(
    ("raw", "expected"), [(None, None), ("", None), ("2.5", 2.5), ("10", 10.0)]
)
def test_max_age(raw: str | None, expected: float | None) -> None:
    assert routes.max_age(raw) == expected


@pytest.mark.parametrize("raw", ["0", "-1", "nan", "inf", "soon"])
def test_bad_max_age(raw: str) -> None:
    with pytest.raises(routes.BadRequest, match="max_age"):
        routes.max_age(raw)


def test_freshness_from_ttl_hint() -> None:
    assert routes.freshness_s("virt:v2:market:ticker:15s:binance:BTC/USDT") == 15
    assert routes.freshness_s("virt:v2:analysis:signals:5m:binance:BTC/USDT") == 300
    assert routes.freshness_s("virt:v2:market:overview:1m:all") == 60


def test_raw_key_validation_is_a_bad_request() -> None:
    with pytest.raises(routes.BadRequest, match="whitespace"):
        routes.raw_key("virt:v2:has space")
