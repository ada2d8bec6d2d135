"""`warmfleet reader`: the HTTP reader API as a process."""

from __future__ import annotations

import argparse
import asyncio

import structlog

from topics import redact
from workers.logs import configure_logging
from workers.settings import Settings

HELP = "serve warm data over HTTP (/v2/tickers, /v2/overview, /v2/analysis, /metrics ...)"
log = structlog.get_logger(__name__)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="port (default 8080)")


async def _serve(settings: Settings, host: str, port: int) -> None:
    from aiohttp import web

    from readers import create_app
    from tiers import MultiTierCache

    cache = MultiTierCache.from_urls(
        settings.memory_url, settings.memcached_url, settings.redis_url
    )

    async def ready() -> bool:
        # ready while at least one shared tier (L2/L3) is not cut off by its breaker
        shared = [v for k, v in cache.stats().items() if k not in ("memory", "overall")]
        return not shared or any(v.get("breaker") != "open" for v in shared)

    app = create_app(cache, key_prefix=settings.key_prefix, ready=ready)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=1024)
    await site.start()
    log.info(
        "reader_started",
        host=host,
        port=port,
        redis=redact(settings.redis_url),
        memcached=settings.memcached_url,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    import signal

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        log.info("reader_stopping")
        await runner.cleanup()
        await cache.close()


def run(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    configure_logging(settings.log_level, settings.log_format)  # type: ignore[arg-type]
    import uvloop

    uvloop.run(_serve(settings, args.host, args.port))
    return 0
