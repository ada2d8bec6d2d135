"""Where the demand path keeps its state in Redis (every name under the key prefix, so
side-by-side fleets and tests do not see each other)."""

from __future__ import annotations


def lease(scope: str, exchange: str, data_type: str, symbol: str) -> str:
    return f"{scope}:demand:lease:{exchange}:{data_type}:{symbol}"


def markets(scope: str, exchange: str) -> str:
    # a hash tag: the set and the temporary key renamed over it share one Redis Cluster slot
    return f"{scope}:demand:{{markets:{exchange}}}"


def budget(scope: str, exchange: str) -> str:
    """The fleet-wide token bucket the pollers take from for every origin request."""
    return f"{scope}:demand:bucket:{exchange}"


def admission(scope: str, exchange: str) -> str:
    """The readers' admission bucket for demand jobs (same rate as the origin budget)."""
    return f"{scope}:demand:admit:{exchange}"


def rate(scope: str, exchange: str) -> str:
    """The exchange's requests/s budget, as the pollers publish it."""
    return f"{scope}:demand:rate:{exchange}"
