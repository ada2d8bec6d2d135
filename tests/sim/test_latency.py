"""The simulator's configurable response latency (`warmfleet sim --latency 50ms --jitter
10ms`): the origin's cost of a cache miss, which the A/B experiment (`warmfleet ab`) needs."""

from __future__ import annotations

import argparse
import time

import aiohttp
import pytest

from sim import Simulator, create_app, default_pairs, running_simulator
from sim._cli import configure, duration_s, run


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("50ms", 0.05), ("0.05s", 0.05), ("500us", 0.0005), ("50", 0.05), (" 10MS ", 0.01),
     ("0", 0.0)],
)  # fmt: skip
def test_durations_parse_with_units_and_bare_milliseconds(text: str, seconds: float) -> None:
    assert duration_s(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["-5ms", "fast", "nan", "inf", "60s", "5min", ""])
def test_bad_durations_are_refused_with_the_value_named(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="is not a duration"):
        duration_s(text)


def test_jitter_above_latency_is_refused() -> None:
    parser = argparse.ArgumentParser()
    configure(parser)
    assert run(parser.parse_args(["--latency", "5ms", "--jitter", "10ms"])) == 2
    with pytest.raises(ValueError, match="jitter in"):
        Simulator(7, default_pairs(3), latency_s=0.005, jitter_s=0.01)
    with pytest.raises(ValueError, match="latency must be"):
        create_app(latency_s=-1.0)


def test_jittered_delays_stay_in_range_and_follow_the_seed() -> None:
    a = Simulator(7, default_pairs(3), latency_s=0.05, jitter_s=0.01)
    b = Simulator(7, default_pairs(3), latency_s=0.05, jitter_s=0.01)
    draws = [a.response_delay() for _ in range(2000)]
    assert draws == [b.response_delay() for _ in range(2000)]
    assert all(0.04 <= d <= 0.06 for d in draws)
    assert min(draws) < 0.042 and max(draws) > 0.058  # really spread, not constant
    assert Simulator(7, default_pairs(3), latency_s=0.05).response_delay() == 0.05


async def test_every_venue_request_is_held_for_the_latency_but_admin_is_not() -> None:
    async with (
        running_simulator(seed=7, symbols=4, latency_s=0.05) as sim,
        aiohttp.ClientSession() as http,
    ):
        for path in ("/api/v3/ticker/24hr?symbol=BTCUSDT", "/api/v5/market/tickers?instType=SPOT"):
            started = time.perf_counter()
            async with http.get(sim.url + path) as response:
                assert response.status == 200
                await response.read()
            # a lower bound only: the sleep happened (a slow machine only adds to it)
            assert time.perf_counter() - started >= 0.05
        async with http.get(sim.url + "/admin/state") as response:
            state = await response.json()
        assert (state["latency_ms"], state["jitter_ms"]) == (50.0, 0.0)
        assert state["requests"] == 2  # admin and metrics are not venue requests
