"""TTL policy: how long each tier keeps a value (pure; randomness is injectable).

ttl = clamp_tier(base[data_type][tier] * exp(-k * volatility) * access_weight) * jitter

then two invariants the old design broke:

* tier order — a deeper tier never expires before a shallower one (L1 <= L2 <= L3);
* warm coverage — the deepest tier outlives the current warm interval plus a grace, so a
  key the fleet warms is never cold between two warms (a 600 s weekend interval with a
  300 s L3 TTL would be). Coverage wins over the tier's ceiling.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from topics import ConfigError, DataType


class TierLevel(StrEnum):
    L1 = "l1"  # in-process memory
    L2 = "l2"  # Memcached
    L3 = "l3"  # Redis


LEVELS: tuple[TierLevel, ...] = (TierLevel.L1, TierLevel.L2, TierLevel.L3)

#: base TTL seconds (L1, L2, L3); the old report's defaults: overview 15/30/120, default 30/60/300
DEFAULT_BASE_S: Mapping[DataType, tuple[float, float, float]] = {
    DataType.TICKERS: (15.0, 30.0, 120.0),
    DataType.BOOKS: (15.0, 30.0, 120.0),
    DataType.OVERVIEW: (15.0, 30.0, 120.0),
    DataType.CANDLES: (30.0, 60.0, 300.0),
    DataType.SIGNALS: (30.0, 60.0, 300.0),
    DataType.VOLATILITY: (30.0, 60.0, 300.0),
    DataType.DEFAULT: (30.0, 60.0, 300.0),
}

#: (floor, ceiling) seconds per tier
DEFAULT_CLAMP_S: Mapping[TierLevel, tuple[float, float]] = {
    TierLevel.L1: (1.0, 60.0),
    TierLevel.L2: (5.0, 600.0),
    TierLevel.L3: (30.0, 3600.0),
}


@dataclass(frozen=True)
class TTLPolicy:
    """Tier- and data-type-specific, volatility-adjusted TTLs.

    ``volatility`` is the symbol's EWMA volatility of log returns (a fraction: 0.01 = 1 %);
    ``k`` sets how fast TTLs shrink as it rises (k=25: 1 % -> x0.78, 4 % -> x0.37).
    ``access_weight`` > 1 keeps hot keys longer, < 1 shorter (clamped to [0.25, 4]).
    """

    base_s: Mapping[DataType, tuple[float, float, float]] = field(
        default_factory=lambda: dict(DEFAULT_BASE_S)
    )
    clamp_s: Mapping[TierLevel, tuple[float, float]] = field(
        default_factory=lambda: dict(DEFAULT_CLAMP_S)
    )
    k: float = 25.0
    jitter: float = 0.10
    #: the deepest tier must outlive warm_interval * (1 + grace_ratio), and at least + grace_min_s
    grace_ratio: float = 0.25
    grace_min_s: float = 10.0
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.k < 0:
            raise ConfigError("ttl.k", self.k, "must be >= 0")
        if not 0 <= self.jitter < 0.5:
            raise ConfigError("ttl.jitter", self.jitter, "must be in [0, 0.5)")
        for data_type, bases in self.base_s.items():
            if len(bases) != 3 or any(b <= 0 for b in bases):
                raise ConfigError(f"ttl.base.{data_type}", bases, "needs three positive seconds")
        for level, (lo, hi) in self.clamp_s.items():
            if not 0 < lo <= hi:
                raise ConfigError(f"ttl.clamp.{level}", (lo, hi), "needs 0 < floor <= ceiling")

    def coverage_s(self, warm_interval: float) -> float:
        """The least TTL that keeps a warmed key alive until the next warm."""
        return warm_interval + max(self.grace_min_s, warm_interval * self.grace_ratio)

    def nominal(
        self, data_type: DataType | str, tier: TierLevel | str, *, volatility: float | None = None,
        access_weight: float = 1.0,
    ) -> float:  # fmt: skip
        """The TTL before jitter and before the coverage rule."""
        level = TierLevel(tier)
        bases = self.base_s.get(DataType.parse(str(data_type))) or self.base_s[DataType.DEFAULT]
        vol = 0.0 if volatility is None or not math.isfinite(volatility) else max(volatility, 0.0)
        weight = min(max(access_weight, 0.25), 4.0)
        lo, hi = self.clamp_s[level]
        return min(max(bases[LEVELS.index(level)] * math.exp(-self.k * vol) * weight, lo), hi)

    def ttl_for(
        self,
        data_type: DataType | str,
        tier: TierLevel | str,
        *,
        volatility: float | None = None,
        warm_interval: float | None = None,
        access_weight: float = 1.0,
        deepest: bool | None = None,
    ) -> float:
        """Seconds ``tier`` keeps a ``data_type`` value. ``deepest`` defaults to ``tier == L3``;
        pass it when a cache's last tier is a shallower one."""
        level = TierLevel(tier)
        ttl = self.nominal(data_type, level, volatility=volatility, access_weight=access_weight)
        ttl *= 1.0 + self.rng.uniform(-self.jitter, self.jitter)
        is_deepest = level is TierLevel.L3 if deepest is None else deepest
        if is_deepest and warm_interval is not None and warm_interval > 0:
            ttl = max(ttl, self.coverage_s(warm_interval))
        return ttl

    def ttls(
        self,
        data_type: DataType | str,
        levels: tuple[TierLevel, ...] = LEVELS,
        *,
        volatility: float | None = None,
        warm_interval: float | None = None,
        access_weight: float = 1.0,
    ) -> dict[TierLevel, float]:
        """TTLs for a write through ``levels`` (shallow to deep), in non-decreasing order."""
        out: dict[TierLevel, float] = {}
        floor = 0.0
        for i, level in enumerate(levels):
            ttl = self.ttl_for(
                data_type, level, volatility=volatility, warm_interval=warm_interval,
                access_weight=access_weight, deepest=i == len(levels) - 1,
            )  # fmt: skip
            floor = max(floor, ttl)
            out[level] = floor
        return out
