"""The KRaft cluster id ``warmfleet stack up`` formats Kafka's storage with never starts with
"-": ``kafka-storage format -t -…`` takes it for an option and fails ("expected one
argument") — one `stack up` in 64 did, seen as a failing test_stack_command on a clean clone."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator

import pytest

from stack import _services


def test_an_id_that_would_start_with_a_dash_is_drawn_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dash_first = uuid.UUID(bytes=b"\xf8" + bytes(15))  # base64 "-A…": the top 6 bits are 62
    assert base64.urlsafe_b64encode(dash_first.bytes).startswith(b"-")
    plain = uuid.UUID(bytes=bytes(range(16)))
    draws: Iterator[uuid.UUID] = iter([dash_first, dash_first, plain])
    monkeypatch.setattr(_services.uuid, "uuid4", lambda: next(draws))
    cluster_id = _services.new_cluster_id()
    assert cluster_id == base64.urlsafe_b64encode(plain.bytes).rstrip(b"=").decode()
    assert len(cluster_id) == 22  # Kafka's Uuid text form: 16 bytes, no padding


def test_ids_are_kafka_uuid_text() -> None:
    for _ in range(2000):
        cluster_id = _services.new_cluster_id()
        assert not cluster_id.startswith("-") and len(cluster_id) == 22
        assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16
