"""Loading and validating ``phases.toml``: a bad value stops the clock with a message that
names the field and the value (``phases.intervals.weekend: must be a positive number of
seconds (got -5)``). Unknown keys are refused too, so a typo is not silently ignored."""

from __future__ import annotations

import math
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from schedules._calendar import INTERVAL_TYPES, WEEKDAYS, Phase, PhaseCalendar, Sessions
from topics import POLLED, ConfigError, DataType
from topics.settings import Rule, check

#: the packaged default, used when ``WARMFLEET_PHASES`` is not set
DEFAULT_PATH = Path(__file__).with_name("phases.toml")

_SYMBOL = re.compile(r"^[A-Za-z0-9._-]+/[A-Za-z0-9._-]+(:[A-Za-z0-9._-]+)?$")
_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)(?::([0-5]\d))?$")


@dataclass(frozen=True, slots=True)
class ExchangeWarm:
    """What the clock warms on one exchange, and the floor that keeps it in its rate budget."""

    name: str
    data_types: tuple[DataType, ...]
    #: ccxt symbols; empty means "all active markets" (the WarmJob contract)
    symbols: tuple[str, ...] = ()
    symbols_by_type: Mapping[DataType, tuple[str, ...]] = field(default_factory=dict)
    #: no job for this exchange is issued more often than this, boost or not
    min_interval_s: float = 5.0
    #: origin requests per second this exchange may receive from the fleet, scheduled and
    #: demand warms together (the pollers' shared budget; ccxt's ``rateLimit`` still paces
    #: each poller's own calls)
    requests_per_s: float = 10.0

    def symbols_for(self, data_type: DataType) -> tuple[str, ...]:
        return self.symbols_by_type.get(data_type, self.symbols)


@dataclass(frozen=True, slots=True)
class Boost:
    """Tighten intervals while the market overview's volatility index is high.

    On at ``volatility_index >= threshold``, off again below ``threshold * release_ratio``
    (hysteresis, so an index hovering at the threshold does not flap), and off when no
    overview arrived for ``stale_after_s``.
    """

    threshold: float = 0.005
    factor: float = 0.5
    release_ratio: float = 0.8
    stale_after_s: float = 300.0
    enabled: bool = True


@dataclass(frozen=True, slots=True)
class HotSetWarm:
    """How the clock warms the fleet's hot set (``schedules._warmset``).

    ``pre_warm_lead_s``: how long before a change to a faster phase every job fires early
    (0 turns pre-warming off). ``budget_share``: the part of each exchange's
    ``requests_per_s`` the scheduled warms may use; the rest is left to demand warms.
    """

    pre_warm_lead_s: float = 5.0
    budget_share: float = 0.5


#: a pre-warm is a lead, not a schedule: past this it would warm for the old phase's reads
MAX_PRE_WARM_LEAD_S = 60.0


@dataclass(frozen=True, slots=True)
class PhaseConfig:
    """Everything in a phases file: the calendar, what is warmed, deadlines, the boost."""

    calendar: PhaseCalendar = field(default_factory=PhaseCalendar)
    exchanges: tuple[ExchangeWarm, ...] = ()
    #: a job's deadline is ``min(interval, deadline_s)`` after it was issued
    deadline_s: float = 8.0
    boost: Boost = field(default_factory=Boost)
    hot_set: HotSetWarm = field(default_factory=HotSetWarm)
    source: str = "<defaults>"

    def exchange(self, name: str) -> ExchangeWarm:
        for ex in self.exchanges:
            if ex.name == name:
                return ex
        raise KeyError(name)


def default_path(env: Mapping[str, str] | None = None) -> Path:
    """``WARMFLEET_PHASES`` if set, else the packaged ``schedules/phases.toml``."""
    env = os.environ if env is None else env
    raw = env.get("WARMFLEET_PHASES")
    return Path(raw) if raw else DEFAULT_PATH


def load_config(path: str | os.PathLike[str]) -> PhaseConfig:
    """Read and validate a phases file; raises ``ConfigError`` naming the bad field."""
    p = Path(path)
    try:
        raw = tomllib.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError("WARMFLEET_PHASES", str(p), f"cannot read the file: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(p), "<file>", f"is not valid TOML: {exc}") from exc
    return parse_config(raw, source=str(p))


def parse_config(raw: Mapping[str, Any], *, source: str = "<dict>") -> PhaseConfig:
    """Validate an already-parsed TOML document."""
    _known(raw, "", {"timezone", "trading_days", "holidays", "sessions", "phases", "warm", "boost"})
    calendar = PhaseCalendar(
        timezone=_timezone(raw.get("timezone", "America/New_York")),
        sessions=_sessions(_table(raw, "sessions", "sessions")),
        trading_days=_trading_days(raw.get("trading_days", list(WEEKDAYS[:5]))),
        holidays=_holidays(raw.get("holidays", [])),
        intervals_s=_intervals(
            _table(_table(raw, "phases", "phases"), "intervals", "phases.intervals")
        ),
        multipliers=_multipliers(
            _table(_table(raw, "phases", "phases"), "multipliers", "phases.multipliers")
        ),
    )
    _known(_table(raw, "phases", "phases"), "phases.", {"intervals", "multipliers"})
    warm = _table(raw, "warm", "warm")
    _known(warm, "warm.", {"deadline_s", "exchanges", "hot_set"})
    exchanges = _exchanges(_table(warm, "exchanges", "warm.exchanges"))
    return PhaseConfig(
        calendar=calendar,
        exchanges=exchanges,
        deadline_s=_positive(warm.get("deadline_s", 8.0), "warm.deadline_s"),
        boost=_boost(_table(raw, "boost", "boost")),
        hot_set=_hot_set(_table(warm, "hot_set", "warm.hot_set")),
        source=source,
    )


# -- field validators --------------------------------------------------------------------


def _table(parent: Mapping[str, Any], key: str, name: str) -> Mapping[str, Any]:
    value = parent.get(key, {})
    if not isinstance(value, Mapping):
        raise ConfigError(name, value, "must be a table")
    return value


def _known(table: Mapping[str, Any], prefix: str, allowed: set[str]) -> None:
    for key in table:
        if key not in allowed:
            raise ConfigError(
                f"{prefix}{key}", table[key], f"unknown key; expected one of {sorted(allowed)}"
            )


_SECONDS = Rule(low=0, high=math.inf, problem="must be a positive number of seconds", above=True)


def _positive(value: object, name: str) -> float:
    check(name, value, _SECONDS)  # the settings' one rule check (topics.settings)
    return float(value)  # type: ignore[arg-type]  # check allowed only int | float


def _timezone(value: object) -> ZoneInfo:
    if not isinstance(value, str) or not value:
        raise ConfigError("timezone", value, "must be an IANA time zone name")
    try:
        return ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError("timezone", value, "is not a known IANA time zone") from exc


def _wall_time(value: object, name: str) -> time:
    if isinstance(value, time):
        if value.tzinfo is not None:
            raise ConfigError(name, value.isoformat(), "must be a local time without offset")
        return value
    if isinstance(value, str) and (m := _HHMM.match(value)):
        return time(int(m[1]), int(m[2]), int(m[3] or 0))
    raise ConfigError(name, value, 'must be a local time "HH:MM" (24 h)')


def _sessions(table: Mapping[str, Any]) -> Sessions:
    names = ("pre_market", "open", "close", "after_hours_end")
    _known(table, "sessions.", set(names))
    default = Sessions()
    values = [_wall_time(table.get(n, getattr(default, n)), f"sessions.{n}") for n in names]
    for i in range(1, len(names)):
        (a, ta), (b, tb) = (names[i - 1], values[i - 1]), (names[i], values[i])
        if not ta < tb:
            raise ConfigError(
                f"sessions.{b}",
                tb.isoformat("minutes"),
                f"must be later than sessions.{a} ({ta.isoformat('minutes')})",
            )
    return Sessions(*values)


def _trading_days(value: object) -> frozenset[int]:
    if not isinstance(value, list):
        raise ConfigError("trading_days", value, f"must be a list of {list(WEEKDAYS)}")
    days: set[int] = set()
    for i, item in enumerate(value):
        name = item.lower()[:3] if isinstance(item, str) else item
        if name not in WEEKDAYS:
            raise ConfigError(f"trading_days[{i}]", item, f"must be one of {list(WEEKDAYS)}")
        days.add(WEEKDAYS.index(name))
    return frozenset(days)


def _holidays(value: object) -> frozenset[date]:
    if not isinstance(value, list):
        raise ConfigError("holidays", value, "must be a list of dates (2026-12-25)")
    out: set[date] = set()
    for i, item in enumerate(value):
        day: date | None = None
        if isinstance(item, date) and not hasattr(item, "hour"):
            day = item
        elif isinstance(item, str):
            try:
                day = date.fromisoformat(item)
            except ValueError:
                day = None
        if day is None:
            raise ConfigError(f"holidays[{i}]", item, "must be a date like 2026-12-25")
        out.add(day)
    return frozenset(out)


def _intervals(table: Mapping[str, Any]) -> dict[Phase, float]:
    _known(table, "phases.intervals.", {p.value for p in Phase})
    out: dict[Phase, float] = {}
    for phase in Phase:
        if phase.value not in table:
            raise ConfigError(f"phases.intervals.{phase.value}", None, "is missing")
        out[phase] = _positive(table[phase.value], f"phases.intervals.{phase.value}")
    return out


def _multipliers(table: Mapping[str, Any]) -> dict[DataType, float]:
    _known(table, "phases.multipliers.", {d.value for d in INTERVAL_TYPES})
    out = {DataType.DEFAULT: 1.0}
    for key, value in table.items():
        out[DataType(key)] = _positive(value, f"phases.multipliers.{key}")
    return out


def _symbols(value: object, name: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ConfigError(name, value, 'must be a list of ccxt symbols ("BTC/USDT"); [] = all')
    for i, item in enumerate(value):
        if not isinstance(item, str) or not _SYMBOL.match(item):
            raise ConfigError(f"{name}[{i}]", item, 'must be a ccxt symbol like "BTC/USDT"')
    if len(set(value)) != len(value):
        raise ConfigError(name, value, "lists a symbol twice")
    return tuple(value)


def _data_types(value: object, name: str) -> tuple[DataType, ...]:
    polled = sorted(d.value for d in POLLED)
    if not isinstance(value, list) or not value:
        raise ConfigError(name, value, f"must be a non-empty list of {polled}")
    out: list[DataType] = []
    for i, item in enumerate(value):
        if item not in polled:
            raise ConfigError(
                f"{name}[{i}]",
                item,
                f"must be one of {polled} (warm jobs fetch these; the rest are derived by agents)",
            )
        if DataType(item) in out:
            raise ConfigError(f"{name}[{i}]", item, "is listed twice")
        out.append(DataType(item))
    return tuple(out)


def _exchanges(table: Mapping[str, Any]) -> tuple[ExchangeWarm, ...]:
    if not table:
        raise ConfigError("warm.exchanges", dict(table), "must name at least one exchange")
    out: list[ExchangeWarm] = []
    for ex_name, ex in table.items():
        base = f"warm.exchanges.{ex_name}"
        if not re.fullmatch(r"[a-z0-9_]+", ex_name):
            raise ConfigError(base, ex_name, "must be a ccxt exchange id (lower case)")
        if not isinstance(ex, Mapping):
            raise ConfigError(base, ex, "must be a table")
        _known(
            ex,
            base + ".",
            {"data_types", "symbols", "symbols_by_type", "min_interval_s", "requests_per_s"},
        )
        data_types = _data_types(ex.get("data_types", ["tickers"]), base + ".data_types")
        by_type_raw = ex.get("symbols_by_type", {})
        if not isinstance(by_type_raw, Mapping):
            raise ConfigError(base + ".symbols_by_type", by_type_raw, "must be a table")
        by_type: dict[DataType, tuple[str, ...]] = {}
        for key, value in by_type_raw.items():
            if key not in {d.value for d in data_types}:
                raise ConfigError(
                    f"{base}.symbols_by_type.{key}",
                    value,
                    "names a data type this exchange does not warm",
                )
            by_type[DataType(key)] = _symbols(value, f"{base}.symbols_by_type.{key}")
        out.append(
            ExchangeWarm(
                name=ex_name,
                data_types=data_types,
                symbols=_symbols(ex.get("symbols", []), base + ".symbols"),
                symbols_by_type=by_type,
                min_interval_s=_positive(ex.get("min_interval_s", 5.0), base + ".min_interval_s"),
                requests_per_s=_positive(ex.get("requests_per_s", 10.0), base + ".requests_per_s"),
            )
        )
    return tuple(out)


def _hot_set(table: Mapping[str, Any]) -> HotSetWarm:
    _known(table, "warm.hot_set.", {"pre_warm_lead_s", "budget_share"})
    default = HotSetWarm()
    lead = table.get("pre_warm_lead_s", default.pre_warm_lead_s)
    if (
        isinstance(lead, bool)
        or not isinstance(lead, int | float)
        or not 0 <= lead <= MAX_PRE_WARM_LEAD_S
    ):
        raise ConfigError(
            "warm.hot_set.pre_warm_lead_s",
            lead,
            f"must be seconds in [0, {MAX_PRE_WARM_LEAD_S:g}] (0 = no pre-warming)",
        )
    raw_share = table.get("budget_share", default.budget_share)
    share = _positive(raw_share, "warm.hot_set.budget_share")
    if share > 1:
        raise ConfigError("warm.hot_set.budget_share", raw_share, "must be in (0, 1]")
    return HotSetWarm(pre_warm_lead_s=float(lead), budget_share=share)


def _boost(table: Mapping[str, Any]) -> Boost:
    _known(table, "boost.", {"enabled", "threshold", "factor", "release_ratio", "stale_after_s"})
    default = Boost()
    enabled = table.get("enabled", True)
    if not isinstance(enabled, bool):
        raise ConfigError("boost.enabled", enabled, "must be true or false")
    raw_factor = table.get("factor", default.factor)
    factor = _positive(raw_factor, "boost.factor")
    if factor > 1:
        raise ConfigError("boost.factor", raw_factor, "must be in (0, 1]: it tightens intervals")
    raw_ratio = table.get("release_ratio", default.release_ratio)
    ratio = _positive(raw_ratio, "boost.release_ratio")
    if ratio > 1:
        raise ConfigError("boost.release_ratio", raw_ratio, "must be in (0, 1]")
    return Boost(
        threshold=_positive(table.get("threshold", default.threshold), "boost.threshold"),
        factor=factor,
        release_ratio=ratio,
        stale_after_s=_positive(
            table.get("stale_after_s", default.stale_after_s), "boost.stale_after_s"
        ),
        enabled=enabled,
    )
