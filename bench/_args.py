"""Command-line options of the benchmarks, declared once as keyword defaults (not a
benchmark itself)."""

from __future__ import annotations

import argparse


def options(doc: str | None, **defaults: int | float | str) -> argparse.Namespace:
    """Parse ``--name VALUE`` for each keyword (``per_second`` is ``--per-second``), typed
    as its default is; the description is the first line of the benchmark's docstring."""
    parser = argparse.ArgumentParser(description=(doc or "").splitlines()[0])
    for name, default in defaults.items():
        parser.add_argument("--" + name.replace("_", "-"), type=type(default), default=default)
    return parser.parse_args()
