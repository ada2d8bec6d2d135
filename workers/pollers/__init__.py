"""The poller service (the design's second box): warm jobs in from Kafka, ccxt requests out,
validated market records published back to Kafka.

``PollerService`` is the Kafka shell, ``ExchangePoller`` polls one exchange through ccxt;
what differs between venues lives in one module per venue (``_binance``, ``_okx``)."""

from __future__ import annotations

from workers.pollers._exchange import (
    DeadlineExceeded,
    ExchangePoller,
    ExchangeUnavailable,
    MalformedResponse,
    PollerConfig,
    PollerError,
    PollResult,
    RequestFailed,
)
from workers.pollers._service import GROUP, MalformedJob, PollerService, parse_job
from workers.pollers._venues import SIMULATED, client_options

__all__ = [
    "GROUP",
    "SIMULATED",
    "DeadlineExceeded",
    "ExchangePoller",
    "ExchangeUnavailable",
    "MalformedJob",
    "MalformedResponse",
    "PollResult",
    "PollerConfig",
    "PollerError",
    "PollerService",
    "RequestFailed",
    "client_options",
    "parse_job",
]
