"""The Faust app of the analytics agents: ``faust -A workers.agents.app worker`` or
``warmfleet worker``. Broker, cache URLs and namespace come from ``Settings``."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import faust
import structlog
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

from topics import CATALOG
from topics.kafka import ensure_topics
from workers.agents import CHANGELOGS, OVERVIEW_PARTS, Runtime, install
from workers.settings import Settings

log = structlog.get_logger(__name__)


class _Producer(faust_aiokafka.Producer):
    def _settings_extra(self) -> Mapping[str, Any]:
        # DESIGN.md: producers are idempotent with acks=all. Faust only asks aiokafka for
        # idempotence inside transactions, so ask for it here.
        return {**super()._settings_extra(), "acks": "all", "enable_idempotence": True}


class _Consumer(faust_aiokafka.Consumer):
    async def perform_seek(self) -> None:
        # Faust calls this at the end of a rebalance's recovery, after resuming the stream
        # partitions while the flow is still active (it was resumed to read changelogs), and
        # then resumes flow control, which clears the agents' queues. Records fetched in
        # between were delivered (the fetch loop's read offset and the fetch position past
        # them) and then cleared: a worker taking over lost e.g. offsets 133..202 of each
        # partition. So stop the flow first; after the seek, everything not yet processed
        # is fetched again from the committed offsets.
        self.stop_flow()
        self.app.flow_control.suspend()
        self.app.flow_control.clear()
        await asyncio.sleep(0)  # let the fetch loop see the stopped flow before the seek
        await super().perform_seek()

    async def _commit(self, offsets: Mapping[TP, int]) -> bool:
        # never commit past what the agents processed (see workers/agents/_progress.py)
        runtime: Runtime | None = getattr(self.app, "runtime", None)
        if runtime is not None:
            offsets = runtime.progress.clamp(offsets, self.app.consumer_generation_id)
            if not offsets:
                return False
        return bool(await super()._commit(offsets))


class _Transport(faust_aiokafka.Transport):
    Consumer = _Consumer
    Producer = _Producer


def _drop_spinner_logging() -> None:
    """Faust's worker, at -l warn or above, adds a terminal-spinner handler and sets the root
    logger to DEBUG, so every debug call in aiokafka and Faust builds a LogRecord: about a
    sixth of the worker's CPU in a profile. Put the root level back to the real handlers'."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if type(handler).__name__ == "SpinnerHandler":
            root.removeHandler(handler)
    levels = [h.level for h in root.handlers if h.level]
    root.setLevel(min(levels) if levels else logging.WARNING)


class AgentsApp(faust.App):
    runtime: Runtime

    def _new_transport(self) -> Any:
        return _Transport(self.conf.broker_consumer, self)

    def _new_producer_transport(self) -> Any:
        return _Transport(self.conf.broker_producer, self)

    async def on_first_start(self) -> None:
        # before the consumer subscribes: a topic created after the subscription is ignored,
        # and one auto-created by the broker would have the wrong partition count
        await super().on_first_start()
        _drop_spinner_logging()
        settings = self.runtime.settings
        await ensure_topics(
            settings.kafka_servers,
            settings.namespace,
            (*CATALOG, OVERVIEW_PARTS, *CHANGELOGS),
            kafka_options=settings.kafka_client_options(),
        )

    async def on_shutdown(self) -> None:
        await super().on_shutdown()
        await self.runtime.close()


def _data_dir(app_id: str) -> Path:
    """Faust's data dir, outside the working tree (it defaults to the current directory)."""
    home = Path(os.environ.get("WARMFLEET_HOME", Path.home() / ".cache" / "warmfleet"))
    path = home / "agents" / app_id
    path.mkdir(parents=True, exist_ok=True)  # Faust creates only the last level
    return path


def _credentials(settings: Settings) -> faust.SASLCredentials | faust.SSLCredentials | None:
    options = settings.kafka_client_options()
    if "sasl_mechanism" in options:
        return faust.SASLCredentials(
            username=options["sasl_plain_username"],
            password=options["sasl_plain_password"],
            mechanism=options["sasl_mechanism"],
            ssl_context=options.get("ssl_context"),
        )
    if "ssl_context" in options:
        return faust.SSLCredentials(options["ssl_context"])
    return None


def create_app(settings: Settings) -> AgentsApp:
    app_id = f"{settings.namespace}warmfleet-agents"
    app = AgentsApp(
        app_id,
        broker=settings.kafka_url,
        broker_credentials=_credentials(settings),
        datadir=_data_dir(app_id),
        # no Faust table holds state: the symbol tables are the symbol stream's
        store="memory://",
        topic_replication_factor=1,
        topic_partitions=12,
        web_enabled=False,
        producer_acks=-1,
        producer_linger=0.002,
        producer_max_batch_size=512 * 1024,
        processing_guarantee="at_least_once",
        stream_wait_empty=True,
        broker_commit_interval=1.0,
        broker_session_timeout=10.0,  # a killed worker's partitions move within ~10 s
        table_standby_replicas=0,
        key_serializer="raw",
        value_serializer="raw",
    )
    app.runtime = install(app, settings)
    if os.environ.get("WARMFLEET_TABLE_STORE"):
        log.warning(
            "setting_ignored", variable="WARMFLEET_TABLE_STORE",
            detail="no longer used: the symbol tables live in memory and are rebuilt from "
            "their changelog topics",
        )  # fmt: skip
    return app


app = create_app(Settings.from_env())
