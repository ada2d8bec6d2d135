"""A private faults stack for the chaos tests: toxiproxy in front of its own Kafka, Redis and
Memcached on ports of its own (never the shared stack: servers are killed and frozen here).

Tests marked ``chaos`` (the slow scenarios) run only when asked for with ``-m chaos``
(`make chaos`); `make test` skips them.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from chaos import faults_stack
from stack import StackConfig, down, status, up

#: its own block of ports, apart from `warmfleet chaos`'s default (28400)
TEST_BASE_PORT = int(os.environ.get("WARMFLEET_CHAOS_TEST_BASE_PORT", "28600"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if "chaos" in (config.getoption("markexpr") or ""):
        return
    skip = pytest.mark.skip(reason="slow chaos scenario: run with `make chaos` (-m chaos)")
    for item in items:
        if item.get_closest_marker("chaos") is not None:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def faults(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackConfig]:
    cfg = faults_stack(TEST_BASE_PORT, tmp_path_factory.mktemp("faults-stack"))
    was_running = status(cfg)["running"]
    up(cfg, lambda msg: print(msg, file=sys.stderr))
    try:
        yield cfg
    finally:
        if not was_running:
            down(cfg, lambda msg: None)


@pytest.fixture(scope="session")
def fleet_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fleet-logs")
