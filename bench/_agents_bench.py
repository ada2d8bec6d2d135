"""Shared helpers of the agents benchmarks (not a benchmark itself)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import NamedTuple

import orjson
import psutil
from aiokafka import AIOKafkaProducer

from tests._procs import stop_process
from topics import MARKET_TICKERS, symbol_key
from topics.kafka import ensure_topics

ROOT = Path(__file__).resolve().parents[1]
BOOTSTRAP = os.environ.get("WARMFLEET_KAFKA_URL", "kafka://127.0.0.1:9092").split("://")[-1]
T0 = (int(time.time()) - 600) * 1000  # the contract refuses data a day old


def namespace() -> str:
    return f"b{uuid.uuid4().hex[:8]}."


def ticker(symbol: str, last: float, as_of_ms: int) -> bytes:
    return orjson.dumps({
        "exchange": "binance", "symbol": symbol, "last": last, "bid": last * 0.9999,
        "ask": last * 1.0001, "high": None, "low": None, "open": None, "base_volume": 10.0,
        "quote_volume": 10.0 * last, "change_pct": 1.0, "as_of_ms": as_of_ms,
        "received_ms": as_of_ms, "__faust": {"ns": "topics.records.Ticker"},
    })  # fmt: skip


async def producer() -> AIOKafkaProducer:
    prod = AIOKafkaProducer(
        bootstrap_servers=BOOTSTRAP, acks="all", linger_ms=5, max_batch_size=512 * 1024
    )
    await prod.start()
    return prod


async def preload(ns: str, events: int, symbols: int) -> None:
    """``events`` tickers round-robin over ``symbols`` symbols, as_of increasing."""
    await ensure_topics(BOOTSTRAP, ns)
    prod = await producer()
    topic = MARKET_TICKERS.named(ns)
    try:
        for i in range(events):
            symbol = f"S{i % symbols:04d}/USDT"
            price = 100.0 + (i * 7919 % 1000) / 100.0
            await prod.send(
                topic, ticker(symbol, price, T0 + i // symbols),
                key=symbol_key("binance", symbol).encode(),
            )  # fmt: skip
        await prod.flush()
    finally:
        await prod.stop()


def spawn(
    argv: list[str], ns: str, metrics_port: int, log: Path, tree: Path = ROOT
) -> subprocess.Popen[bytes]:
    """``argv`` run by ``tree``'s Python (this interpreter for this tree, else the
    checkout's own ``.venv``) in ``tree``, so another checkout runs its own code."""
    python = sys.executable if tree == ROOT else str(tree / ".venv" / "bin" / "python")
    env = {k: v for k, v in os.environ.items() if not k.startswith("WARMFLEET_")}
    env.update(
        WARMFLEET_NAMESPACE=ns, WARMFLEET_KEY_PREFIX=ns.rstrip("."),
        WARMFLEET_METRICS_PORT=str(metrics_port), WARMFLEET_LOG_FORMAT="json",
        WARMFLEET_LOG_LEVEL="WARNING", BENCH_NAMESPACE=ns,
    )  # fmt: skip
    with log.open("ab") as out:
        return subprocess.Popen(
            [python, *argv], env=env, cwd=tree, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip


def stop(proc: subprocess.Popen[bytes]) -> None:
    stop_process(proc, 30, group=True)  # the process group ``spawn`` started


def scrape(port: int) -> str:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
            return str(resp.read().decode())
    except OSError:
        return ""


def buckets(port: int, name: str) -> dict[float, float]:
    """A Prometheus histogram's cumulative bucket counts: upper bound (s) -> count."""
    out: dict[float, float] = {}
    for line in scrape(port).splitlines():
        if line.startswith(name + "_bucket{"):
            bound = line.split('le="', 1)[1].split('"', 1)[0]
            out[float(bound)] = float(line.rsplit(" ", 1)[1])
    return out


def quantile(before: dict[float, float], after: dict[float, float], q: float) -> float:
    """The q-quantile (s) of what was observed between two scrapes, interpolated linearly
    inside its bucket (as Prometheus' histogram_quantile does)."""
    bounds = sorted(after)
    counts = [after[b] - before.get(b, 0.0) for b in bounds]
    total = counts[-1]
    if total <= 0:
        raise ValueError("nothing observed")
    rank, lower, below = q * total, 0.0, 0.0
    for bound, cumulative in zip(bounds, counts, strict=True):
        if cumulative >= rank:
            if bound == float("inf"):
                return lower
            inside = cumulative - below
            return lower + (bound - lower) * ((rank - below) / inside if inside else 1.0)
        lower, below = bound, cumulative
    return lower


def counter(port: int, name: str) -> float:
    text = scrape(port)
    if not text:
        return 0.0
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name + "{") or line.startswith(name + " ")
    )


class Rate(NamedTuple):
    """Events/s of wall-clock time, and events per CPU-second of the worker's process."""

    wall: float
    per_cpu: float


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` (all its threads)."""
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


async def rate(
    port: int, first: str, done: str, expected: int, pid: int, timeout_s: float = 180.0
) -> Rate:
    """Events/s from the worker's first consumed event (counter ``first`` > 0) until
    ``expected`` events are fully handled (counter ``done``); and per CPU-second the worker
    (process ``pid``) spent in that time, which other processes on the machine sway less."""
    deadline = time.monotonic() + timeout_s
    started: float | None = None
    cpu = 0.0
    while time.monotonic() < deadline:
        now = time.monotonic()
        if started is None and counter(port, first) > 0:
            started, cpu = now, cpu_seconds(pid)
        if started is not None and counter(port, done) >= expected:
            spent = max(cpu_seconds(pid) - cpu, 1e-9)
            return Rate(expected / max(now - started, 1e-9), expected / spent)
        await asyncio.sleep(0.02)
    raise TimeoutError(f"{done} did not reach {expected} in {timeout_s} s")
