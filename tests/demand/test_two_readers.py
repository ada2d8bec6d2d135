"""50 concurrent readers across TWO reader processes (`warmfleet reader`) on one cold key:
exactly one request reaches the exchange (the simulator's own /metrics count it)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests._procs import stop_process, wait_http_ok
from tests.demand.conftest import fleet, jobs_on, sim_requests
from tests.workers.agents.conftest import free_port

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def reader_processes(stack_urls: Any, namespace: str, tmp_path: Path) -> Iterator[list[str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WARMFLEET_")}
    env.update(
        WARMFLEET_NAMESPACE=namespace, WARMFLEET_KEY_PREFIX=namespace.rstrip("."),
        WARMFLEET_KAFKA_URL=stack_urls.kafka_url, WARMFLEET_REDIS_URL=stack_urls.redis_url,
        WARMFLEET_MEMCACHED_URL=stack_urls.memcached_url, WARMFLEET_LOG_FORMAT="json",
    )  # fmt: skip
    procs, urls = [], []
    for i in range(2):
        port = free_port()
        with (tmp_path / f"reader{i}.log").open("ab") as out:
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "workers.cli", "reader", "--port", str(port)],
                env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            ))  # fmt: skip
        urls.append(f"http://127.0.0.1:{port}")
    yield urls
    for proc in procs:
        stop_process(proc, 20, group=True)


async def test_fifty_readers_in_two_processes_make_one_origin_request(
    stack_urls: Any, namespace: str, reader_processes: list[str]
) -> None:
    async with (
        fleet(stack_urls, namespace, reader_processes=True) as f,
        aiohttp.ClientSession() as http,
    ):
        for url in reader_processes:
            await wait_http_ok(http, url + "/healthz")
        before = await sim_requests(f.sim, "ticker")

        async def read(url: str) -> tuple[int, Any]:
            async with http.get(f"{url}/v2/tickers/binance/BTC-USDT") as resp:
                return resp.status, await resp.json()

        answers = await asyncio.gather(*(read(reader_processes[i % 2]) for i in range(50)))
        assert [status for status, _ in answers] == [200] * 50, answers[:3]
        assert {body["value"]["symbol"] for _, body in answers} == {"BTC/USDT"}
        assert await sim_requests(f.sim, "ticker") - before == 1
        jobs = await jobs_on(stack_urls.kafka_bootstrap, namespace, 1.0)
        assert [(j["priority"], j["symbols"]) for j in jobs] == [("demand", ["BTC/USDT"])]
        outcomes = [await _outcomes(http, url) for url in reader_processes]
        assert sum(o.get("asked", 0) for o in outcomes) == 1
        assert sum(o.get("deduplicated", 0) for o in outcomes) == 49
        assert all(o for o in outcomes), outcomes  # both processes took part


async def _outcomes(http: aiohttp.ClientSession, url: str) -> dict[str, float]:
    async with http.get(url + "/metrics") as resp:
        text = await resp.text()
    found: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("warmfleet_demand_jobs_total{"):
            outcome = line.split('outcome="', 1)[1].split('"', 1)[0]
            found[outcome] = found.get(outcome, 0) + float(line.rpartition(" ")[2])
    return found
