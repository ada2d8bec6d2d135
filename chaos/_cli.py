"""`warmfleet chaos [SCENARIO ...] [--json]`."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

from rich.console import Console

from chaos._report import as_json, print_table
from chaos._runner import Options, Result, run_scenario
from chaos._scenarios import FAST, SCENARIOS, SLOW
from chaos._stack import DEFAULT_BASE_PORT, chaos_stack, faults_stack
from stack import StackError

HELP = "inject faults (toxiproxy, kills, freezes) into the whole pipeline under load, measured"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "scenarios",
        nargs="*",
        metavar="SCENARIO",
        help=f"any of {', '.join(SCENARIOS)}; 'fast' or 'slow' for a group (default: all of them)",
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    parser.add_argument(
        "--save", type=Path, default=None, metavar="FILE", help="also write the JSON results here"
    )
    parser.add_argument(
        "--base-port",
        type=int,
        default=DEFAULT_BASE_PORT,
        metavar="PORT",
        help=f"the private faults stack's ports start here (default {DEFAULT_BASE_PORT})",
    )
    parser.add_argument(
        "--stack-dir",
        type=Path,
        default=None,
        help="state dir of the private stack (default ~/.cache/warmfleet/chaos-stack-PORT)",
    )
    parser.add_argument("--keep-stack", action="store_true", help="leave the faults stack up")
    parser.add_argument("--connections", type=int, default=16, help="reader load connections")
    parser.add_argument("--rate", type=float, default=200.0, help="reader load, requests/s")


def _names(wanted: list[str]) -> list[str]:
    if not wanted:
        return list(SCENARIOS)
    out: list[str] = []
    for name in wanted:
        group = {"fast": FAST, "slow": SLOW, "all": list(SCENARIOS)}.get(name)
        if group is not None:
            out += group
        elif name in SCENARIOS:
            out.append(name)
        else:
            raise SystemExit(
                f"warmfleet chaos: unknown scenario {name!r}; choose from "
                f"{', '.join(SCENARIOS)}, fast, slow"
            )
    return list(dict.fromkeys(out))


async def _main(args: argparse.Namespace, names: list[str]) -> list[Result]:
    console = Console(stderr=True)
    started = time.monotonic()

    def say(message: str) -> None:
        console.print(f"[dim]{time.monotonic() - started:6.1f}s[/] {message}", highlight=False)

    cfg = faults_stack(args.base_port, args.stack_dir)
    results: list[Result] = []
    async with chaos_stack(cfg, say, keep=args.keep_stack):
        opts = Options(stack=cfg, log_dir=cfg.stack_dir / "fleet-logs",
                       connections=args.connections, rate=args.rate)  # fmt: skip
        for i, name in enumerate(names, 1):
            say(f"[bold]scenario {i}/{len(names)}: {name}[/] -- {SCENARIOS[name].what}")
            result = await run_scenario(SCENARIOS[name], opts, say)
            verdict = "ok" if result.ok else "GOALS MISSED" if not result.error else "ERROR"
            say(f"[bold]{name}: {verdict}[/] in {result.took_s:.0f}s")
            results.append(result)
            if args.save is not None:  # after each scenario: a crash keeps what was measured
                args.save.write_text(json.dumps(as_json(results), indent=2, default=str) + "\n")
    return results


def run(args: argparse.Namespace) -> int:
    names = _names(args.scenarios)
    if args.list:
        for name, sc in SCENARIOS.items():
            print(f"{name:<20} {'slow' if sc.slow else 'fast'}  {sc.what}")
        return 0
    try:
        results = asyncio.run(_main(args, names))
    except (StackError, ValueError) as exc:
        print(f"warmfleet chaos: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(as_json(results), indent=2, default=str))
    else:
        print_table(results, Console(width=max(Console().width, 180)))
    return 0 if all(r.ok for r in results) else 1
