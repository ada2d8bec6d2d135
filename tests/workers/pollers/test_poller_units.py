"""The poller shell's pure parts: warm-job parsing and the offset bookkeeping."""

from __future__ import annotations

import socket

import pytest
from aiokafka import TopicPartition

from tests.workers.pollers.conftest import make_job
from topics import BrokerUnavailable
from workers.pollers import MalformedJob, PollerService, parse_job
from workers.pollers._service import _Offsets
from workers.settings import Settings


def test_a_warm_job_round_trips() -> None:
    job = make_job("okx", "books", ["BTC/USDT"])
    parsed = parse_job(job.dumps())
    assert (parsed.exchange, parsed.data_type, parsed.symbols) == ("okx", "books", ["BTC/USDT"])
    assert parsed.deadline_ms == job.deadline_ms


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (None, "empty"),
        (b"\xff\x00", "not JSON"),
        (b"[1]", "not a JSON object"),
        (b'{"job_id": "x"}', "field 'exchange'"),
        (make_job("okx", "overview", []).dumps(), "not one a poller fetches"),
        (make_job("nope-exchange", "tickers", []).dumps(), "not a ccxt exchange id"),
        (make_job("okx", "tickers", [""]).dumps(), "non-empty strings"),
    ],
)
def test_malformed_jobs_are_refused_with_the_reason(raw: bytes | None, problem: str) -> None:
    with pytest.raises(MalformedJob, match=problem):
        parse_job(raw)


def test_commits_advance_to_the_lowest_offset_still_in_flight() -> None:
    tp = TopicPartition("warm.jobs", 0)
    offsets = _Offsets()
    for offset in (10, 11, 12):
        offsets.started(tp, offset)
    offsets.finished(tp, 11)
    offsets.finished(tp, 12)
    assert offsets.committable() == {tp: 10}  # 10 is still running: nothing past it
    offsets.finished(tp, 10)
    assert offsets.committable() == {tp: 13}
    offsets.committed[tp] = 13
    assert offsets.committable() == {}


async def test_a_poller_that_cannot_reach_kafka_says_the_broker_is_unavailable() -> None:
    # regression: the poller created its topics with the clock's helper and reported an
    # unreachable broker as a ClockError
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    service = PollerService(Settings(kafka_servers=(f"127.0.0.1:{port}",), namespace="t-nokafka."))
    with pytest.raises(BrokerUnavailable, match="cannot reach Kafka"):
        await service.start()
    await service.stop()
