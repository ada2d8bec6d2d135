"""Fault injection: what the simulator does wrong, where, and how often.

A fault targets an *endpoint*: a URL path prefix (``/api/v3/ticker/24hr``) or a venue
shortcut (``binance`` = ``/api/v3``, ``okx`` = ``/api/v5``, ``all``). It fires on the next
``count`` matching requests, or on each matching request with probability ``rate``
(from a seeded generator, so runs repeat), or — with neither — on every matching request
until cleared. How each kind looks on the wire is the venue's business (``_binance``,
``_okx``); this module only decides which fault, if any, a request gets.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field
from typing import Any

#: kind -> what it does (shown by `warmfleet sim fault --list` and GET /admin/faults)
KINDS: dict[str, str] = {
    "429": "HTTP 429 Too Many Requests with Retry-After, in the venue's error shape",
    "418": "HTTP 418 IP auto-banned with Retry-After (Binance's escalation of 429)",
    "500": "HTTP 500 with an HTML body, as a failing gateway answers",
    "503": "HTTP 503 Service Unavailable",
    "slow": "answer correctly after `delay_s` seconds",
    "timeout": "accept the request and never answer (the client times out)",
    "truncated": "HTTP 200 with the JSON body cut in half",
    "empty": "HTTP 200 with an empty body",
    "stale": "answer correctly, but with prices and timestamps frozen when the fault began",
}
ALIASES: dict[str, str] = {"binance": "/api/v3", "okx": "/api/v5", "all": "/api", "*": "/api"}


class FaultError(ValueError):
    """A fault specification is invalid; the message says which part and why."""


def normalise_endpoint(endpoint: str) -> str:
    path = ALIASES.get(endpoint.strip().lower(), endpoint.strip())
    if not path.startswith("/api"):
        raise FaultError(
            f"endpoint must be a path under /api (e.g. /api/v3/ticker/24hr) or one of "
            f"{', '.join(ALIASES)}; got {endpoint!r}"
        )
    return path.rstrip("/")


@dataclass(slots=True)
class Fault:
    endpoint: str
    kind: str
    count: int | None = None  # fires this many more times, then goes away
    rate: float | None = None  # fires with this probability per matching request
    retry_after_s: int = 2  # 429 / 418
    delay_s: float = 3.0  # slow
    fired: int = 0
    frozen_ms: int | None = None  # stale: the simulated time prices froze at
    id: int = field(default=0)

    def matches(self, path: str) -> bool:
        return path == self.endpoint or path.startswith(self.endpoint + "/")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def make_fault(spec: dict[str, Any]) -> Fault:
    """A validated ``Fault`` from an admin request body."""
    if not isinstance(spec, dict):
        raise FaultError(f"a fault is a JSON object, got {type(spec).__name__}")
    kind = str(spec.get("kind", ""))
    if kind not in KINDS:
        raise FaultError(f"kind must be one of {', '.join(KINDS)}; got {kind!r}")
    endpoint = normalise_endpoint(str(spec.get("endpoint", "")))
    count, rate = spec.get("count"), spec.get("rate")
    if count is not None and rate is not None:
        raise FaultError("give count or rate, not both")
    if count is not None and (not isinstance(count, int) or count < 1):
        raise FaultError(f"count must be a positive integer; got {count!r}")
    if rate is not None and (not isinstance(rate, int | float) or not 0 < rate <= 1):
        raise FaultError(f"rate must be a probability in (0, 1]; got {rate!r}")
    retry_after = spec.get("retry_after_s", 2)
    if not isinstance(retry_after, int) or retry_after < 0:
        raise FaultError(f"retry_after_s must be a non-negative integer; got {retry_after!r}")
    delay = spec.get("delay_s", 3.0)
    if not isinstance(delay, int | float) or delay < 0:
        raise FaultError(f"delay_s must be a non-negative number; got {delay!r}")
    return Fault(
        endpoint=endpoint,
        kind=kind,
        count=count,
        rate=None if rate is None else float(rate),
        retry_after_s=retry_after,
        delay_s=float(delay),
    )


class FaultRegistry:
    """Active faults, newest first. Not thread-safe: the simulator is one event loop."""

    def __init__(self, seed: int = 0) -> None:
        self._faults: list[Fault] = []
        self._rng = random.Random(f"{seed}|faults")
        self._next_id = 1

    def add(self, fault: Fault, now_ms: int) -> Fault:
        fault.id = self._next_id
        self._next_id += 1
        if fault.kind == "stale":
            fault.frozen_ms = now_ms
        self._faults.insert(0, fault)
        return fault

    def clear(self, endpoint: str | None = None) -> int:
        """Remove every fault (or those on exactly ``endpoint``); returns how many."""
        before = len(self._faults)
        if endpoint is None:
            self._faults.clear()
        else:
            path = normalise_endpoint(endpoint)
            self._faults = [f for f in self._faults if f.endpoint != path]
        return before - len(self._faults)

    def list(self) -> list[Fault]:
        return list(self._faults)

    def frozen_at(self, path: str) -> int | None:
        """The simulated time a ``stale`` fault froze ``path`` at, if one is active."""
        for fault in self._faults:
            if fault.kind == "stale" and fault.matches(path):
                return fault.frozen_ms
        return None

    def draw(self, path: str) -> Fault | None:
        """The fault this request gets (at most one; ``stale`` is applied separately)."""
        for fault in self._faults:
            if fault.kind == "stale" or not fault.matches(path):
                continue
            if fault.rate is not None and self._rng.random() >= fault.rate:
                continue
            fault.fired += 1
            if fault.count is not None:
                fault.count -= 1
                if fault.count == 0:
                    self._faults.remove(fault)
            return fault
        return None
