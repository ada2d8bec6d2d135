"""`warmfleet reader`: the HTTP reader API as a process (options: docs/reader.md)."""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING

import structlog

from topics import redact
from workers.logs import configure_logging
from workers.settings import Settings

if TYPE_CHECKING:
    from readers._demand import ReaderDemand
    from tiers import MultiTierCache

HELP = "serve warm data over HTTP (/v2/tickers, /v2/overview, /v2/analysis, /metrics ...)"
log = structlog.get_logger(__name__)


def configure(parser: argparse.ArgumentParser) -> None:
    from readers import add_server_arguments

    add_server_arguments(parser)


def worker_app() -> object:
    """One worker's app (called in each worker process, native or granian)."""
    from readers import OriginWatch, ServerOptions, create_app
    from tiers import HeatRecorder, MultiTierCache

    settings = Settings.from_env()
    configure_logging(settings.log_level, settings.log_format)  # type: ignore[arg-type]
    options = ServerOptions.from_env() or ServerOptions()
    cache = MultiTierCache.from_urls(
        settings.memory_url, settings.memcached_url, settings.redis_url
    )
    heat = HeatRecorder(settings.redis_url, prefix=settings.key_prefix)  # the hot set

    async def close() -> None:
        if demand is not None:
            await demand.close()
        await heat.close()
        await cache.close()

    async def ready() -> bool:
        # ready while at least one shared tier (L2/L3) is not cut off by its breaker
        shared = [v for k, v in cache.stats().items() if k not in ("memory", "overall")]
        return not shared or any(v.get("breaker") != "open" for v in shared)

    log.info(
        "reader_started",
        host=options.host,
        port=options.port,
        pid=os.getpid(),
        workers=options.workers,
        header_timeout_s=options.limits.header_timeout_s,
        max_connections=options.limits.max_connections,
        server=options.server,
        redis=redact(settings.redis_url),
        memcached=settings.memcached_url,
    )
    demand = _demand(cache, settings)  # docs/demand.md; WARMFLEET_DEMAND=off: plain 404s

    return create_app(
        cache,
        key_prefix=settings.key_prefix,
        ready=ready,
        limits=options.limits,
        watch_port=options.port,
        on_close=close,
        origins=OriginWatch(settings.redis_url, settings.key_prefix),  # for stale-if-error
        on_read=heat.touch,
        demand=demand,
    )


def _demand(cache: MultiTierCache, settings: Settings) -> ReaderDemand | None:
    import demand
    from readers._demand import ReaderDemand

    if not demand.enabled():
        return None
    link = demand.Demand.connect(
        redis_url=settings.redis_url, kafka_servers=settings.kafka_servers,
        namespace=settings.namespace, key_prefix=settings.key_prefix,
        kafka_options=settings.kafka_client_options(), config=demand.DemandConfig.from_env(),
    )  # fmt: skip
    return ReaderDemand(cache, link, key_prefix=settings.key_prefix)


def run(args: argparse.Namespace) -> int:
    from readers import serve, server_options
    from topics import ConfigError

    settings = Settings.from_env()
    configure_logging(settings.log_level, settings.log_format)  # type: ignore[arg-type]
    try:
        options = server_options(args)
    except ConfigError as exc:
        print(f"warmfleet reader: {exc}", file=sys.stderr)
        return 2
    return serve(options, f"{__name__}:worker_app")
