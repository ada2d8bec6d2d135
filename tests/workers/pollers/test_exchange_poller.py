"""ExchangePoller against the simulator through the real ccxt: jobs in, records out, and
the right behaviour for each failure."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import ccxt
import pytest

from sim import RunningSimulator, make_fault
from tests.workers.pollers.conftest import FAST, SYMBOLS, VENUES, SleepLog, make_job
from topics import Limits
from topics.records import BookTop, Candles, Ticker
from workers.pollers import ExchangePoller, RequestFailed

Factory = Callable[..., ExchangePoller]
TICKERS_PATH = {"binance": "/api/v3/ticker/24hr", "okx": "/api/v5/market/tickers"}


def inject(sim: RunningSimulator, endpoint: str, kind: str, **extra: object) -> None:
    fault = make_fault({"endpoint": endpoint, "kind": kind, **extra})
    sim.simulator.faults.add(fault, sim.simulator.now_ms())


def requests(sim: RunningSimulator) -> int:
    return sim.simulator.total_requests


@pytest.mark.parametrize("venue", VENUES)
async def test_tickers_job_for_all_markets_is_one_request_and_skips_halted(
    venue: str, sim: RunningSimulator, poller_for: Factory
) -> None:
    poller = poller_for(venue)
    await poller.poll(make_job(venue, "tickers", ["BTC/USDT"]))  # loads markets
    before = requests(sim)
    result = await poller.poll(make_job(venue, "tickers", []))
    assert requests(sim) == before + 1
    assert result.outcome == "complete"
    symbols = {r.symbol for r in result.records}
    assert len(symbols) == SYMBOLS and "FTT/USDT" not in symbols
    assert all(isinstance(r, Ticker) and r.exchange == venue for r in result.records)


@pytest.mark.parametrize("venue", VENUES)
async def test_listed_symbols_unknown_and_halted_ones_are_rejected(
    venue: str, sim: RunningSimulator, poller_for: Factory
) -> None:
    job = make_job(venue, "tickers", ["BTC/USDT", "ETH/BTC", "FTT/USDT", "NOPE/USDT"])
    result = await poller_for(venue).poll(job)
    assert sorted(r.symbol for r in result.records) == ["BTC/USDT", "ETH/BTC"]
    assert {(r.symbol, r.reason) for r in result.rejected} == {
        ("FTT/USDT", "inactive_market"),
        ("NOPE/USDT", "unknown_symbol"),
    }
    assert result.outcome == "partial"


@pytest.mark.parametrize("venue", VENUES)
async def test_candles_and_books_per_symbol(
    venue: str, sim: RunningSimulator, poller_for: Factory
) -> None:
    poller = poller_for(venue)
    candles = await poller.poll(make_job(venue, "candles", ["BTC/USDT", "ETH/USDT"]))
    assert candles.outcome == "complete"
    for record in candles.records:
        assert isinstance(record, Candles) and len(record.rows) == FAST.candles_limit
        assert record.as_of_ms == record.rows[-1][0]
    books = await poller.poll(make_job(venue, "books", ["BTC/USDT", "ETH/USDT", "ETH/BTC"]))
    assert books.outcome == "complete" and len(books.records) == 3
    for book in books.records:
        assert isinstance(book, BookTop)
        assert len(book.bids) == len(book.asks) == FAST.book_depth
        assert book.bids[0][0] < book.asks[0][0]


@pytest.mark.parametrize(("venue", "kind"), [("binance", "429"), ("binance", "418"),
                                             ("okx", "429"), ("okx", "418")])  # fmt: skip
async def test_rate_limit_pauses_for_retry_after_then_retries(
    venue: str, kind: str, sim: RunningSimulator, poller_for: Factory
) -> None:
    sleep = SleepLog()
    poller = poller_for(venue, sleep=sleep)
    await poller.poll(make_job(venue, "tickers", ["BTC/USDT"]))
    inject(sim, TICKERS_PATH[venue], kind, count=1, retry_after_s=7)
    result = await poller.poll(make_job(venue, "tickers", ["BTC/USDT"]))
    assert result.outcome == "complete"
    assert len(sleep.waits) == 1 and 6.0 < sleep.waits[0] <= 7.0  # Retry-After honoured
    assert poller.breaker.failures == 0  # rate limiting is not the exchange being down


@pytest.mark.parametrize("kind", ["500", "503", "timeout"])
async def test_transient_errors_are_retried_with_backoff(
    kind: str, sim: RunningSimulator, poller_for: Factory
) -> None:
    sleep = SleepLog()
    poller = poller_for("binance", sleep=sleep)
    await poller.poll(make_job("binance", "tickers", ["BTC/USDT"]))
    inject(sim, "binance", kind, count=2)
    result = await poller.poll(make_job("binance", "tickers", ["BTC/USDT"]))
    assert result.outcome == "complete"
    assert len(sleep.waits) == 2
    assert all(0 <= w <= FAST.backoff_cap_s for w in sleep.waits)


async def test_breaker_opens_on_one_exchange_and_leaves_the_other_alone(
    sim: RunningSimulator, poller_for: Factory
) -> None:
    binance, okx = poller_for("binance", sleep=SleepLog()), poller_for("okx", sleep=SleepLog())
    for poller in (binance, okx):
        await poller.poll(make_job(poller.exchange, "tickers", ["BTC/USDT"]))
    inject(sim, "binance", "503")
    failed = await binance.poll(make_job("binance", "tickers", ["BTC/USDT"]))
    assert failed.records == [] and binance.breaker.is_open
    before = requests(sim)
    dropped = await binance.poll(make_job("binance", "tickers", ["BTC/USDT"]))
    assert dropped.dropped == "breaker_open"
    assert requests(sim) == before  # an open breaker sends nothing
    assert (await okx.poll(make_job("okx", "tickers", ["BTC/USDT"]))).outcome == "complete"


@pytest.mark.parametrize("venue", VENUES)
@pytest.mark.parametrize("kind", ["truncated", "empty"])
async def test_garbage_payloads_are_rejected_not_returned(
    venue: str, kind: str, sim: RunningSimulator, poller_for: Factory
) -> None:
    poller = poller_for(venue)
    await poller.poll(make_job(venue, "tickers", ["BTC/USDT"]))
    inject(sim, venue, kind)
    for data_type in ("tickers", "candles", "books"):
        result = await poller.poll(make_job(venue, data_type, ["BTC/USDT", "ETH/USDT"]))
        assert result.records == [], (data_type, result)
        assert len(result.rejected) == 2
        assert result.outcome == "failed"


async def test_stale_prices_come_back_with_their_old_timestamp(
    sim: RunningSimulator, poller_for: Factory
) -> None:
    poller = poller_for("okx")
    inject(sim, "okx", "stale")
    first = await poller.poll(make_job("okx", "tickers", ["BTC/USDT"]))
    second = await poller.poll(make_job("okx", "tickers", ["BTC/USDT"]))
    [a], [b] = first.records, second.records
    assert isinstance(a, Ticker) and isinstance(b, Ticker)
    assert (a.last, a.as_of_ms) == (b.last, b.as_of_ms)
    assert b.received_ms >= b.as_of_ms  # downstream sees the age


async def test_a_job_past_its_deadline_is_dropped_without_a_request(
    sim: RunningSimulator, poller_for: Factory
) -> None:
    result = await poller_for("okx").poll(make_job("okx", "tickers", [], deadline_s=-1))
    assert result.dropped == "deadline"
    assert requests(sim) == 0


async def test_retries_stop_at_the_deadline(sim: RunningSimulator, poller_for: Factory) -> None:
    config = dataclasses.replace(FAST, timeout_ms=300, max_attempts=100, breaker_threshold=100)
    poller = poller_for("binance", config=config)
    await poller.poll(make_job("binance", "tickers", ["BTC/USDT"]))
    inject(sim, "binance", "timeout")
    result = await poller.poll(make_job("binance", "books", ["BTC/USDT"], deadline_s=1.5))
    assert result.records == [] and "deadline" in result.failed["BTC/USDT"]


async def test_non_retryable_errors_fail_at_once(
    sim: RunningSimulator, poller_for: Factory
) -> None:
    poller = poller_for("binance")
    calls = 0

    async def bad_symbol() -> None:
        nonlocal calls
        calls += 1
        await poller.client.publicGetTicker24hr({"symbol": "NOPEUSDT"})  # the sim says -1121

    with pytest.raises(RequestFailed) as caught:
        await poller._call(
            "ticker", make_job("binance", "tickers", []).deadline_ms / 1000, bad_symbol
        )
    assert caught.value.error == ccxt.BadSymbol.__name__ and calls == 1


@pytest.mark.parametrize("venue", VENUES)
async def test_the_poller_applies_the_configured_contract_limits(
    venue: str, poller_for: Factory
) -> None:
    # WARMFLEET_CONTRACT_* reach the poller too: a window no real ticker fits in refuses all
    tight = dataclasses.replace(FAST, limits=Limits(max_age_ms=1, max_ahead_ms=0))
    strict = await poller_for(venue, tight).poll(make_job(venue, "tickers", ["BTC/USDT"]))
    assert strict.records == []
    assert [r.symbol for r in strict.rejected] == ["BTC/USDT"]
    usual = await poller_for(venue).poll(make_job(venue, "tickers", ["BTC/USDT"]))
    assert [r.symbol for r in usual.records] == ["BTC/USDT"]
