"""The one decode-and-validate of the control records the fleet follows (``PhaseChange``)."""

from __future__ import annotations

import math
from typing import Any

from topics._contract import DEFAULT_LIMITS, InvalidRecord, Limits, show
from topics._market import decode

PHASE_CHANGE_FIELDS = (
    "phase", "intervals_s", "at_ms", "next_transition_ms", "override_until_ms",
    "volatility_boost",
)  # fmt: skip


def _ms(obj: dict[str, Any], name: str, *, optional: bool) -> int | None:
    value = obj.get(name)
    if value is None and optional:
        return None
    if type(value) is not int or value < 0:
        raise InvalidRecord("wrong_type", f"{name} must be integer ms, got {show(value)}")
    return value


def _seconds(value: Any, name: str) -> float:
    if type(value) is not float and type(value) is not int:
        raise InvalidRecord("wrong_type", f"{name} must be a number, got {show(value)}")
    number = float(value)
    if not math.isfinite(number) or number <= 0 or number > 30 * 86_400:
        raise InvalidRecord("out_of_bounds", f"{name} must be in (0, 30 days] s, got {show(value)}")
    return number


def phase_change_fields(raw: bytes | None, limits: Limits = DEFAULT_LIMITS) -> dict[str, Any]:
    """A ``PhaseChange``'s fields from a ``control.phase`` message value, checked."""
    obj = decode(raw, limits)
    phase = obj.get("phase")
    if type(phase) is not str or not phase.isidentifier():
        raise InvalidRecord("bad_field", f"phase must be a name, got {show(phase)}")
    intervals = obj.get("intervals_s")
    if type(intervals) is not dict or not intervals:
        raise InvalidRecord("bad_field", "intervals_s must be an object of data type -> seconds")
    clean = {}
    for name, value in intervals.items():
        if not name.isidentifier():
            raise InvalidRecord("bad_field", f"intervals_s has a bad data type {show(name)}")
        clean[name] = _seconds(value, f"intervals_s.{name}")
    boost = obj.get("volatility_boost", 1.0)
    return {
        "phase": phase,
        "intervals_s": clean,
        "at_ms": _ms(obj, "at_ms", optional=False),
        "next_transition_ms": _ms(obj, "next_transition_ms", optional=True),
        "override_until_ms": _ms(obj, "override_until_ms", optional=True),
        "volatility_boost": 1.0 if boost is None else _seconds(boost, "volatility_boost"),
    }
