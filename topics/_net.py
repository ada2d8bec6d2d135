"""Addresses in settings and URLs, parsed one way everywhere: ``host:port`` server lists
(Kafka, Memcached) and passwords kept out of logs."""

from __future__ import annotations

from urllib.parse import urlsplit

from topics.errors import ConfigError

#: query parameters that carry credentials in the URL forms our drivers accept
#: (redis-py takes ``?password=`` and ``?username=``; SASL and token forms elsewhere)
SECRET_PARAMS = frozenset(
    {
        "password", "passwd", "pass", "pwd", "username", "user", "token", "secret",
        "api_key", "apikey", "key", "auth", "sasl_password", "sasl_plain_password",
        "sasl_username", "sasl_plain_username", "ssl_password", "access_token",
    }
)  # fmt: skip
HIDDEN = "***"


def redact(url: str) -> str:
    """The URL with every secret it can carry replaced, for logs, errors and status output:
    the userinfo password (``:pw@``), and credential query parameters (``?password=``,
    ``username=``, SASL and token forms). A string that is not a parsable URL keeps only its
    scheme, so a malformed URL with a password in it is never echoed back."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        scheme = url.split("://", 1)[0] if "://" in url else ""
        return f"{scheme}://{HIDDEN}" if scheme.isalnum() else HIDDEN
    netloc = parts.netloc
    if not netloc and "@" in url:  # no scheme: whatever stands before '@' may be userinfo
        return f"{HIDDEN}@{url.rpartition('@')[2]}"
    if password is not None:
        user, _, _ = netloc.rpartition("@")[0].partition(":")
        netloc = f"{user}:{HIDDEN}@{netloc.rpartition('@')[2]}"
    query = parts.query
    if query:
        pairs = []
        for pair in query.split("&"):
            name, sep, _ = pair.partition("=")
            secret = sep and name.lower().replace("-", "_") in SECRET_PARAMS
            pairs.append(f"{name}={HIDDEN}" if secret else pair)
        query = "&".join(pairs)
    if netloc == parts.netloc and query == parts.query:
        return url
    return parts._replace(netloc=netloc, query=query).geturl()


def check_url(field: str, raw: str, schemes: tuple[str, ...]) -> str:
    """``raw`` if it is a URL of one of ``schemes`` with a host and a valid port, else a
    ``ConfigError`` naming ``field`` (the value redacted), never a traceback later on."""
    try:
        parts = urlsplit(raw)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError as exc:
        raise ConfigError(field, redact(raw), f"is not a valid URL ({exc})") from None
    if parts.scheme not in schemes:
        raise ConfigError(field, redact(raw), "must be " + ", ".join(f"{s}://" for s in schemes))
    if not parts.hostname:
        raise ConfigError(field, redact(raw), "needs a host")
    return raw


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
