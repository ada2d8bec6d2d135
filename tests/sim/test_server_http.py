"""The simulator over HTTP: venue error shapes, admin endpoints, metrics, the fault CLI,
and determinism of two servers on the same seed and simulated clock."""

from __future__ import annotations

import argparse
import asyncio

import aiohttp

from sim import RunningSimulator, running_simulator
from sim._cli import configure, run
from tests.sim.conftest import SteppedClock


async def test_venue_errors_have_each_venues_shape(sim: RunningSimulator) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{sim.url}/api/v3/depth", params={"symbol": "NOPEUSDT"}) as r:
            assert r.status == 400
            assert await r.json() == {"code": -1121, "msg": "Invalid symbol."}
        async with http.get(f"{sim.url}/api/v3/klines?symbol=BTCUSDT&interval=7m") as r:
            assert (r.status, (await r.json())["code"]) == (400, -1120)
        async with http.get(f"{sim.url}/api/v5/market/candles?instId=NOPE-USDT") as r:
            assert (await r.json())["code"] == "51001"
        async with http.get(f"{sim.url}/api/v5/market/tickers") as r:
            assert (await r.json())["code"] == "50014"


async def test_admin_faults_add_list_clear_and_refuse_bad_specs(sim: RunningSimulator) -> None:
    base = f"{sim.url}/admin/faults"
    async with aiohttp.ClientSession() as http:
        async with http.post(base, json={"endpoint": "okx", "kind": "503", "count": 1}) as r:
            assert r.status == 201
            assert (await r.json())["endpoint"] == "/api/v5"
        async with http.get(base) as r:
            listed = await r.json()
            assert [f["kind"] for f in listed["faults"]] == ["503"]
            assert "truncated" in listed["kinds"]
        async with http.get(f"{sim.url}/api/v5/public/time") as r:
            assert r.status == 503
        async with http.get(f"{sim.url}/api/v5/public/time") as r:
            assert r.status == 200  # count 1: used up
        async with http.post(base, json={"endpoint": "okx", "kind": "nope"}) as r:
            assert r.status == 400 and "kind must be one of" in (await r.json())["error"]
        await http.post(base, json={"endpoint": "binance", "kind": "429"})
        async with http.delete(base) as r:
            assert (await r.json()) == {"removed": 1}
        async with http.get(f"{sim.url}/admin/state") as r:
            state = await r.json()
            assert state["faults"] == [] and "BTC/USDT" in state["symbols"]
            assert state["regime"] in ("calm", "volatile")
        async with http.get(f"{sim.url}/metrics") as r:
            text = await r.text()
            assert (
                'warmfleet_sim_requests_total{endpoint="/api/v5/public/time",status="503"' in text
            )
            assert 'warmfleet_sim_faults_fired_total{kind="503"} 1.0' in text


async def test_the_fault_command_drives_a_running_simulator(sim: RunningSimulator) -> None:
    parser = argparse.ArgumentParser()
    configure(parser)

    def cli(*argv: str) -> int:
        return run(parser.parse_args(["fault", *argv, "--url", sim.url]))

    code = await asyncio.to_thread(cli, "/api/v3/ticker/24hr", "429", "--count", "2")
    assert code == 0
    [fault] = sim.simulator.faults.list()
    assert (fault.endpoint, fault.kind, fault.count) == ("/api/v3/ticker/24hr", "429", 2)
    assert await asyncio.to_thread(cli, "nowhere", "500") == 2
    assert await asyncio.to_thread(cli, "--clear") == 0
    assert sim.simulator.faults.list() == []


async def test_two_simulators_same_seed_same_clock_serve_identical_prices() -> None:
    clock = SteppedClock()
    origin = 1_750_000_000_000
    async with (
        running_simulator(seed=11, symbols=8, origin_ms=origin, clock=clock) as a,
        running_simulator(seed=11, symbols=8, origin_ms=origin, clock=clock) as b,
        running_simulator(seed=12, symbols=8, origin_ms=origin, clock=clock) as c,
        aiohttp.ClientSession() as http,
    ):
        clock.advance(3600 * 5.5)

        async def body(base: str, path: str) -> bytes:
            async with http.get(base + path) as response:
                return await response.read()

        for path in (
            "/api/v3/ticker/24hr",
            "/api/v3/klines?symbol=ETHUSDT&interval=1m&limit=50",
            "/api/v3/depth?symbol=BTCUSDT&limit=20",
            "/api/v5/market/tickers?instType=SPOT",
        ):
            assert await body(a.url, path) == await body(b.url, path)
            assert await body(a.url, path) != await body(c.url, path)
