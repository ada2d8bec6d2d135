"""Demand-path settings: typed, frozen, validated once (``WARMFLEET_DEMAND_*``)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from topics import ConfigError, WarmfleetError
from topics.settings import at_least, check_fields, positive


class DemandError(WarmfleetError):
    """Base of the demand path's errors."""


class DemandUnavailable(DemandError):
    """Redis (leases, budget, markets) or Kafka (demand jobs) cannot be reached."""


@dataclass(frozen=True, kw_only=True, slots=True)
class DemandConfig:
    #: how long a reader waits for the value it asked for before a 503 with Retry-After
    deadline_s: float = positive(2.0)
    #: a demand lease per (exchange, data type, symbol): one job per key per lease, fleet-wide
    lease_ms: int = at_least(100, 10_000, problem="must be an int >= 100 (ms)")
    #: how long a reader trusts its copy of an exchange's listed markets
    markets_cache_s: float = positive(10.0)
    #: XFetch's beta (> 1 refreshes earlier, < 1 later); the paper's optimum is 1
    beta: float = positive(1.0)
    #: XFetch's delta (demand -> write, seconds) until one has been measured
    default_delta_s: float = positive(0.5)
    #: while waiting, the tiers are also read this often (the bus wakes readers; this is the
    #: belt for a lost bus or a cache without an L1)
    poll_s: float = positive(0.25)
    #: origin requests per second per exchange when no poller has published its budget
    default_requests_per_s: float = positive(10.0)

    def __post_init__(self) -> None:
        check_fields(self, "demand")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> DemandConfig:
        """``WARMFLEET_DEMAND_DEADLINE_S``, ``_LEASE_MS``, ``_BETA``; a bad value is a
        ``ConfigError`` naming the variable."""
        env = os.environ if env is None else env
        kwargs: dict[str, float | int] = {}
        for var, name, kind in (
            ("WARMFLEET_DEMAND_DEADLINE_S", "deadline_s", float),
            ("WARMFLEET_DEMAND_LEASE_MS", "lease_ms", int),
            ("WARMFLEET_DEMAND_BETA", "beta", float),
        ):
            raw = env.get(var)
            if raw in (None, ""):
                continue
            try:
                kwargs[name] = kind(raw)
            except ValueError:
                raise ConfigError(var, raw, f"must be a {kind.__name__}") from None
        try:
            return cls(**kwargs)  # type: ignore[arg-type]
        except ConfigError as exc:
            var = "WARMFLEET_DEMAND_" + exc.field.removeprefix("demand.").upper()
            raise ConfigError(var, exc.value, exc.problem) from None


def enabled(env: Mapping[str, str] | None = None) -> bool:
    """``WARMFLEET_DEMAND=off`` turns the demand path off (a cold key is a plain 404)."""
    env = os.environ if env is None else env
    raw = env.get("WARMFLEET_DEMAND", "on").strip().lower()
    if raw not in ("on", "off", "1", "0", "true", "false", ""):
        raise ConfigError("WARMFLEET_DEMAND", raw, "must be on or off")
    return raw in ("on", "1", "true", "")
