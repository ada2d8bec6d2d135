"""`warmfleet poller`: the poller service's command line (options, signals, metrics port)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal

import structlog
from aiokafka.errors import KafkaError

from topics import ConfigError, WarmfleetError
from workers.pollers import PollerConfig, PollerService
from workers.pollers._budgeted import OriginBudget
from workers.settings import Settings

HELP = "poll exchanges (ccxt) for warm jobs from Kafka and publish market events"
log = structlog.get_logger(__name__)


def configure(parser: argparse.ArgumentParser) -> None:
    defaults = PollerConfig()
    parser.add_argument(
        "--rate-limit-ms",
        type=float,
        default=None,
        help="ccxt rateLimit per weight unit (default: ccxt's, per exchange)",
    )
    parser.add_argument(
        "--timeout-ms", type=int, default=defaults.timeout_ms, help="per-request timeout"
    )
    parser.add_argument("--candles-timeframe", default=defaults.candles_timeframe)
    parser.add_argument("--candles-limit", type=int, default=defaults.candles_limit)
    parser.add_argument("--book-depth", type=int, default=defaults.book_depth)
    parser.add_argument(
        "--concurrency",
        type=int,
        default=defaults.concurrency,
        help="per-symbol requests in flight within one job",
    )
    parser.add_argument(
        "--jobs-per-exchange", type=int, default=4, help="warm jobs polled at once per exchange"
    )
    parser.add_argument(
        "--from-beginning",
        action="store_true",
        help="a new consumer group starts at the oldest job, not the newest",
    )


async def _main(args: argparse.Namespace) -> int:
    from workers.logs import configure_logging

    settings = Settings.from_env()
    configure_logging(settings.log_level, settings.log_format)  # type: ignore[arg-type]
    config = PollerConfig(
        rate_limit_ms=args.rate_limit_ms,
        timeout_ms=args.timeout_ms,
        candles_timeframe=args.candles_timeframe,
        candles_limit=args.candles_limit,
        book_depth=args.book_depth,
        concurrency=args.concurrency,
        limits=settings.contract_limits,
    )
    if settings.metrics_port:
        from prometheus_client import start_http_server

        start_http_server(settings.metrics_port)
        log.info("metrics_serving", port=settings.metrics_port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        budget = _budget(settings)
    except ConfigError as exc:  # a bad phases file: refused at start, naming the field
        log.error("poller_cannot_start", error=str(exc))
        return 2
    service = PollerService(
        settings,
        config=config,
        offset_reset="earliest" if args.from_beginning else "latest",
        jobs_per_exchange=args.jobs_per_exchange,
        budget=budget,  # docs/demand.md; WARMFLEET_DEMAND=off: ccxt's limiter only
    )
    try:
        await service.start()
    except (WarmfleetError, KafkaError) as exc:
        log.error("poller_cannot_start", error=str(exc))
        with contextlib.suppress(Exception):
            await service.stop()
        return 1
    try:
        await service.run(stop)
    finally:
        await service.stop()
    return 0


def _budget(settings: Settings) -> OriginBudget | None:
    """The fleet-wide origin budget per exchange, from phases.toml's ``requests_per_s``."""
    import demand
    from schedules import default_path, load_config

    if not demand.enabled():
        return None
    rates = {ex.name: ex.requests_per_s for ex in load_config(default_path()).exchanges}
    return OriginBudget(demand.FleetState.from_url(settings.redis_url, settings.key_prefix), rates)


def run(args: argparse.Namespace) -> int:
    return asyncio.run(_main(args))
