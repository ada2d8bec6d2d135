"""`warmfleet chaos`: faults injected into the whole pipeline under reader load, measured.

A private faults stack (toxiproxy in front of Kafka, Redis, Memcached and the simulator,
own ports and state dir: never the shared stack), one fleet per scenario on its own
namespace, a bounded HTTP load against the reader, and a table of what the reader saw.
"""

from __future__ import annotations

from chaos._runner import Goal, Options, Result, run_scenario
from chaos._scenarios import FAST, SCENARIOS, SLOW, Scenario
from chaos._stack import chaos_stack, faults_stack

__all__ = [
    "FAST",
    "SCENARIOS",
    "SLOW",
    "Goal",
    "Options",
    "Result",
    "Scenario",
    "chaos_stack",
    "faults_stack",
    "run_scenario",
]
