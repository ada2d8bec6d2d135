"""The analytics worker (a Faust app): per-symbol state from tickers and candles (the
symbol stream), the market overview, signals; every result written through L1/L2/L3 and
published to Kafka."""

from __future__ import annotations

import faust
import structlog

from workers.agents._decode import (
    CandlesView,
    InvalidEvent,
    decode_book,
    decode_candles,
    decode_ticker,
)
from workers.agents._overview import OverviewAgents
from workers.agents._phase import PhaseFollower, config_intervals
from workers.agents._runtime import OVERVIEW_PARTS, Runtime
from workers.agents._store import CHANGELOGS, SymbolStore
from workers.agents._symbol_stream import SymbolStream
from workers.settings import Settings

__all__ = [
    "CHANGELOGS",
    "OVERVIEW_PARTS",
    "CandlesView",
    "InvalidEvent",
    "OverviewAgents",
    "PhaseFollower",
    "Runtime",
    "SymbolStore",
    "SymbolStream",
    "config_intervals",
    "decode_book",
    "decode_candles",
    "decode_ticker",
    "install",
]

log = structlog.get_logger(__name__)


def install(app: faust.App, settings: Settings) -> Runtime:
    """Declare every topic, table, agent and task of the analytics worker on ``app``."""
    rt = Runtime(app, settings)
    symbols = SymbolStream(rt)
    app.service(symbols)  # type: ignore[arg-type]  # an instance: started after the app
    OverviewAgents(app, rt, symbols)

    @app.task  # type: ignore[untyped-decorator]  # Faust's decorator is untyped
    async def follow_phase() -> None:
        await rt.phase.run()

    if settings.metrics_port:

        @app.task  # type: ignore[untyped-decorator]
        async def serve_metrics() -> None:
            from prometheus_client import start_http_server

            start_http_server(settings.metrics_port)
            log.info("metrics_serving", port=settings.metrics_port)

    return rt
