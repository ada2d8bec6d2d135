"""Events/s one analytics worker sustains from market.tickers into all three tiers.

Each round preloads N tickers (round-robin over S symbols) into a fresh namespace, starts
one worker process (`python -m workers.cli worker`) and times it from its first consumed
event until all N are fully handled -- every tier written and the analysis and changelog
records acknowledged by Kafka (its own Prometheus counters). Baseline in the same run: a
Faust agent doing nothing with the events (bench/_bare_faust_app.py) -- the ceiling
Faust's per-message path sets on this machine. Median of the rounds.

The worker's cache announces every write batch on the invalidation bus (issue 13). With
``--bus both`` (the default) each round runs the worker twice, bus on and bus off
(bench/_worker_without_bus.py), so the bus's cost is a same-run ratio; ``on`` or ``off``
runs one of them. Variants are interleaved round by round, so machine load hits all alike.

    .venv/bin/python bench/bench_agents_throughput.py [--events 200000] [--symbols 2000]
        [--rounds 3] [--bus both|on|off]
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
    parser.add_argument("--bus", choices=("both", "on", "off"), default="both",
                        help="the worker with the invalidation bus on, off, or both")  # fmt: skip
    args = parser.parse_args()
    logs = Path(tempfile.mkdtemp(prefix="bench-agents-"))
    worker_metrics = ("warmfleet_agent_events_total", "warmfleet_agent_events_processed_total")
    variants = {
        "bare faust (baseline)": (["-m", "faust", "-A", "bench._bare_faust_app", "worker",
                                   "-l", "warn", "--without-web"],
                                  ("bench_bare_events_total", "bench_bare_events_total")),
    }  # fmt: skip
    if args.bus in ("both", "on"):
        variants["worker, bus on"] = (["-m", "workers.cli", "worker"], worker_metrics)
    if args.bus in ("both", "off"):
        variants["worker, bus off"] = (["bench/_worker_without_bus.py", "worker"], worker_metrics)
    results: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, (argv, metrics) in variants.items():
            results[name].append(await one(argv, metrics, args.events, args.symbols, logs))
    print(f"{args.events} tickers over {args.symbols} symbols, {args.rounds} rounds, logs {logs}")
    for name, rates in results.items():
        print(f"  {name:24s} median {statistics.median(rates):8.0f} events/s  "
              f"rounds {[round(r) for r in rates]}")  # fmt: skip
    medians = {name: statistics.median(rates) for name, rates in results.items()}
    base = medians.pop("bare faust (baseline)")
    for name, work in medians.items():
        print(f"  {name} / bare faust = {work / base:.2f}")
    if len(medians) == 2:
        on, off = medians["worker, bus on"], medians["worker, bus off"]
        print(f"  bus on / bus off = {on / off:.2f}")
    for name, work in medians.items():
        print(f"goal >= 60,000 events/s at {args.symbols} symbols ({name}): "
              f"{'met' if work >= 60_000 else 'NOT met'}")  # fmt: skip


if __name__ == "__main__":
    asyncio.run(main())
