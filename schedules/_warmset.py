"""What a warm job names, and when the clock pre-warms (pure; the hot set is a parameter).

Which symbols a job asks for, per (exchange, data type):

1. ``symbols_by_type[type]`` in ``phases.toml``: exactly that list, always (``[]`` = every
   active market) — an operator's explicit choice wins over measurement;
2. tickers (and any type fetched for all markets in one request): the exchange's
   ``symbols`` (``[]`` = all active markets), as before;
3. books and candles, one origin request per symbol, when the clock has a hot set: the
   hottest symbols the fleet's readers read as that type on that exchange (only those in
   ``symbols`` when that list is not empty), at most ``hot_set_budget`` of them. No hot
   symbol (nobody read any): no job (``warmfleet_clock_jobs_skipped_total``); the demand
   path loads a first read;
4. without a hot set: the exchange's ``symbols`` as before.

The budget: the scheduled warms of one exchange may send ``requests_per_s * budget_share``
requests per second (the rest is left to demand warms). The all-markets jobs take one
request per interval each; what remains is split evenly, in requests per second, among the
exchange's per-symbol types; a type fired every ``I`` seconds may then name
``floor(rate * I)`` symbols.

Pre-warming: before each change to a faster phase (the calendar's 04:00 pre-market and
09:30 open, an override ending in a faster phase) the clock fires every job
``pre_warm_lead_s`` early, so what the first reads of the new phase ask for was written
moments before; its hot-set symbols are capped by the new phase's budget, so the early warm
fits the faster cadence that follows it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Protocol

from schedules._calendar import Phase
from schedules._config import ExchangeWarm, PhaseConfig
from schedules._plan import JobKey, Override, PhaseState, current_phase, effective_interval
from topics import DataType

#: data types the pollers fetch with one origin request per symbol
PER_SYMBOL: frozenset[DataType] = frozenset({DataType.BOOKS, DataType.CANDLES})

#: why a job named no symbol and was not published
NO_HOT_SYMBOL = "hot_set_empty"
HOT_SET_UNKNOWN = "hot_set_unknown"  # the hot set was never read (Redis away since start)
NO_BUDGET = "no_budget"  # the exchange's budget has no room for per-symbol warms


class HotSymbols(Protocol):
    """The fleet's hot set as the clock reads it (``tiers.HeatView``)."""

    def hot_symbols(
        self,
        exchange: str,
        data_type: DataType,
        limit: int,
        allowed: Iterable[str] | None = None,
    ) -> list[str] | None: ...


class HotSet(HotSymbols, Protocol):
    """A hot set the clock keeps fresh: ``run()`` refreshes it until cancelled."""

    async def run(self) -> None: ...


def hot_set_budget(
    config: PhaseConfig, exchange: ExchangeWarm, phase: Phase, data_type: DataType, boost: float
) -> int:
    """How many symbols one ``data_type`` job of ``exchange`` may name in ``phase``."""
    per_symbol = [t for t in exchange.data_types if t in PER_SYMBOL]
    if data_type not in per_symbol:
        return 0
    share = exchange.requests_per_s * config.hot_set.budget_share
    fixed = sum(
        1.0 / effective_interval(config, phase, t, exchange, boost)
        for t in exchange.data_types
        if t not in PER_SYMBOL
    )
    rate = max(share - fixed, 0.0) / len(per_symbol)
    interval = effective_interval(config, phase, data_type, exchange, boost)
    return math.floor(rate * interval + 1e-9)


def job_symbols(
    config: PhaseConfig,
    key: JobKey,
    phase: Phase,
    boost: float,
    hot: HotSymbols | None,
) -> tuple[list[str], str | None]:
    """(the symbols a job of ``key`` names, None) or ([], why it is not published)."""
    exchange = config.exchange(key.exchange)
    explicit = exchange.symbols_by_type.get(key.data_type)
    if explicit is not None:
        return list(explicit), None
    if key.data_type not in PER_SYMBOL or hot is None:
        return list(exchange.symbols), None
    limit = hot_set_budget(config, exchange, phase, key.data_type, boost)
    if limit <= 0:
        return [], NO_BUDGET
    allowed = exchange.symbols or None
    symbols = hot.hot_symbols(exchange.name, key.data_type, limit, allowed=allowed)
    if symbols is None:
        return [], HOT_SET_UNKNOWN
    if not symbols:
        return [], NO_HOT_SYMBOL
    return symbols, None


def prewarm_at(
    config: PhaseConfig, state: PhaseState, override: Override | None = None
) -> tuple[datetime, Phase] | None:
    """(when to pre-warm, the faster phase coming) before ``state``'s next change, or None
    when it is not to a faster phase, there is none, or pre-warming is off."""
    lead = config.hot_set.pre_warm_lead_s
    change = state.next_change
    if lead <= 0 or change is None:
        return None
    after, _ = current_phase(config, change, override)
    intervals = config.calendar.intervals_s
    if intervals[after] >= intervals[state.phase]:
        return None
    return max(state.at, change - timedelta(seconds=lead)), after
