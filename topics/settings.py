"""Settings fields that carry their own rule, checked one way for every settings class.

A frozen settings dataclass declares each checked field with its rule, and checks them all
in ``__post_init__``::

    @dataclass(frozen=True, slots=True)
    class DemandConfig:
        deadline_s: float = positive(2.0)
        lease_ms: int = at_least(100, 10_000, problem="must be an int >= 100 (ms)")

        def __post_init__(self) -> None:
            check_fields(self, "demand")

A value that breaks its field's rule is a ``ConfigError`` naming ``section.field`` (or the
bare field when the section is empty) and the value. Numbers are ``int`` or ``float``,
never ``bool``; an integer rule takes ``int`` only; NaN and infinities break every rule.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from topics.errors import ConfigError

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

T = TypeVar("T")

__all__ = [
    "Rule", "at_least", "between", "check", "check_fields", "minimum", "not_negative",
    "positive", "ruled",
]  # fmt: skip

_RULE = "warmfleet.rule"  # the key of a field's rule in its dataclass metadata


@dataclass(frozen=True, kw_only=True, slots=True)
class Rule:
    """What a number must be: ``low <= value <= high`` (``low < value`` when ``above``)."""

    low: float
    high: float
    problem: str
    integer: bool = False
    above: bool = False

    def allows(self, value: object) -> bool:
        if isinstance(value, bool) or not isinstance(value, int if self.integer else int | float):
            return False
        if not math.isfinite(value):
            return False
        return (self.low < value if self.above else self.low <= value) and value <= self.high


POSITIVE = Rule(low=0, high=math.inf, problem="must be a positive number", above=True)
NOT_NEGATIVE = Rule(low=0, high=math.inf, problem="must be a number >= 0")


def check(name: str, value: object, rule: Rule) -> None:
    """Raise ``ConfigError(name, value, rule.problem)`` unless ``rule`` allows ``value``."""
    if not rule.allows(value):
        raise ConfigError(name, value, rule.problem)


def ruled(default: T, rule: Rule) -> T:
    """A dataclass field with ``default`` whose values ``check_fields`` holds to ``rule``
    (typed as its default, as ``dataclasses.field`` is)."""
    return dataclasses.field(default=default, metadata={_RULE: rule})


def positive(default: float) -> float:
    """A field that must be a finite number > 0."""
    return ruled(default, POSITIVE)


def not_negative(default: float) -> float:
    """A field that must be a finite number >= 0."""
    return ruled(default, NOT_NEGATIVE)


def minimum(low: int, *, problem: str | None = None) -> Rule:
    """The rule of an ``int`` >= ``low`` (``problem`` words the error)."""
    if problem is None:
        problem = "must be a positive integer" if low == 1 else f"must be an int >= {low}"
    return Rule(low=low, high=math.inf, problem=problem, integer=True)


def at_least(low: int, default: int, *, problem: str | None = None) -> int:
    """A field that must be an ``int`` >= ``low`` (``problem`` words the error)."""
    return ruled(default, minimum(low, problem=problem))


def between(low: float, high: float, default: T, *, problem: str, integer: bool = False) -> T:
    """A field that must lie in ``low .. high``, both ends included."""
    return ruled(default, Rule(low=low, high=high, problem=problem, integer=integer))


def check_fields(settings: DataclassInstance, section: str) -> None:
    """Check every ruled field of the dataclass instance ``settings``, in declaration order;
    the first that breaks its rule is a ``ConfigError`` named ``section.field``."""
    for spec in dataclasses.fields(settings):
        rule = spec.metadata.get(_RULE)
        if rule is not None:
            name = f"{section}.{spec.name}" if section else spec.name
            check(name, getattr(settings, spec.name), rule)
