"""Addresses in settings and URLs, parsed one way everywhere: ``host:port`` server lists
(Kafka, Memcached) and passwords kept out of logs."""

from __future__ import annotations

from urllib.parse import urlsplit

from topics.errors import ConfigError


def redact(url: str) -> str:
    """The URL with any password replaced, for logs, errors and status output."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def split_host_port(server: str, default_port: int | None = None) -> tuple[str, int]:
    """``"host:port"`` (or ``"host"`` when there is a ``default_port``) -> ``(host, port)``;
    ``ValueError`` naming the server when it is not one."""
    text = server.strip()
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = text, "" if default_port is None else str(default_port)
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{server!r} is not host:port")
    return host, int(port)


def server_list(field: str, raw: str, scheme: str, default_port: int) -> tuple[str, ...]:
    """``scheme://h1:p1,h2:p2`` (or bare ``h1:p1,h2``) -> ``("h1:p1", "h2:p2")``, a missing
    port being ``default_port``; ``ConfigError`` naming ``field`` otherwise."""
    if "://" in raw and not raw.startswith(f"{scheme}://"):
        raise ConfigError(field, redact(raw), f"must start with {scheme}://")
    body = raw.split("://", 1)[1] if "://" in raw else raw
    out = []
    for part in body.strip("/").split(","):
        try:
            host, port = split_host_port(part, default_port)
        except ValueError:
            raise ConfigError(field, redact(raw), "each server must be host:port") from None
        out.append(f"{host}:{port}")
    return tuple(out)
