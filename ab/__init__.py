"""The report's A/B experiment: the old ``DirectCacheAdapter`` against the fleet's
``MultiTierCache``, on the real tiers and a real origin (ccxt against the simulator), with
statistics (scipy.stats, statsmodels) and a report. The command: ``warmfleet ab``."""

from __future__ import annotations

from ab._experiment import Config, run
from ab._runner import Load, Reads, Runner
from ab._stats import cohen_d, compare, power_analysis, summarise_arm
from ab._workload import Assignment, Item, Zipf, freshness_s, universe

__all__ = [
    "Assignment",
    "Config",
    "Item",
    "Load",
    "Reads",
    "Runner",
    "Zipf",
    "cohen_d",
    "compare",
    "freshness_s",
    "power_analysis",
    "run",
    "summarise_arm",
    "universe",
]
