"""The origin-state contract: which exchanges' pollers have their breaker open, in Redis.

Written by the pollers (``workers.pollers._origin``), read by the readers
(``readers.OriginWatch``), on the fleet's Redis:

* one hash, ``{prefix}:v2:origin:breakers``; one field per exchange whose poller breaker is
  open (or half-open), value ``{"state", "since_ms", "until_ms", "failures"}`` (JSON);
* the publisher rewrites its field every ``REFRESH_S`` while the breaker stays open, with
  ``until_ms`` ``HOLD_S`` ahead (and the hash's TTL as long), and deletes it when the
  breaker closes;
* a reader treats a field past its ``until_ms`` as gone, so a poller that dies with its
  breaker open stops counting after ``HOLD_S``, and no state outlives the fleet.

Why a hash polled once a second rather than the pub/sub bus: a reader learns of an outage
within a second either way, a reader that starts (or reconnects) mid-outage learns at its
first poll without replaying anything, and the cost is one HGETALL per reader per second.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
import structlog

log = structlog.get_logger(__name__)

#: seconds a published "open" holds without a refresh
HOLD_S = 5.0
#: how often the publisher refreshes and a reader polls
REFRESH_S = 1.0


def origin_key(prefix: str) -> str:
    return f"{prefix}:v2:origin:breakers"


def encode_state(state: str, since_ms: int, until_ms: int, failures: int) -> bytes:
    return orjson.dumps(
        {"state": state, "since_ms": since_ms, "until_ms": until_ms, "failures": failures}
    )


def failing_now(fields: Mapping[Any, Any], now_ms: int) -> frozenset[str]:
    """The exchanges whose published state still holds at ``now_ms`` (pure). A field that
    cannot be read counts as not failing, and is logged."""
    failing = set()
    for raw_name, raw in fields.items():
        name = raw_name.decode() if isinstance(raw_name, bytes) else str(raw_name)
        try:
            state = orjson.loads(raw)
            until = int(state["until_ms"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            log.warning("origin_state_unreadable", exchange=name[:40], value=repr(raw)[:80])
            continue
        if until > now_ms:
            failing.add(name)
    return frozenset(failing)


def redis_client(url: str) -> Any:
    """A redis.asyncio client for ``redis://``, ``rediss://`` or ``redis(s)+cluster://``."""
    import redis.asyncio as aioredis

    if "+cluster://" in url:
        return aioredis.RedisCluster.from_url(url.replace("+cluster://", "://", 1))
    return aioredis.from_url(url)
