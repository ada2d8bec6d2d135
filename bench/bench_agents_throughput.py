"""Events/s one analytics worker sustains from market.tickers into all three tiers.

Each round preloads N tickers (round-robin over S symbols) into a fresh namespace, starts
one worker process (`python -m workers.cli worker`) and times it from its first consumed
event until all N are fully handled -- every tier written and the analysis and changelog
records acknowledged by Kafka (its own Prometheus counters). Baseline in the same run: a
Faust agent doing nothing with the events (bench/_bare_faust_app.py) -- the ceiling
Faust's per-message path sets on this machine. Median of the rounds.

    .venv/bin/python bench/bench_agents_throughput.py [--events 200000] [--symbols 2000]
        [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._agents_bench import BOOTSTRAP, namespace, preload, rate, spawn, stop
from topics.kafka import drop_namespace


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def one(
    argv: list[str], metrics: tuple[str, str], events: int, symbols: int, logs: Path
) -> float:
    ns = namespace()
    await preload(ns, events, symbols)
    port = free_port()
    proc = spawn(argv, ns, port, logs / f"{ns}log")
    try:
        return await rate(port, *metrics, events)
    finally:
        stop(proc)
        await drop_namespace(BOOTSTRAP, [ns])


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--symbols", type=int, default=2_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    logs = Path(tempfile.mkdtemp(prefix="bench-agents-"))
    variants = {
        "bare faust (baseline)": (["-m", "faust", "-A", "bench._bare_faust_app", "worker",
                                   "-l", "warn", "--without-web"],
                                  ("bench_bare_events_total", "bench_bare_events_total")),
        "analytics worker": (["-m", "workers.cli", "worker"],
                             ("warmfleet_agent_events_total",
                              "warmfleet_agent_events_processed_total")),
    }  # fmt: skip
    results: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, (argv, metrics) in variants.items():
            results[name].append(await one(argv, metrics, args.events, args.symbols, logs))
    print(f"{args.events} tickers over {args.symbols} symbols, {args.rounds} rounds, logs {logs}")
    for name, rates in results.items():
        print(f"  {name:24s} median {statistics.median(rates):8.0f} events/s  "
              f"rounds {[round(r) for r in rates]}")  # fmt: skip
    base = statistics.median(results["bare faust (baseline)"])
    work = statistics.median(results["analytics worker"])
    print(f"  analytics / bare faust = {work / base:.2f}")


if __name__ == "__main__":
    asyncio.run(main())
