"""The docs that list what the code has stay true: every metric any process registers is in
docs/metrics.md, and every relative link in README.md and docs/ points at a file that exists."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest
from prometheus_client.metrics import MetricWrapperBase

from sim import Simulator, default_pairs

ROOT = Path(__file__).resolve().parents[1]
METRIC_MODULES = (
    "workers.pollers._metrics",
    "workers.agents._metrics",
    "workers.agents._deadletter",
    "schedules._metrics",
    "readers._app",
    "tiers._hotset",
    "demand._metrics",
)


def _registered() -> set[str]:
    names = set()
    for module_name in METRIC_MODULES:
        for value in vars(importlib.import_module(module_name)).values():
            if isinstance(value, MetricWrapperBase):
                names.add(value._name)
    from tiers._metrics import COLLECTOR  # the cache's families exist even with no cache

    names.update(m.name for m in COLLECTOR.collect())
    from readers._metrics import STATS  # the reader's families, counted outside the client

    names.update(m.name for m in STATS.collect())
    names.update(m.name for m in Simulator(1, default_pairs(3)).registry.collect())
    return names


def test_every_registered_metric_is_in_the_catalogue() -> None:
    catalogue = (ROOT / "docs" / "metrics.md").read_text()
    missing = sorted(n for n in _registered() if f"`{n}" not in catalogue)
    assert missing == []


@pytest.mark.parametrize(
    "doc", ["README.md", *sorted(p.name for p in (ROOT / "docs").glob("*.md"))]
)
def test_relative_links_point_at_files_that_exist(doc: str) -> None:
    path = ROOT / doc if doc == "README.md" else ROOT / "docs" / doc
    targets = re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", path.read_text())
    broken = [t for t in targets if not (path.parent / t).exists()]
    assert broken == []
