"""The demand path: a read the fleet did not foresee becomes one demand warm job, fleet-wide.

Leases (one job per key per lease), the exchanges' budgets (a token bucket in Redis that
the pollers take for every origin request, an admission check for readers), the listed
markets the pollers share, demand ``WarmJob`` s on ``warm.jobs`` and XFetch early refresh.
Readers (``readers._demand``) and pollers (``workers.pollers``) use it; it imports only
``topics`` and ``tiers``. How it works: docs/demand.md.
"""

from __future__ import annotations

from demand._config import DemandConfig, DemandError, DemandUnavailable, enabled
from demand._demand import Ask, Demand, Outcome
from demand._fleet import FleetState, Grant, connect
from demand._jobs import DEMAND, JobPublisher, demand_job
from demand._xfetch import Deltas, EarlyRefresh, xfetch_fires

__all__ = [
    "DEMAND",
    "Ask",
    "Deltas",
    "Demand",
    "DemandConfig",
    "DemandError",
    "DemandUnavailable",
    "EarlyRefresh",
    "FleetState",
    "Grant",
    "JobPublisher",
    "Outcome",
    "connect",
    "demand_job",
    "enabled",
    "xfetch_fires",
]
