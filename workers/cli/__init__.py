"""The `warmfleet` command. Each subcommand lives in its own module, imported only when used,
so `warmfleet stack status` does not pay for importing Faust."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys
from collections.abc import Sequence

from topics import ConfigError

__all__ = ["COMMANDS", "main"]

#: command -> (module with HELP, configure(parser) and run(args) -> int)
COMMANDS: dict[str, str] = {
    "stack": "stack._cli",
    "reader": "workers.cli._reader",
    "cache": "workers.cli._cache",
    "run": "workers.cli._run",
    "status": "workers.cli._status",
    "clock": "workers.cli._clock",
    "phase": "workers.cli._clock",
    "worker": "workers.cli._worker",
    "sim": "sim._cli",
    "poller": "workers.cli._poller",
    "ab": "ab._cli",
    "chaos": "chaos._cli",
}


def _parser(command: str | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="warmfleet",
        description="Streaming cache-warming worker fleet for crypto market data.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module_name in COMMANDS.items():
        if name == command:
            module = importlib.import_module(module_name)
            module.configure(sub.add_parser(name, help=module.HELP, description=module.HELP))
        else:
            sub.add_parser(name, help=_help_of(module_name), add_help=False)
    return parser


def _help_of(module_name: str) -> str:
    # read the HELP constant without importing heavy dependencies: it is the module's first
    # top-level HELP = "..." line
    spec = importlib.util.find_spec(module_name)
    if spec is None or spec.origin is None:
        return ""
    with open(spec.origin, encoding="utf-8") as src:
        for line in src:
            if line.startswith("HELP = "):
                return line.split("=", 1)[1].strip().strip("\"'")
    return ""


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = _parser(command if command in COMMANDS else None)
    args = parser.parse_args(argv)
    module = importlib.import_module(COMMANDS[args.command])
    try:
        return int(module.run(args))
    except ConfigError as exc:
        # a bad setting is one line naming the variable, never a traceback
        print(f"warmfleet {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # the reader of our output went away (`warmfleet cache get KEY | head`): not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
