"""`warmfleet worker`: the analytics agents (the same as ``faust -A workers.agents.app worker``)."""

from __future__ import annotations

import argparse
import sys

HELP = "run the Faust analytics agents (volatility, signals, market overview)"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-l", "--loglevel", default="warn", choices=["crit", "error", "warn", "info", "debug"],
        help="Faust's own log level (warmfleet's follows WARMFLEET_LOG_LEVEL)",
    )  # fmt: skip
    parser.add_argument(
        "--loop", default="uvloop", choices=["uvloop", "aio"],
        help="event loop: uvloop (the default, faster: docs/benchmarks.md) or asyncio's own",
    )  # fmt: skip


def run(args: argparse.Namespace) -> int:
    from workers.logs import configure_logging
    from workers.settings import Settings

    settings = Settings.from_env()
    configure_logging(settings.log_level, settings.log_format)  # type: ignore[arg-type]
    import mode.loop

    # before anything creates the loop: Faust's worker makes it from this policy
    mode.loop.use(args.loop)
    from workers.agents.app import app

    # Faust's command line reads sys.argv:
    # `warmfleet worker` is `faust -A workers.agents.app worker`
    sys.argv = ["warmfleet worker", "worker", "-l", args.loglevel, "--without-web"]
    app.main()
