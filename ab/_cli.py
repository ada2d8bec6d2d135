"""`warmfleet ab`: the report's A/B experiment, the old DirectCacheAdapter (`direct`)
against the fleet's MultiTierCache (`multitier`), with statistics and a report."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ab._experiment import Config
    from ab._live import Progress
    from ab._runner import Reads

HELP = "A/B experiment: the old DirectCacheAdapter against the fleet, with statistics and a report"


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a share strictly between 0 and 1")
    return value


def _positive(kind: type[float] | type[int], allow_zero: bool = False) -> Callable[[str], Any]:
    def parse(text: str) -> float | int:
        try:
            value = kind(text)
        except ValueError:
            value = -1
        if value < 0 or (value == 0 and not allow_zero) or value != value:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not a {'non-negative' if allow_zero else 'positive'} number"
            )
        return value

    return parse


def configure(parser: argparse.ArgumentParser) -> None:
    from sim._cli import duration_s

    # fmt: off  (one option a line or two: a table to read, not a tower of brackets)
    pos_f, pos_i, any_f = _positive(float), _positive(int), _positive(float, True)
    load = parser.add_argument_group("workload (defaults: the report's values)")
    for flag, kind, default, metavar, text in (
        ("--duration", pos_f, 60.0, "S", "seconds of load (default 60)"),
        (
            "--rate",
            any_f,
            633.0,
            "N",
            "reads per second, both arms together; 0 = as fast as "
            "the readers go (default 633, the report's measured throughput)",
        ),
        ("--concurrency", pos_i, 32, "N", "concurrent readers (default 32)"),
        ("--zipf", any_f, 1.1, "S", "Zipf exponent over symbols x data types (default 1.1)"),
        (
            "--warmup",
            any_f,
            0.0,
            "S",
            "run the same load S seconds before measuring, "
            "unrecorded, so direct's caches reach a steady state (default 0: the fleet warm, "
            "direct starting cold)",
        ),
        ("--seed", int, 7, None, "seed of the workload, the split and the simulator (default 7)"),
    ):
        load.add_argument(flag, type=kind, default=default, metavar=metavar, help=text)
    how = load.add_mutually_exclusive_group()
    how.add_argument(
        "--split",
        type=_fraction,
        default=0.5,
        metavar="P",
        help="each read goes to multitier with probability P, else to direct "
        "(default 0.5; the report's rollout: 0.25 then 0.5)",
    )
    how.add_argument(
        "--shadow",
        action="store_true",
        help="every read is served by direct; the same read runs on multitier "
        "in the shadow and is only recorded",
    )
    old = parser.add_argument_group("the old design (direct) and the origin")
    for flag, kind, default, metavar, text in (
        (
            "--latency",
            duration_s,
            0.050,
            "DURATION",
            "origin (simulator) response latency, "
            "the cost of a miss (default 50ms; self-contained runs only)",
        ),
        (
            "--jitter",
            duration_s,
            0.0,
            "DURATION",
            "± uniform jitter on the origin latency (default 0)",
        ),
        ("--ttl", pos_f, 300.0, "S", "direct's one TTL for every tier and data type (default 300)"),
        (
            "--direct-l1-entries",
            _positive(int, True),
            10_000,
            "N",
            "direct's in-process L1 size (default 10000; 0 = none)",
        ),
    ):
        old.add_argument(flag, type=kind, default=default, metavar=metavar, help=text)
    old.add_argument(
        "--strict-freshness",
        action="store_true",
        help="both arms refuse a copy older than its data type's freshness class "
        "(15 s tickers, 1 m analysis and overview) and read the origin instead "
        "(default: both serve what their caches hold, as the HTTP reader does "
        "without max_age)",
    )
    load.add_argument(
        "--same-process",
        action="store_true",
        help="run both arms in this process and event loop (default: one "
        "spawned process per arm, each with --concurrency readers, as two "
        "deployments would be)",
    )
    fleet = parser.add_argument_group("the fleet (multitier)")
    fleet.add_argument(
        "--symbols",
        type=pos_i,
        default=60,
        metavar="N",
        help="simulator pairs of a self-contained run (default 60)",
    )
    fleet.add_argument(
        "--attach",
        action="store_true",
        help="read from the fleet already running in this environment's "
        "namespace (WARMFLEET_NAMESPACE / WARMFLEET_KEY_PREFIX) instead of "
        "starting one",
    )
    fleet.add_argument(
        "--sim-url",
        default="http://127.0.0.1:8899",
        metavar="URL",
        help="with --attach: the simulator the fleet polls (the origin)",
    )
    fleet.add_argument(
        "--memory-url",
        default="memory://?max_entries=50000",
        metavar="URL",
        help="multitier's L1 (default memory://?max_entries=50000)",
    )
    fleet.add_argument(
        "--warm-timeout",
        type=pos_f,
        default=180.0,
        metavar="S",
        help="wait at most S seconds for the fleet to warm every key",
    )
    out = parser.add_argument_group("output")
    out.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="write report.md, report.html, results.json and PNG plots here",
    )
    out.add_argument("--json", action="store_true", help="print results.json to stdout")
    out.add_argument(
        "--bootstrap",
        type=pos_i,
        default=2000,
        metavar="N",
        help="bootstrap resamples per interval (default 2000)",
    )
    out.add_argument(
        "--no-live", action="store_true", help="no live progress line (a line every 5 s instead)"
    )
    # fmt: on


def run(args: argparse.Namespace) -> int:
    from ab._experiment import Config
    from ab._fleet import FleetError
    from ab._live import Progress
    from ab._origin import OriginError
    from ab._report import markdown, results_json, write
    from ab._runner import Load
    from ab._workload import Assignment
    from workers.logs import configure_logging

    # logs go to stderr: stdout carries the report (or results.json with --json)
    configure_logging(os.environ.get("WARMFLEET_LOG_LEVEL", "INFO"), "console")
    if args.jitter > args.latency:
        print("warmfleet ab: --jitter must not exceed --latency", file=sys.stderr)
        return 2
    cfg = Config(
        load=Load(args.duration, args.rate, args.concurrency, args.seed,
                  Assignment(args.split, args.shadow), args.warmup),
        zipf_s=args.zipf, symbols=args.symbols, latency_s=args.latency, jitter_s=args.jitter,
        direct_ttl_s=args.ttl, direct_l1_entries=args.direct_l1_entries,
        memory_url=args.memory_url, attach=args.attach, sim_url=args.sim_url,
        warm_timeout_s=args.warm_timeout, resamples=args.bootstrap,
        strict_freshness=args.strict_freshness, same_process=args.same_process,
    )  # fmt: skip
    progress = Progress(args.duration, live=not args.no_live)
    try:
        results, reads = asyncio.run(_run(cfg, progress))
    except (FleetError, OriginError, OSError) as exc:
        print(f"warmfleet ab: {exc}", file=sys.stderr)
        return 2
    if args.out is not None:
        from ab._plots import write_all

        args.out.mkdir(parents=True, exist_ok=True)
        write_all(reads, results["arms"], args.out)
        write(results, args.out)
        progress.say(f"report written to {args.out}/report.md, report.html, results.json")
    if args.json:
        print(results_json(results))
    elif args.out is None:
        print(markdown(results))
    if results["fleet_exited"]:
        progress.say(f"fleet processes exited during the run: {results['fleet_exited']}")
        return 1
    return 0


async def _run(cfg: Config, progress: Progress) -> tuple[dict[str, Any], Reads]:
    from ab import _experiment

    with progress:
        return await _experiment.run(cfg, progress.update, progress.say, progress.counts)
