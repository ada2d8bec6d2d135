"""The analytics worker (``python -m workers.cli worker``) with the invalidation bus off —
the baseline that bench_agents_throughput.py's "bus on" figure is compared with in the same
run. The worker has no setting for it (its cache always announces on the default channel),
so this wrapper makes ``invalidation_channel=None`` the default of every cache it builds;
nothing else about the worker changes. A benchmark aid, never used by the fleet."""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tiers import MultiTierCache

_init = MultiTierCache.__init__


@functools.wraps(_init)
def _without_bus(self: MultiTierCache, *args: Any, **options: Any) -> None:
    options.setdefault("invalidation_channel", None)
    _init(self, *args, **options)


MultiTierCache.__init__ = _without_bus  # type: ignore[method-assign]

if __name__ == "__main__":
    from workers.cli import main

    sys.exit(main())
