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


@pytest.mark.parametrize(("raw", "expected"), [(None, None), ("2.5", 2.5), ("10", 10.0)])
def test_max_age(raw: str | None, expected: float | None) -> None:
    assert routes.max_age(raw) == expected


@pytest.mark.parametrize("raw", ["", "0", "-1", "nan", "inf", "soon"])
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


@pytest.mark.parametrize(
    "raw", ["\u0131NJ-USDT", "BTC/USDT\u0131", "\uff22TC/USDT", "BTC/USD\u0422"]
)
def test_symbols_are_ascii_only(raw: str) -> None:
    # str.upper() folds the dotless i (U+0131) into I: it must not reach INJ/USDT
    with pytest.raises(routes.BadRequest, match="BASE/QUOTE"):
        routes.symbol(raw)


@pytest.mark.parametrize("raw", ["\u212araken", "bin\u0131nce"])
def test_exchanges_are_ascii_only(raw: str) -> None:
    with pytest.raises(routes.BadRequest, match="exchange"):
        routes.exchange_id(raw)


@pytest.mark.parametrize("raw", ["1e308", "31536001", "1e400", "-inf"])
def test_max_age_is_bounded(raw: str) -> None:
    with pytest.raises(routes.BadRequest, match="<= 31536000"):
        routes.max_age(raw)
    assert routes.max_age("31536000") == routes.MAX_AGE_LIMIT_S


@pytest.mark.parametrize("raw", ["a\x99b", "caf\u00e9", "x" * 251, "tab\there"])
def test_raw_keys_are_printable_ascii(raw: str) -> None:
    with pytest.raises(routes.BadRequest, match="printable ASCII"):
        routes.raw_key(raw)


def test_the_key_prefix_comes_from_topics() -> None:
    from pathlib import Path

    import readers
    from topics import KEY_PREFIX

    app = readers.create_app(object())  # type: ignore[arg-type]
    assert app.prefix == KEY_PREFIX
    sources = Path(readers.__file__).parent.glob("*.py")
    assert not [p.name for p in sources if '"virt' in p.read_text()]
