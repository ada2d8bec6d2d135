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
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol, TypeVar

from topics import ConfigError, DataType


class TierLevel(StrEnum):
    L1 = "l1"  # in-process memory
    L2 = "l2"  # Memcached
    L3 = "l3"  # Redis


LEVELS: tuple[TierLevel, ...] = (TierLevel.L1, TierLevel.L2, TierLevel.L3)


class AccessWeights(Protocol):
    """A key's measured access weight (``tiers.HeatView``): 1 for a key nobody reads."""

    def weight(self, key: str) -> float: ...


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

#: seconds the deepest tier keeps a copy past its fresh TTL, served only as stale
#: (``max_stale``, stale-if-error); at least an hour for market data
DEFAULT_STALE_S: Mapping[DataType, float] = {
    DataType.TICKERS: 3600.0,
    DataType.BOOKS: 3600.0,
    DataType.CANDLES: 3600.0,
    DataType.OVERVIEW: 3600.0,
    DataType.SIGNALS: 3600.0,
    DataType.VOLATILITY: 3600.0,
    DataType.DEFAULT: 3600.0,
}

_Row = tuple[float, float, float]  # base, floor, ceiling (seconds)
_LevelRow = tuple[TierLevel, float, float, float]

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
    ``heat`` measures it per key (``tiers.HeatView``: 1 + (access_pattern - 0.5) from the
    fleet's hot set); a write passes its keys (``ttls_many(..., keys=...)``) and each key's
    measured weight multiplies ``access_weight``. Without ``heat`` every key weighs 1.
    ``stale_s`` (seconds, per data type or one figure for all) is how long the deepest tier
    keeps a copy after its fresh TTL, for readers that accept stale data; every TTL here,
    and the warm-coverage rule, is about the fresh TTL.
    """

    base_s: Mapping[DataType, tuple[float, float, float]] = field(
        default_factory=lambda: dict(DEFAULT_BASE_S)
    )
    clamp_s: Mapping[TierLevel, tuple[float, float]] = field(
        default_factory=lambda: dict(DEFAULT_CLAMP_S)
    )
    stale_s: Mapping[DataType, float] | float = field(default_factory=lambda: dict(DEFAULT_STALE_S))
    k: float = 25.0
    jitter: float = 0.10
    #: the deepest tier must outlive warm_interval * (1 + grace_ratio), and at least + grace_min_s
    grace_ratio: float = 0.25
    grace_min_s: float = 10.0
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)
    heat: AccessWeights | None = field(default=None, compare=False, repr=False)
    # (base, floor, ceiling) per (data type, tier) and per (data type, levels), keyed by what
    # callers pass (str or enum; a StrEnum hashes as its value): set_many asks for a TTL per
    # write and tier, and building enums per call was a third of its time. The tables are
    # read on first use; the policy is frozen, do not mutate them afterwards.
    _by_tier: dict[tuple[object, object], _Row] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    _by_levels: dict[tuple[object, tuple[TierLevel, ...]], tuple[_LevelRow, ...]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

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
        windows = self.stale_s.values() if isinstance(self.stale_s, Mapping) else [self.stale_s]
        if any(not 0 <= w < math.inf for w in windows):
            raise ConfigError("ttl.stale_s", self.stale_s, "needs finite seconds >= 0")

    def stale_for(self, data_type: DataType | str) -> float:
        """The stale window (seconds) of ``data_type``."""
        if not isinstance(self.stale_s, Mapping):
            return float(self.stale_s)
        window = self.stale_s.get(DataType.parse(str(data_type)))
        if window is None:
            window = self.stale_s.get(DataType.DEFAULT, 0.0)
        return float(window)

    def coverage_s(self, warm_interval: float) -> float:
        """The least TTL that keeps a warmed key alive until the next warm."""
        return warm_interval + max(self.grace_min_s, warm_interval * self.grace_ratio)

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
        is_deepest = _LEVEL_OF.get(tier) is TierLevel.L3 if deepest is None else deepest
        level = tier if isinstance(tier, TierLevel) else TierLevel(tier)
        ((ttl,),) = self.ttls_many(
            [(data_type, volatility)], (level,),
            warm_interval=warm_interval if is_deepest else None, access_weight=access_weight,
        )  # fmt: skip
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
        rows = self._by_levels.get((data_type, levels)) or self._level_rows(data_type, levels)
        (figures,) = self.ttls_many(
            [(data_type, volatility)], levels, warm_interval=warm_interval,
            access_weight=access_weight,
        )  # fmt: skip
        return {row[0]: ttl for row, ttl in zip(rows, figures, strict=True)}

    def ttls_many(
        self,
        writes: Iterable[tuple[DataType | str, float | None]],
        levels: tuple[TierLevel, ...] = LEVELS,
        *,
        warm_interval: float | None = None,
        access_weight: float = 1.0,
        keys: Sequence[str] | None = None,
    ) -> list[list[float]]:
        """``ttls`` for a batch of (data type, volatility) pairs, each as a list in the order
        of ``levels``: THE formula (``ttl_for`` and ``ttls`` are this for one write). It is
        on every write's path, so the per-level rows are looked up once per data type and
        the coverage once per batch. ``keys`` (one per write) turn on the measured access
        weight of each key when the policy has ``heat``."""
        cover = 0.0
        if warm_interval is not None and warm_interval > 0:
            cover = self.coverage_s(warm_interval)
        weight = _weight(access_weight)
        heat = self.heat
        weights: Iterable[float] | None = None
        if heat is not None and keys is not None:
            measure = heat.weight
            weights = [_weight(access_weight * measure(key)) for key in keys]
        # rng.uniform(-j, j) is -j + (j - -j) * rng.random(): the same draw, without a call
        draw, low, span = self.rng.random, -self.jitter, self.jitter + self.jitter
        memo, scale_of = self._by_levels, self._scale
        out: list[list[float]] = []
        per_key = iter(weights) if weights is not None else None
        for data_type, volatility in writes:
            rows = memo.get((data_type, levels)) or self._level_rows(data_type, levels)
            scale = scale_of(volatility)
            if per_key is not None:
                measured = next(per_key, None)
                if measured is None:
                    raise ValueError("ttls_many: keys must give one key per write")
                weight = measured
            figures: list[float] = []
            floor = 0.0
            for _level, base, lo, hi in rows:
                ttl = min(max(base * scale * weight, lo), hi)
                ttl *= 1.0 + (low + span * draw())
                floor = max(floor, ttl)
                figures.append(floor)
            if cover and figures and figures[-1] < cover:
                figures[-1] = cover  # the deepest tier covers the warm interval
            out.append(figures)
        return out

    def _scale(self, volatility: float | None) -> float:
        if volatility is None or volatility <= 0.0 or not math.isfinite(volatility):
            return 1.0  # exp(-k * 0)
        return math.exp(-self.k * volatility)

    def _row(self, data_type: DataType | str, tier: TierLevel | str) -> _Row:
        """(base, floor, ceiling) seconds for ``data_type`` in ``tier``; ``ValueError`` for a
        tier that is not a level."""
        row = self._by_tier.get((data_type, tier))
        if row is None:
            level = TierLevel(tier)
            bases = self.base_s.get(DataType.parse(str(data_type))) or self.base_s[DataType.DEFAULT]
            lo, hi = self.clamp_s[level]
            row = (bases[LEVELS.index(level)], lo, hi)
            _remember(self._by_tier, (data_type, tier), row)
        return row

    def _level_rows(
        self, data_type: DataType | str, levels: tuple[TierLevel, ...]
    ) -> tuple[_LevelRow, ...]:
        rows = tuple((TierLevel(level), *self._row(data_type, level)) for level in levels)
        _remember(self._by_levels, (data_type, levels), rows)
        return rows


_LEVEL_OF: dict[str, TierLevel] = {level.value: level for level in LEVELS}
_MAX_ROWS = 1024  # memo entries; callers passing ever new data-type names cannot grow it
K = TypeVar("K")
V = TypeVar("V")


def _remember(memo: dict[K, V], key: K, value: V) -> None:
    if len(memo) >= _MAX_ROWS:
        memo.clear()
    memo[key] = value


def _weight(access_weight: float) -> float:
    if math.isnan(access_weight):
        return 1.0  # no measure, no change
    return min(max(access_weight, 0.25), 4.0)
