"""Cache-key builder: ``{prefix}:{version}:{domain}:{type}:{ttl_hint}[:{id}...]``.

Keys are validated where they are built: memcached forbids whitespace and control
characters and keys over 250 bytes, so a bad key is a ``ValueError`` naming it — never a
silent truncation.
"""

from __future__ import annotations

from dataclasses import dataclass

from topics._datatypes import DataType

KEY_PREFIX = "virt"
KEY_VERSION = "v2"
MAX_KEY_BYTES = 250


@dataclass(frozen=True, slots=True)
class KeySpec:
    domain: str
    type: str
    ttl_hint: str  # the data type's nominal freshness class (stable; not the live TTL)


#: how each data type is spelled inside a key (the DESIGN.md examples are the contract)
KEY_SPECS: dict[DataType, KeySpec] = {
    DataType.TICKERS: KeySpec("market", "ticker", "15s"),
    DataType.BOOKS: KeySpec("market", "book", "15s"),
    DataType.CANDLES: KeySpec("market", "candles", "1m"),
    DataType.OVERVIEW: KeySpec("market", "overview", "1m"),
    DataType.SIGNALS: KeySpec("analysis", "signals", "5m"),
    DataType.VOLATILITY: KeySpec("analysis", "volatility", "1m"),
    DataType.DEFAULT: KeySpec("misc", "value", "1m"),
}


def validate_key(key: str) -> str:
    """Return ``key`` unchanged, or raise ``ValueError`` naming it."""
    if not isinstance(key, str) or not key:
        raise ValueError(f"cache key must be a non-empty str, got {key!r}")
    size = len(key.encode("utf-8"))
    if size > MAX_KEY_BYTES:
        raise ValueError(f"cache key is {size} bytes, over the {MAX_KEY_BYTES}-byte limit: {key!r}")
    for ch in key:
        if ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F:
            raise ValueError(f"cache key contains whitespace or a control character: {key!r}")
    return key


def build_key(
    domain: str,
    type_: str,
    ttl_hint: str,
    *ids: str,
    prefix: str = KEY_PREFIX,
    version: str = KEY_VERSION,
) -> str:
    parts = [prefix, version, domain, type_, ttl_hint, *ids]
    for part in parts:
        if not part:
            raise ValueError(f"cache key part is empty in {parts!r}")
    return validate_key(":".join(parts))


def key_for(data_type: DataType | str, *ids: str, prefix: str = KEY_PREFIX) -> str:
    """The key a data type is cached under, e.g. ``key_for("tickers", "binance", "BTC/USDT")``
    -> ``virt:v2:market:ticker:15s:binance:BTC/USDT``."""
    spec = KEY_SPECS[DataType.parse(str(data_type))]
    return build_key(spec.domain, spec.type, spec.ttl_hint, *ids, prefix=prefix)


def data_type_of(key: str) -> DataType:
    """Inverse of ``key_for`` on the (domain, type) segments; unknown keys -> ``default``."""
    parts = key.split(":")
    if len(parts) >= 5:
        for data_type, spec in KEY_SPECS.items():
            if (parts[2], parts[3]) == (spec.domain, spec.type):
                return data_type
    return DataType.DEFAULT
