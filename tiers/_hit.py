"""What a read returns (``Hit``) and what a batch write takes (``Write``)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from tiers._envelope import Envelope

_time = time.time


class Hit:
    """A cached value with its metadata: where it came from and how old it is.

    ``age`` is seconds from the exchange time ``as_of`` to now, computed when read (pass a
    float to pin it). ``stale`` is True for a copy past its fresh TTL, returned only to a
    reader that accepted it (``max_stale``, stale-if-error); L1 never holds one. L1 keeps
    one ``Hit`` per entry and returns it as is, so the hit path allocates nothing: treat
    hits as read-only.
    """

    __slots__ = (
        "_age", "as_of", "deadline", "expires_at", "fresh_until", "schema", "source", "stale",
        "tier", "value", "written_at",
    )  # fmt: skip

    def __init__(
        self,
        value: Any,
        as_of: int,
        age: float | None,
        tier: str,
        written_at: int = 0,
        source: str = "",
        schema: str = "",
        expires_at: int = 0,
        stale: bool = False,
        fresh_until: int = 0,
    ) -> None:
        self.value = value
        self.as_of = as_of
        self._age = age
        self.tier = tier
        self.written_at = written_at
        self.source = source
        self.schema = schema
        self.expires_at = expires_at
        self.stale = stale
        #: wall ms when the copy it came from stops being fresh (0: unknown; XFetch reads it)
        self.fresh_until = fresh_until
        self.deadline = 0.0  # L1 only: monotonic time the entry expires

    @property
    def age(self) -> float:
        pinned = self._age
        return _time() - self.as_of / 1000.0 if pinned is None else pinned

    @age.setter
    def age(self, seconds: float) -> None:
        self._age = seconds

    @property
    def envelope(self) -> Envelope:
        return Envelope(
            self.value, self.as_of, self.written_at, self.source, self.schema, self.expires_at
        )

    def __repr__(self) -> str:
        return (
            f"Hit(value={self.value!r}, as_of={self.as_of}, age={self.age:.3f}, "
            f"tier={self.tier!r}, stale={self.stale})"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Hit):
            return NotImplemented
        return (self.value, self.as_of, self.tier) == (other.value, other.as_of, other.tier)

    __hash__ = None  # type: ignore[assignment]


@dataclass(frozen=True, slots=True)
class Write:
    """One entry of ``MultiTierCache.set_many``."""

    key: str
    value: Any
    data_type: str
    as_of: int
    volatility: float | None = None
