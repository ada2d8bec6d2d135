"""The clock's control state in Redis: the manual override, the leader lease, the last state.

Keys live under the key prefix, scoped by the fleet's namespace:
``virt:v2:control:phase_override``, ``virt:v2:control:clock_leader``,
``virt:v2:control:clock_state`` (with a namespace ``t1.``: ``virt:v2:control:t1.clock_leader``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import redis.asyncio as aioredis
import structlog
from redis.exceptions import RedisError

from schedules._calendar import Phase
from schedules._plan import Override, to_ms
from topics import KEY_PREFIX, KEY_VERSION, WarmfleetError, validate_key

log = structlog.get_logger(__name__)


class ClockError(WarmfleetError):
    """The clock's control store (Redis) or log (Kafka) could not be reached."""


def control_key(key_prefix: str, namespace: str, name: str) -> str:
    return validate_key(f"{key_prefix}:{KEY_VERSION}:control:{namespace}{name}")


@dataclass(frozen=True, slots=True)
class ControlKeys:
    override: str
    leader: str
    state: str

    @classmethod
    def for_fleet(cls, key_prefix: str = KEY_PREFIX, namespace: str = "") -> ControlKeys:
        return cls(
            override=control_key(key_prefix, namespace, "phase_override"),
            leader=control_key(key_prefix, namespace, "clock_leader"),
            state=control_key(key_prefix, namespace, "clock_state"),
        )


def _from_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


class OverrideStore:
    """``warmfleet phase set|clear`` and the clock's view of them. An override is a JSON
    value written with a PX expiry, so it ends by itself even if nobody clears it."""

    def __init__(self, redis: aioredis.Redis, key: str) -> None:
        self._redis, self.key = redis, key

    async def set(self, phase: Phase | str, duration_s: float, *, by: str = "") -> Override:
        if not duration_s > 0:
            raise ValueError(f"override duration must be positive, got {duration_s!r}")
        now = datetime.now(UTC)
        override = Override(Phase(phase), now + timedelta(seconds=duration_s), now)
        body = {
            "phase": override.phase.value,
            "until_ms": to_ms(override.until),
            "set_at_ms": to_ms(now),
            "by": by,
        }
        try:
            await self._redis.set(self.key, orjson.dumps(body), px=int(duration_s * 1000))
        except RedisError as exc:
            raise ClockError(f"cannot write the phase override to Redis: {exc}") from exc
        return override

    async def clear(self) -> bool:
        try:
            return bool(await self._redis.delete(self.key))
        except RedisError as exc:
            raise ClockError(f"cannot delete the phase override in Redis: {exc}") from exc

    async def get(self) -> Override | None:
        """The active override, or None. A malformed value is logged and ignored (the
        calendar rules), never a crash."""
        raw = await _read(self._redis, self.key, "the phase override")
        if raw is None:
            return None
        try:
            body = orjson.loads(raw)
            override = Override(
                Phase(body["phase"]),
                _from_ms(int(body["until_ms"])),
                _from_ms(int(body.get("set_at_ms", 0))),
            )
        except (orjson.JSONDecodeError, KeyError, ValueError, TypeError) as exc:
            log.warning("override_malformed", key=self.key, error=str(exc), raw=raw[:200])
            return None
        return override if override.active(datetime.now(UTC)) else None


# compare-and-extend / compare-and-delete: only the owner touches the lease
_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""


class LeaderLease:
    """One active clock: ``SET key owner NX PX ttl``, renewed with a compare-and-extend.

    ``hold()`` takes the lease when free, or renews it when ours. When Redis cannot be
    reached, a leader stays leader only while its last confirmed lease is still valid on its
    own monotonic clock (minus a safety margin), then steps down — so two clocks never both
    believe they lead for longer than the clock drift over one TTL.
    """

    def __init__(self, redis: aioredis.Redis, key: str, owner: str, ttl_s: float = 5.0) -> None:
        if ttl_s <= 0:
            raise ValueError(f"lease ttl must be positive, got {ttl_s!r}")
        self._redis, self.key, self.owner, self.ttl_s = redis, key, owner, ttl_s
        self._valid_until = 0.0  # monotonic
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)

    @property
    def held(self) -> bool:
        return time.monotonic() < self._valid_until

    async def hold(self) -> bool:
        """True when this process holds the lease after the call."""
        started = time.monotonic()
        ttl_ms = int(self.ttl_s * 1000)
        try:
            ok = bool(await self._renew(keys=[self.key], args=[self.owner, ttl_ms]))
            if not ok:
                ok = bool(await self._redis.set(self.key, self.owner, nx=True, px=ttl_ms))
        except RedisError as exc:
            log.warning("lease_unreachable", key=self.key, error=str(exc), held=self.held)
            return self.held
        # the margin: our view of the TTL starts when we asked, and Redis's clock may run fast
        self._valid_until = started + self.ttl_s * 0.8 if ok else 0.0
        return ok

    async def release(self) -> None:
        self._valid_until = 0.0
        try:
            await self._release(keys=[self.key], args=[self.owner])
        except RedisError as exc:
            log.warning("lease_release_failed", key=self.key, error=str(exc))

    async def holder(self) -> str | None:
        raw = await _read(self._redis, self.key, "the leader lease")
        return None if raw is None else raw.decode() if isinstance(raw, bytes) else str(raw)


async def write_state(redis: aioredis.Redis, key: str, body: dict[str, Any], ttl_s: float) -> None:
    """The leader's current state, for ``warmfleet phase show`` (expires if the clock dies)."""
    try:
        await redis.set(key, orjson.dumps(body), px=int(ttl_s * 1000))
    except RedisError as exc:
        log.warning("clock_state_write_failed", key=key, error=str(exc))


async def read_state(redis: aioredis.Redis, key: str) -> dict[str, Any] | None:
    raw = await _read(redis, key, "the clock state")
    if raw is None:
        return None
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return body if isinstance(body, dict) else None


async def _read(redis: aioredis.Redis, key: str, what: str) -> Any:
    """``GET key``, a Redis failure translated into a ``ClockError`` naming ``what``."""
    try:
        return await redis.get(key)
    except RedisError as exc:
        raise ClockError(f"cannot read {what} from Redis: {exc}") from exc
