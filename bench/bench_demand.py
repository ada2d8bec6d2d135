"""The demand path, measured against the origin in the same run (issue 15).

1. Cold-read latency: a reader's demand -> value for a cold key over HTTP (the reader
   asks, the poller fetches from the simulator through ccxt, the value is written and the
   bus wakes the reader), against a direct ccxt fetch of the same kind from the same
   simulator, interleaved read by read. p50 / p99 and their ratio.
2. Origin requests per 1,000 reads under Zipf(1.1) over 2,000 symbols' books (or tickers,
   ``--data-type``), reads started at fixed rates (open loop, so both arms see the same
   reads at the same moments; ``--rates``, default 300, 1,000 and 3,000 reads/s, a fleet of
   dashboards): the demand path (reader demand -> lease -> warm.jobs -> the real poller,
   ccxt against the simulator -> Kafka -> the writer standing in for the agents -> tiers ->
   bus, XFetch on hits) against a read-through cache without leases (each reader that
   misses fetches from the simulator with ccxt and writes the value back), same reads, same
   TTL policy, arms alternating per round. Origin requests are the simulator's own
   /metrics (its ``/depth`` or ``/ticker/24hr`` endpoint), for the whole run and for the
   steady state after the first ``--warmup-s`` (the cold start). Per arm also the most
   requests one key got within one fresh interval (the lease arm: miss-driven, and with
   XFetch's early refreshes), and for the read-through the requests that opened a key's
   fresh interval: the floor any one-request-per-key-per-interval scheme must still send.

    .venv/bin/python bench/bench_demand.py [--data-type books|tickers] [--rounds 3]
        [--cold 30] [--rates 300,1000,3000] [--seconds 60] [--warmup-s 15] [--fresh-s 15]
        [--latency-ms 50]

TTLs: the market-hours interval is 15 s for books and tickers (schedules/phases.toml), and
a book or ticker older than that is what a dashboard calls stale, so the fresh TTL is
``--fresh-s`` 15 s at the deepest tier (L1 a third, L2 two thirds of it) with the policy's
usual +-10 % jitter; 60 s per arm: a 15 s cold start, then three fresh intervals.

Uses the running local stack (``warmfleet stack up``; WARMFLEET_KAFKA_URL / _REDIS_URL /
_MEMCACHED_URL override), its own namespace and key prefix per arm.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import math
import os
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import ccxt.async_support as ccxt_async
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _demand_fleet import DECODERS, JITTER, KAFKA, MEMCACHED, REDIS, demand_fleet, policy_for

from demand import Ask, Demand, Outcome
from readers import create_app, running_reader
from tiers import MultiTierCache
from topics import DataType, Rejection, book_record, key_for, symbol_key, ticker_record
from topics.kafka import drop_namespace
from workers.logs import configure_logging
from workers.pollers import PollerConfig, client_options

S, SYMBOLS = 1.1, 2000
BOOK_DEPTH = PollerConfig().book_depth  # what `warmfleet poller` asks for
NAMESPACES: list[str] = []  # topics made by this run, deleted at the end


def new_namespace() -> str:
    NAMESPACES.append(f"bdemand{uuid.uuid4().hex[:8]}.")
    return NAMESPACES[-1]


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True)
class Kind:
    """What part 2 reads: a data type, its fresh TTL, its simulator endpoint."""

    data_type: DataType
    fresh_s: float
    warmup_s: float  # the cold start, counted apart: the steady state is what follows

    @property
    def window_s(self) -> float:
        """The shortest fresh TTL a copy can get (jitter below the base)."""
        return self.fresh_s * (1 - JITTER)

    @property
    def endpoint(self) -> str:
        """The path the simulator labels its requests with (ends with)."""
        return "/depth" if self.data_type == DataType.BOOKS else "/ticker/24hr"

    @property
    def route(self) -> str:
        return "books" if self.data_type == DataType.BOOKS else "tickers"


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
    options = client_options("binance", sim_url, PollerConfig(rate_limit_ms=1, timeout_ms=5_000))
    options["enableRateLimit"] = False  # the read-through arm has no budget at all
    return ccxt_async.binance(options)


# ---- 1. cold-read latency -------------------------------------------------------------


async def cold_latency(
    sim_url: str, symbols: list[str], n: int, round_no: int, kind: Kind
) -> tuple[list[float], list[float]]:
    namespace = new_namespace()
    demand_ms, direct_ms = [], []
    route = f"/v2/{kind.route}/binance/"
    async with demand_fleet(namespace, sim_url, rate=1000.0, data_type=kind.data_type) as fleet:
        app = create_app(fleet.cache, key_prefix=fleet.prefix, demand=fleet.demand)
        exchange = ccxt_client(sim_url)
        await exchange.load_markets()
        try:
            async with running_reader(app) as url, aiohttp.ClientSession() as http:
                picks = symbols[round_no * 2 * n : (round_no + 1) * 2 * n]
                for cold, direct in zip(picks[0::2], picks[1::2], strict=True):
                    started = time.perf_counter()
                    async with http.get(url + route + cold.replace("/", "-")) as r:
                        await r.read()
                        if r.status != 200:
                            print(f"  cold read {cold}: {r.status}", flush=True)
                            continue
                    demand_ms.append((time.perf_counter() - started) * 1000)
                    started = time.perf_counter()
                    if kind.data_type == DataType.BOOKS:
                        await exchange.fetch_order_book(direct, BOOK_DEPTH)
                    else:
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


def per_interval(times: dict[str, list[float]], window_s: float, since: float = -math.inf) -> int:
    """The most requests one key got within ``window_s`` (half-open) from ``since`` on: with
    ``window_s`` the shortest fresh TTL a copy can get, 1 is "at most one request per key per
    interval"."""
    most = 0
    for all_stamps in times.values():
        stamps = sorted(t for t in all_stamps if t >= since)
        first = 0
        for last, t in enumerate(stamps):
            while t - stamps[first] >= window_s:
                first += 1
            most = max(most, last - first + 1)
    return most


def intervals_started(
    times: dict[str, list[float]], window_s: float, since: float = -math.inf
) -> int:
    """Requests from ``since`` on that opened a new fresh interval of their key (one
    ``window_s`` after the previous such request): what any one-request-per-key-per-interval
    scheme must still send for the same misses, the floor the leases can reach."""
    opened = 0
    for stamps in times.values():
        last = -math.inf
        for t in sorted(stamps):
            if t - last >= window_s:
                opened, last = opened + (t >= since), t
    return opened


def _kind(answer: Any) -> str:
    try:
        return str(orjson.loads(answer.body)["error"])
    except (ValueError, KeyError, AttributeError, TypeError):
        return "?"


async def sim_requests(sim_url: str, endpoint: str) -> float:
    """Requests the simulator answered on ``endpoint`` (its own /metrics)."""
    async with aiohttp.ClientSession() as http, http.get(sim_url + "/metrics") as resp:
        text = await resp.text()
    return sum(
        float(line.rpartition(" ")[2])
        for line in text.splitlines()
        if line.startswith("warmfleet_sim_requests_total{") and f'{endpoint}",' in line
    )


async def requests_after(sim_url: str, kind: Kind, seconds: float) -> float:
    await asyncio.sleep(seconds)
    return await sim_requests(sim_url, kind.endpoint)


class RecordingDemand(Demand):
    """The real ``Demand``; it notes when each ask it published a job for was made (the
    jobs on warm.jobs do not say whether a miss or XFetch asked)."""

    asked: list[tuple[str, bool, float]]

    async def ask(self, exchange: str, data_type: str, symbol: str, *, early: bool = False) -> Ask:
        ask = await super().ask(exchange, data_type, symbol, early=early)
        if ask.outcome is Outcome.ASKED:
            self.__dict__.setdefault("asked", []).append((symbol, early, time.monotonic()))
        return ask


async def with_leases(sim_url: str, reads: list[str], rate: float, kind: Kind) -> dict[str, Any]:
    namespace = new_namespace()
    outcomes: Counter[str] = Counter()
    steady_errors: Counter[str] = Counter()  # answers other than a value, after the warm-up
    fleet = demand_fleet(namespace, sim_url, rate=5000.0, fresh_s=kind.fresh_s,
                         data_type=kind.data_type, demand_type=RecordingDemand)  # fmt: skip
    async with fleet as f:
        cache, rd, prefix = f.cache, f.demand, f.prefix

        async def read(symbol: str) -> None:
            key = key_for(kind.data_type, "binance", symbol, prefix=prefix)
            hit = await cache.get(key)
            if hit is not None:
                rd.seen(key, hit)  # XFetch, as the reader does on every hit
                outcomes["hit"] += 1
                return
            found = await rd.miss(key)
            status = getattr(found, "status", 200)
            outcome = "value" if status == 200 else f"{status} {_kind(found)}"
            outcomes[outcome] += 1
            if status != 200 and time.monotonic() >= steady_from:
                steady_errors[outcome] += 1

        before = await sim_requests(sim_url, kind.endpoint)
        steady_from = time.monotonic() + kind.warmup_s
        mark = asyncio.create_task(requests_after(sim_url, kind, kind.warmup_s))
        elapsed = await open_loop(reads, rate, read)
        await asyncio.sleep(1.0)  # early refreshes still on their way
        after = await sim_requests(sim_url, kind.endpoint)
        asked = getattr(rd.demand, "asked", [])
        mid = await mark
    by_miss: dict[str, list[float]] = defaultdict(list)
    every: dict[str, list[float]] = defaultdict(list)
    for symbol, early, t in asked:
        every[symbol].append(t)
        if not early:
            by_miss[symbol].append(t)
    outcomes["jobs"] = len(asked)
    outcomes["early"] = sum(1 for _, early, _ in asked if early)
    outcomes["steady early"] = sum(1 for _, early, t in asked if early and t >= steady_from)
    return {"requests": int(after - before), "steady": int(after - mid), "elapsed": elapsed,
            "outcomes": dict(outcomes), "steady_errors": sum(steady_errors.values()),
            "per_interval": per_interval(by_miss, kind.window_s),
            "steady_per_interval": per_interval(by_miss, kind.window_s, steady_from),
            "per_interval_all": per_interval(every, kind.window_s, steady_from)}  # fmt: skip


async def read_through(sim_url: str, reads: list[str], rate: float, kind: Kind) -> dict[str, Any]:
    prefix = f"bdemandrt{uuid.uuid4().hex[:8]}"
    policy = policy_for(kind.data_type, kind.fresh_s)
    cache = MultiTierCache.from_urls(
        "memory://?max_entries=10000", MEMCACHED, REDIS, ttl_policy=policy,
        invalidation_channel=prefix + ":inv",
    )  # fmt: skip
    exchange = ccxt_client(sim_url)
    await exchange.load_markets()
    fetched: dict[str, list[float]] = defaultdict(list)
    errors: Counter[str] = Counter()
    decode = DECODERS[kind.data_type]

    async def read(symbol: str) -> None:
        key = key_for(kind.data_type, "binance", symbol, prefix=prefix)
        if await cache.get(key) is not None:
            return
        fetched[symbol].append(time.monotonic())
        try:  # what the poller does with the answer, then what the agents cache of it
            if kind.data_type == DataType.BOOKS:
                raw = await exchange.fetch_order_book(symbol, BOOK_DEPTH)
                record = book_record("binance", symbol, raw, BOOK_DEPTH, now_ms())
            else:
                raw = await exchange.fetch_ticker(symbol)
                record = ticker_record("binance", symbol, raw, now_ms())
        except ccxt_async.BaseError:
            errors["origin_error"] += 1
            return
        if isinstance(record, Rejection):
            errors[record.reason] += 1
            return
        document, as_of = decode(symbol_key("binance", symbol).encode(), record.dumps())
        await cache.set(key, document, data_type=kind.data_type, as_of=as_of)

    before = await sim_requests(sim_url, kind.endpoint)
    steady_from = time.monotonic() + kind.warmup_s
    mark = asyncio.create_task(requests_after(sim_url, kind, kind.warmup_s))
    try:
        elapsed = await open_loop(reads, rate, read)
    finally:
        await exchange.close()
        await cache.close()
    after, mid = await sim_requests(sim_url, kind.endpoint), await mark
    return {"requests": int(after - before), "steady": int(after - mid), "elapsed": elapsed,
            "outcomes": dict(errors),
            "steady_per_interval": per_interval(fetched, kind.window_s, steady_from),
            "floor": intervals_started(fetched, kind.window_s, steady_from)}  # fmt: skip


async def main(args: argparse.Namespace) -> None:
    configure_logging("WARNING")  # a debug line per demand job would tax the lease arm only
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
    kind = Kind(DataType(args.data_type), args.fresh_s, args.warmup_s)
    probe = ccxt_client(sim_url)
    symbols = sorted(s for s, m in (await probe.load_markets()).items() if m.get("active"))
    await probe.close()
    print(f"simulator: {len(symbols)} listed symbols, origin latency {args.latency_ms} ms; "
          f"{kind.data_type}, fresh TTL {kind.fresh_s:g} s (+-{JITTER:.0%}); "
          f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")  # fmt: skip
    if args.cold:
        cold_part(await cold_rounds(args, sim_url, symbols, kind), kind)
    for rate in args.rates:
        await zipf_part(args, sim_url, symbols, kind, rate)


async def cold_rounds(
    args: argparse.Namespace, sim_url: str, symbols: list[str], kind: Kind
) -> tuple[list[float], list[float]]:
    demand_ms: list[float] = []
    direct_ms: list[float] = []
    for r in range(args.rounds):
        d, x = await cold_latency(sim_url, symbols, args.cold, r, kind)
        demand_ms += d
        direct_ms += x
        print(f"round {r + 1}: cold demand p50 {statistics.median(d):.1f} ms, "
              f"direct ccxt p50 {statistics.median(x):.1f} ms", flush=True)  # fmt: skip
    return demand_ms, direct_ms


def cold_part(figures: tuple[list[float], list[float]], kind: Kind) -> None:
    demand_ms, direct_ms = figures
    call = "fetch_order_book" if kind.data_type == DataType.BOOKS else "fetch_ticker"
    print(f"\ncold {kind.route} read (demand -> value, HTTP), {len(demand_ms)} reads: "
          f"p50 {q(demand_ms, 0.5):.1f} ms  p99 {q(demand_ms, 0.99):.1f} ms")  # fmt: skip
    print(f"direct ccxt {call}, {len(direct_ms)} reads: "
          f"p50 {q(direct_ms, 0.5):.1f} ms  p99 {q(direct_ms, 0.99):.1f} ms")  # fmt: skip
    print(f"ratio demand/direct: p50 {q(demand_ms, 0.5) / q(direct_ms, 0.5):.2f}x, "
          f"p99 {q(demand_ms, 0.99) / q(direct_ms, 0.99):.2f}x\n")  # fmt: skip


async def zipf_part(
    args: argparse.Namespace, sim_url: str, symbols: list[str], kind: Kind, rate: float
) -> None:
    n = int(rate * args.seconds)
    steady_n = n - int(rate * kind.warmup_s)
    figures: dict[str, list[float]] = defaultdict(list)
    for r in range(args.rounds):
        reads = zipf(symbols[:SYMBOLS], n, seed=r)
        arms = [("leases", with_leases), ("read-through", read_through)]
        if r % 2:
            arms.reverse()
        results = {name: await arm(sim_url, reads, rate, kind) for name, arm in arms}
        lease, through = results["leases"], results["read-through"]
        for name, res in results.items():
            figures[f"{name} all"].append(1000 * res["requests"] / n)
            figures[f"{name} steady"].append(1000 * res["steady"] / steady_n)
        figures["ratio all"].append(through["requests"] / max(1, lease["requests"]))
        figures["ratio steady"].append(through["steady"] / max(1, lease["steady"]))
        figures["best steady"].append(through["steady"] / max(1, through["floor"]))
        load = " ".join(f"{x:.1f}" for x in os.getloadavg())
        print(
            f"{rate:g} reads/s, round {r + 1}: {n} reads ({steady_n} after the "
            f"{kind.warmup_s:g} s warm-up), {len(set(reads))} keys, load average {load}"
        )
        for name, res in results.items():
            print(f"  {name:12s} origin requests {res['requests']:6d} "
                  f"({figures[f'{name} all'][-1]:6.1f} per 1,000 reads); steady state "
                  f"{res['steady']:6d} ({figures[f'{name} steady'][-1]:6.1f} per 1,000); "
                  f"{res['elapsed']:.1f} s")  # fmt: skip
        print(
            f"  leases: most requests for one key in one fresh interval, steady state: "
            f"{lease['steady_per_interval']} by misses (whole run {lease['per_interval']}), "
            f"{lease['per_interval_all']} with early refreshes; answers other than a value "
            f"in the steady state: {lease['steady_errors']}; {lease['outcomes']}"
        )
        print(f"  read-through: most for one key in one fresh interval "
              f"{through['steady_per_interval']}; requests that opened a fresh interval "
              f"{through['floor']}; {through['outcomes']}")  # fmt: skip
        print(f"  read-through / leases: {figures['ratio all'][-1]:.2f}x whole run, "
              f"{figures['ratio steady'][-1]:.2f}x steady state; read-through / intervals "
              f"opened (the best any one request per key per interval can do): "
              f"{figures['best steady'][-1]:.2f}x", flush=True)  # fmt: skip

    def med(name: str) -> str:
        values = figures[name]
        return f"{statistics.median(values):.2f} ({' / '.join(f'{v:.2f}' for v in values)})"

    print(f"\n{rate:g} reads/s, medians of {args.rounds} rounds (rounds in brackets):\n"
          f"  per 1,000 reads, whole run: leases {med('leases all')}, read-through "
          f"{med('read-through all')}; ratio {med('ratio all')}\n"
          f"  per 1,000 reads, steady state: leases {med('leases steady')}, read-through "
          f"{med('read-through steady')}; ratio {med('ratio steady')}; best possible "
          f"{med('best steady')}\n", flush=True)  # fmt: skip


def rates(text: str) -> list[float]:
    found = [float(part) for part in text.split(",") if part.strip()]
    if not found or not all(x > 0 and math.isfinite(x) for x in found):
        raise argparse.ArgumentTypeError(f"rates must be positive numbers: {text!r}")
    return found


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-type", choices=("books", "tickers"), default="books")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cold", type=int, default=30, help="cold reads per round (0: skip)")
    parser.add_argument("--rates", type=rates, default=[300.0, 1000.0, 3000.0],
                        help="Zipf reads started per s, comma-separated")  # fmt: skip
    parser.add_argument("--seconds", type=float, default=60.0, help="Zipf reads per arm, in s")
    parser.add_argument("--fresh-s", type=float, default=15.0, help="fresh TTL, deepest tier")
    parser.add_argument("--warmup-s", type=float, default=15.0,
                        help="the cold start, reported apart from the steady state")  # fmt: skip
    parser.add_argument("--latency-ms", type=float, default=50.0, help="the origin's latency")
    asyncio.run(main(parser.parse_args()))
