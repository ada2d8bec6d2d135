"""Fixtures for the deployment checks: the repository's root, and the helm binary that
`make deploy-check` (`helm/check.sh`) installs with `go install`."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "warmfleet"
KUBE_VERSION = "1.32.0"


def _helm_path() -> Path | None:
    if explicit := os.environ.get("WARMFLEET_HELM"):
        return Path(explicit)
    home = Path(os.environ.get("WARMFLEET_HOME", Path.home() / ".cache" / "warmfleet"))
    installed = home / "bin" / "helm"
    if installed.exists():
        return installed
    found = shutil.which("helm")
    return Path(found) if found else None


@pytest.fixture(scope="session")
def helm() -> Path:
    path = _helm_path()
    if path is None or not path.exists():
        reason = "no helm binary: run `make deploy-check` (it installs helm with go install)"
        if os.environ.get("CI"):
            pytest.fail(reason)  # CI must run the chart checks, never skip them
        pytest.skip(reason)
    return path


@pytest.fixture(scope="session")
def kubernetes_validate() -> Path:
    path = Path(
        os.environ.get("KUBERNETES_VALIDATE", ROOT / ".venv" / "bin" / "kubernetes-validate")
    )
    if not path.exists():
        found = shutil.which("kubernetes-validate")
        if found is None:
            pytest.fail("kubernetes-validate missing: pip install -e '.[dev]'")
        path = Path(found)
    return path
