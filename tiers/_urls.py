"""Tiers chosen by URL scheme, parsed once::

memory://?max_entries=50000
memcached://h1:11211[,h2:11211][?pool_size=4]
redis://[:password@]host:6379/0    rediss://... (TLS)
redis+cluster://host:7000[?...]    rediss+cluster://... (Cluster, TLS)
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from tiers._memcached import MemcachedTier
from tiers._memory import MemoryTier
from tiers._protocol import Tier
from tiers._redis import RedisTier
from topics import ConfigError, server_list
from topics import redact as _redact

SCHEMES = ("memory", "memcached", "redis", "rediss", "redis+cluster", "rediss+cluster")


def _int_option(url: str, query: dict[str, list[str]], name: str, default: int) -> int:
    raw = query.get(name, [str(default)])[-1]
    if not raw.isdigit() or int(raw) < 1:
        raise ConfigError(f"cache url {name}", _redact(url), f"{name} must be a positive integer")
    return int(raw)


def tier_from_url(url: str) -> Tier:
    scheme = url.split("://", 1)[0] if "://" in url else ""
    if scheme not in SCHEMES:
        raise ConfigError("cache url", _redact(url), "scheme must be one of " + ", ".join(SCHEMES))
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    if scheme == "memory":
        admission = query.get("admission", ["1"])[-1]
        if admission not in ("0", "1", "true", "false"):
            raise ConfigError("cache url admission", url, "admission must be 1/0 or true/false")
        return MemoryTier(
            _int_option(url, query, "max_entries", 50_000), admission=admission in ("1", "true")
        )
    if scheme == "memcached":
        servers = server_list("cache url", parts.netloc, "memcached", 11211)
        return MemcachedTier(servers, pool_size=_int_option(url, query, "pool_size", 4))
    if not parts.hostname:
        raise ConfigError("cache url", _redact(url), "needs a host")
    if scheme.endswith("+cluster"):
        return RedisTier(url.replace("+cluster://", "://", 1), cluster=True)
    return RedisTier(url)
