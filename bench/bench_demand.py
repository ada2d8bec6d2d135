"""The demand path, measured against the origin in the same run (issue 15).

1. Cold-read latency: a reader's demand -> value for a cold ticker key over HTTP (the
   reader asks, the poller fetches from the simulator through ccxt, the value is written
   and the bus wakes the reader), against a direct ccxt ``fetch_ticker`` from the same
   simulator, interleaved read by read. p50 / p99 and their ratio.
2. Origin requests per 1,000 reads under Zipf(1.1) over 2,000 symbols' ticker keys, with
   reads started at a fixed ``--rate`` (open loop, so both arms see the same reads at the
   same moments): the demand path (leases, XFetch) against a read-through
   cache without leases (each reader that misses fetches from the origin and writes the
   value back), same reads, same TTLs (fresh 3 s, so the run spans several expiries), the
   arms alternating per round. Also the herd: requests for a key within 0.5 s of its
   previous one.

    .venv/bin/python bench/bench_demand.py [--rounds 3] [--cold 30] [--reads 20000]
        [--rate 400] [--latency-ms 50]

Uses the running local stack (``warmfleet stack up``; WARMFLEET_KAFKA_URL / _REDIS_URL /
_MEMCACHED_URL override), its own namespace and key prefix per round.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import random
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import ccxt.async_support as ccxt_async
import orjson
from aiokafka import AIOKafkaConsumer

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _demand_fleet import KAFKA, MEMCACHED, REDIS, demand_fleet

from readers import create_app, running_reader
from tiers import MultiTierCache, TierLevel, TTLPolicy
from topics import WARM_JOBS, DataType, key_for
from topics.kafka import drop_namespace
from workers.pollers import client_options

S, SYMBOLS = 1.1, 2000
NAMESPACES: list[str] = []  # topics made by this run, deleted at the end


def new_namespace() -> str:
    NAMESPACES.append(f"bdemand{uuid.uuid4().hex[:8]}.")
    return NAMESPACES[-1]


FRESH_S = 3.0
SHORT = TTLPolicy(
    base_s={DataType.TICKERS: (1.5, 2.0, FRESH_S)}, jitter=0.0, k=0.0, stale_s=30.0,
    clamp_s={level: (0.5, 3600.0) for level in TierLevel},
)  # fmt: skip


def q(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


def zipf(symbols: list[str], n: int, seed: int) -> list[str]:
    weights = list(itertools.accumulate(1.0 / r**S for r in range(1, len(symbols) + 1)))
    rng = random.Random(seed)
    order = symbols[:]
    rng.shuffle(order)
    return rng.choices(order, cum_weights=weights, k=n)


def ccxt_client(sim_url: str) -> Any:
    from workers.pollers import PollerConfig

    options = client_options("binance", sim_url, PollerConfig(rate_limit_ms=1, timeout_ms=5_000))
    options["enableRateLimit"] = False  # the read-through arm has no budget at all
    return ccxt_async.binance(options)


# ---- 1. cold-read latency -------------------------------------------------------------


async def cold_latency(
    sim_url: str, symbols: list[str], n: int, round_no: int
) -> tuple[list[float], list[float]]:
    namespace = new_namespace()
    demand_ms, direct_ms = [], []
    async with demand_fleet(namespace, sim_url, rate=1000.0) as fleet:
        app = create_app(fleet.cache, key_prefix=fleet.prefix, demand=fleet.demand)
        exchange = ccxt_client(sim_url)
        await exchange.load_markets()
        try:
            async with running_reader(app) as url, aiohttp.ClientSession() as http:
                picks = symbols[round_no * 2 * n : (round_no + 1) * 2 * n]
                for cold, direct in zip(picks[0::2], picks[1::2], strict=True):
                    started = time.perf_counter()
                    async with http.get(f"{url}/v2/tickers/binance/{cold.replace('/', '-')}") as r:
                        await r.read()
                        if r.status != 200:
                            print(f"  cold read {cold}: {r.status}", flush=True)
                            continue
                    demand_ms.append((time.perf_counter() - started) * 1000)
                    started = time.perf_counter()
                    await exchange.fetch_ticker(direct)
                    direct_ms.append((time.perf_counter() - started) * 1000)
        finally:
            await exchange.close()
    return demand_ms, direct_ms


# ---- 2. origin requests under Zipf -----------------------------------------------------


async def open_loop(reads: list[str], rate: float, read: Any) -> float:
    """Each read starts at its scheduled time (``rate`` reads/s), whatever the others wait
    for: the arms see the same reads at the same moments, so the same expiries."""
    tasks = []
    started = time.perf_counter()
    for i, symbol in enumerate(reads):
        due = started + i / rate
        if (wait := due - time.perf_counter()) > 0:
            await asyncio.sleep(wait)
        tasks.append(asyncio.create_task(read(symbol)))
    await asyncio.gather(*tasks)
    return time.perf_counter() - started


def herd(times: dict[str, list[float]], within_s: float = 0.5) -> int:
    """Origin requests for a key that came within ``within_s`` of its previous request (a
    thundering herd; 0 is "at most one request per key per interval")."""
    extra = 0
    for stamps in times.values():
        stamps.sort()
        extra += sum(1 for a, b in itertools.pairwise(stamps) if b - a < within_s)
    return extra


def _kind(answer: Any) -> str:
    try:
        return str(orjson.loads(answer.body)["error"])
    except (ValueError, KeyError, AttributeError, TypeError):
        return "?"


async def sim_ticker_requests(sim_url: str) -> float:
    """Ticker requests the simulator answered (its own /metrics)."""
    async with aiohttp.ClientSession() as http, http.get(sim_url + "/metrics") as resp:
        text = await resp.text()
    return sum(
        float(line.rpartition(" ")[2])
        for line in text.splitlines()
        if line.startswith("warmfleet_sim_requests_total{") and "ticker" in line
    )


async def demand_jobs(namespace: str) -> dict[str, list[float]]:
    """symbol -> issue times (s) of the demand jobs on the namespace's warm.jobs."""
    consumer = AIOKafkaConsumer(WARM_JOBS.named(namespace), bootstrap_servers=KAFKA,
                                group_id=None, auto_offset_reset="earliest")  # fmt: skip
    await consumer.start()
    found: dict[str, list[float]] = defaultdict(list)
    try:
        while batch := await consumer.getmany(timeout_ms=1000):
            for records in batch.values():
                for record in records:
                    job = orjson.loads(record.value or b"{}")
                    for symbol in job["symbols"]:
                        found[symbol].append(job["issued_ms"] / 1000)
    finally:
        await consumer.stop()
    return found


async def with_leases(sim_url: str, reads: list[str], rate: float) -> dict[str, Any]:
    namespace = new_namespace()
    outcomes: Counter[str] = Counter()
    async with demand_fleet(namespace, sim_url, rate=5000.0, policy=SHORT) as f:
        cache, rd, prefix = f.cache, f.demand, f.prefix

        async def read(symbol: str) -> None:
            key = key_for("tickers", "binance", symbol, prefix=prefix)
            hit = await cache.get(key)
            if hit is not None:
                rd.seen(key, hit)  # XFetch, as the reader does on every hit
                outcomes["hit"] += 1
                return
            found = await rd.miss(key)
            status = getattr(found, "status", 200)
            outcomes["value" if status == 200 else f"{status} {_kind(found)}"] += 1

        before = await sim_ticker_requests(sim_url)
        elapsed = await open_loop(reads, rate, read)
        await asyncio.sleep(1.0)  # early refreshes still on their way
        requests = await sim_ticker_requests(sim_url) - before
    jobs = await demand_jobs(namespace)
    keys_asked = sum(len(v) for v in jobs.values())  # demand jobs: one symbol each
    outcomes["demand jobs"] = keys_asked
    return {"requests": int(requests), "elapsed": elapsed, "herd": herd(jobs),
            "outcomes": dict(outcomes)}  # fmt: skip


async def read_through(sim_url: str, reads: list[str], rate: float) -> dict[str, Any]:
    prefix = f"bdemandrt{uuid.uuid4().hex[:8]}"
    cache = MultiTierCache.from_urls(
        "memory://?max_entries=10000", MEMCACHED, REDIS, ttl_policy=SHORT,
        invalidation_channel=f"{prefix}:inv",
    )  # fmt: skip
    exchange = ccxt_client(sim_url)
    await exchange.load_markets()
    fetched: dict[str, list[float]] = defaultdict(list)
    errors: Counter[str] = Counter()

    async def read(symbol: str) -> None:
        key = key_for("tickers", "binance", symbol, prefix=prefix)
        if await cache.get(key) is not None:
            return
        fetched[symbol].append(time.monotonic())
        try:
            ticker = await exchange.fetch_ticker(symbol)
        except ccxt_async.BaseError:
            errors["origin_error"] += 1
            return
        await cache.set(key, {"last": ticker["last"]}, data_type="tickers",
                        as_of=int(ticker["timestamp"] or time.time() * 1000))  # fmt: skip

    before = await sim_ticker_requests(sim_url)
    try:
        elapsed = await open_loop(reads, rate, read)
    finally:
        await exchange.close()
        await cache.close()
    requests = int(await sim_ticker_requests(sim_url) - before)
    return {"requests": requests, "elapsed": elapsed, "herd": herd(fetched),
            "outcomes": {"origin_errors": sum(errors.values())}}  # fmt: skip


async def main(args: argparse.Namespace) -> None:
    try:
        await run(args)
    finally:
        if NAMESPACES:
            await drop_namespace(KAFKA, NAMESPACES)


@contextlib.contextmanager
def simulator_process(symbols: int, latency_ms: float) -> Iterator[str]:
    """The simulator in a process of its own: on 2 cores it must not share the load
    generator's event loop."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "workers.cli", "sim", "--port", str(port), "--symbols",
         str(symbols), "--latency", f"{latency_ms}ms"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300  # 2,000 pairs' paths are generated at start
        while True:
            try:
                with urllib.request.urlopen(url + "/admin/state", timeout=5):
                    break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise SystemExit("the simulator did not start") from None
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


async def run(args: argparse.Namespace) -> None:
    with simulator_process(SYMBOLS, args.latency_ms) as sim_url:
        await measure(args, sim_url)


async def measure(args: argparse.Namespace, sim_url: str) -> None:
    probe = ccxt_client(sim_url)
    symbols = sorted(s for s, m in (await probe.load_markets()).items() if m.get("active"))
    await probe.close()
    print(f"simulator: {len(symbols)} listed symbols, origin latency {args.latency_ms} ms")
    demand_ms: list[float] = []
    direct_ms: list[float] = []
    for r in range(args.rounds):
        d, x = await cold_latency(sim_url, symbols, args.cold, r)
        demand_ms += d
        direct_ms += x
        print(f"round {r + 1}: cold demand p50 {statistics.median(d):.1f} ms, "
              f"direct ccxt p50 {statistics.median(x):.1f} ms", flush=True)  # fmt: skip
    print(
        f"\ncold read (demand -> value, HTTP), {len(demand_ms)} reads: "
        f"p50 {q(demand_ms, 0.5):.1f} ms  p99 {q(demand_ms, 0.99):.1f} ms"
    )
    print(
        f"direct ccxt fetch_ticker,          {len(direct_ms)} reads: "
        f"p50 {q(direct_ms, 0.5):.1f} ms  p99 {q(direct_ms, 0.99):.1f} ms"
    )
    print(f"ratio demand/direct: p50 {q(demand_ms, 0.5) / q(direct_ms, 0.5):.2f}x, "
          f"p99 {q(demand_ms, 0.99) / q(direct_ms, 0.99):.2f}x\n")  # fmt: skip
    ratios = []
    for r in range(args.rounds):
        reads = zipf(symbols[:SYMBOLS], args.reads, seed=r)
        arms = [("leases", with_leases), ("read-through", read_through)]
        if r % 2:
            arms.reverse()
        results = {name: await arm(sim_url, reads, args.rate) for name, arm in arms}
        lease, through = results["leases"], results["read-through"]
        per_k = {n: 1000 * v["requests"] / len(reads) for n, v in results.items()}
        ratio = through["requests"] / max(1, lease["requests"])
        ratios.append(ratio)
        print(f"round {r + 1}: {len(reads)} reads, {len(set(reads))} keys, "
              f"{args.rate:g} reads/s")  # fmt: skip
        for name, res in results.items():
            print(f"  {name:12s} origin requests {res['requests']:6d} "
                  f"({per_k[name]:6.1f} per 1,000 reads)  herd (a key again "
                  f"within 0.5 s): {res['herd']:5d}  {res['elapsed']:.1f} s "
                  f"{res.get('outcomes', '')}")  # fmt: skip
        print(f"  read-through / leases: {ratio:.1f}x", flush=True)
    print(
        f"\nread-through / leases, median of {len(ratios)} rounds: "
        f"{statistics.median(ratios):.1f}x (rounds: {', '.join(f'{x:.1f}' for x in ratios)})"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cold", type=int, default=30, help="cold reads per round")
    parser.add_argument("--reads", type=int, default=20_000, help="Zipf reads per arm and round")
    parser.add_argument("--rate", type=float, default=400.0, help="Zipf reads started per s")
    parser.add_argument("--latency-ms", type=float, default=50.0, help="the origin's latency")
    asyncio.run(main(parser.parse_args()))
