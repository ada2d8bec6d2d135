"""The local real stack: Apache Kafka (KRaft, jars from Maven Central), Redis, Memcached.

``warmfleet stack up | down | status`` is the command; this is its library.
"""

from __future__ import annotations

from stack._errors import PortTaken, StackError
from stack._manager import SERVICES, StackConfig, down, status, up, urls
from stack._services import Ports

__all__ = [
    "SERVICES",
    "PortTaken",
    "Ports",
    "StackConfig",
    "StackError",
    "down",
    "status",
    "up",
    "urls",
]
