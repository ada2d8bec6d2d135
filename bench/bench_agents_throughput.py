"""Events/s one analytics worker sustains from market.tickers into all three tiers.

Each round preloads N tickers (round-robin over S symbols) into a fresh namespace, starts
one worker process (`python -m workers.cli worker`) and times it from its first consumed
event until all N are fully handled -- every tier written and the analysis and changelog
records acknowledged by Kafka (its own Prometheus counters). Baseline in the same run: a
Faust agent doing nothing with the events (bench/_bare_faust_app.py) -- the ceiling
Faust's per-message path sets on this machine. Median of the rounds. Beside events/s of
wall-clock time it gives events per CPU-second the worker's process spent in that time, the
figure other load on the shared machine sways less.

The worker's cache announces every write batch on the invalidation bus (issue 13). With
``--bus both`` (the default) each round runs the worker twice, bus on and bus off
(bench/_worker_without_bus.py), so the bus's cost is a same-run ratio; ``on`` or ``off``
runs one of them. Variants are interleaved round by round, so machine load hits all alike.

``--against DIR`` (repeatable) adds another checkout's worker (e.g. main, or the tree before
a change), run by that checkout's own ``.venv`` in that checkout, as one more variant of
each round (bus on and/or off as ``--bus`` says; bus off only where the checkout has
bench/_worker_without_bus.py), so "this tree / DIR" is a same-run ratio: of the medians,
and the median of the round-by-round ratios.

    .venv/bin/python bench/bench_agents_throughput.py [--events 200000] [--symbols 2000]
        [--rounds 3] [--bus both|on|off] [--against DIR ...]
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

from bench._agents_bench import BOOTSTRAP, ROOT, Rate, namespace, preload, rate, spawn, stop
from topics.kafka import drop_namespace


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


#: a variant: (argv, (first-event counter, fully-handled counter), checkout it runs in)
Variant = tuple[list[str], tuple[str, str], Path]
WORKER_METRICS = ("warmfleet_agent_events_total", "warmfleet_agent_events_processed_total")
BUS_ON = ["-m", "workers.cli", "worker"]
BUS_OFF = ["bench/_worker_without_bus.py", "worker"]


async def one(variant: Variant, events: int, symbols: int, logs: Path) -> Rate:
    argv, metrics, tree = variant
    ns = namespace()
    await preload(ns, events, symbols)
    port = free_port()
    proc = spawn(argv, ns, port, logs / f"{ns}log", tree)
    try:
        return await rate(port, *metrics, events, proc.pid)
    finally:
        stop(proc)
        await drop_namespace(BOOTSTRAP, [ns])


def variants(bus: str, trees: list[Path]) -> dict[str, Variant]:
    found: dict[str, Variant] = {
        "bare faust (baseline)": (["-m", "faust", "-A", "bench._bare_faust_app", "worker",
                                   "-l", "warn", "--without-web"],
                                  ("bench_bare_events_total", "bench_bare_events_total"), ROOT),
    }  # fmt: skip
    for tree in (ROOT, *trees):
        at = "" if tree == ROOT else f" @ {tree}"
        if bus in ("both", "on"):
            found[f"worker, bus on{at}"] = (BUS_ON, WORKER_METRICS, tree)
        if bus in ("both", "off"):
            if (tree / BUS_OFF[0]).is_file():
                found[f"worker, bus off{at}"] = (BUS_OFF, WORKER_METRICS, tree)
            else:
                print(f"{tree} has no {BUS_OFF[0]}: its worker runs with the bus on only")
    return found


def compare(results: dict[str, list[float]], trees: list[Path], unit: str) -> None:
    """This tree's worker / each other checkout's, of the medians and round by round."""
    for tree in trees:
        for bus in ("on", "off"):
            ours, theirs = (
                results.get(f"worker, bus {bus}"),
                results.get(f"worker, bus {bus} @ {tree}"),
            )
            if not ours or not theirs:
                continue
            per_round = [a / b for a, b in zip(ours, theirs, strict=True)]
            print(f"  this tree / {tree} (bus {bus}, {unit}) = "
                  f"{statistics.median(ours) / statistics.median(theirs):.2f} of the medians, "
                  f"round by round {[round(r, 2) for r in per_round]} "
                  f"(median {statistics.median(per_round):.2f})")  # fmt: skip


def summary(results: dict[str, list[float]], trees: list[Path], unit: str) -> None:
    print(f"{unit}:")
    for name, rates in results.items():
        print(f"  {name:24s} median {statistics.median(rates):8.0f}  "
              f"rounds {[round(r) for r in rates]}")  # fmt: skip
    medians = {name: statistics.median(rates) for name, rates in results.items()}
    base = medians.pop("bare faust (baseline)")
    for name, work in medians.items():
        print(f"  {name} / bare faust = {work / base:.2f}")
    if "worker, bus on" in medians and "worker, bus off" in medians:
        on, off = medians["worker, bus on"], medians["worker, bus off"]
        print(f"  bus on / bus off = {on / off:.2f}")
    compare(results, trees, unit)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--symbols", type=int, default=2_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--bus", choices=("both", "on", "off"), default="both",
                        help="the worker with the invalidation bus on, off, or both")  # fmt: skip
    parser.add_argument("--against", type=Path, action="append", default=[],
                        help="another checkout (run with its own .venv), repeatable")  # fmt: skip
    args = parser.parse_args()
    trees = [tree.resolve() for tree in args.against]
    logs = Path(tempfile.mkdtemp(prefix="bench-agents-"))
    runs = variants(args.bus, trees)
    wall: dict[str, list[float]] = {name: [] for name in runs}
    per_cpu: dict[str, list[float]] = {name: [] for name in runs}
    for r in range(args.rounds):
        for name, variant in runs.items():
            measured = await one(variant, args.events, args.symbols, logs)
            wall[name].append(measured.wall)
            per_cpu[name].append(measured.per_cpu)
        line = "  ".join(f"{name} {rates[-1]:,.0f}" for name, rates in wall.items())
        print(f"round {r + 1} (events/s): {line}", flush=True)
    print(f"{args.events} tickers over {args.symbols} symbols, {args.rounds} rounds, logs {logs}")
    summary(wall, trees, "events/s")
    summary(per_cpu, trees, "events per CPU-second of the worker")
    for name, rates in wall.items():
        if name != "bare faust (baseline)":
            work = statistics.median(rates)
            print(f"goal >= 60,000 events/s at {args.symbols} symbols ({name}): "
                  f"{'met' if work >= 60_000 else 'NOT met'}")  # fmt: skip


if __name__ == "__main__":
    asyncio.run(main())
