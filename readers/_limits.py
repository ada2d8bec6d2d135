"""The reader's server settings: where it listens, how many workers, and its limits.

The limits are what keeps idle or hostile clients from taking the reader down:

* ``header_timeout_s`` — a connection must send a complete request head within this many
  seconds of opening, and again within this many seconds of each answer. The HTTP layer
  (hyper, under granian) runs one timer for both, so it is the header-read timeout and the
  keep-alive idle timeout at once: an idle socket is closed after it.
* ``max_connections`` — connections one worker process holds open at once. Past it the
  worker stops accepting; new connections wait in the kernel's listen backlog until one
  closes (each idle one does within ``header_timeout_s``), so file descriptors never run out.
* ``max_url_bytes`` / ``max_header_bytes`` — larger requests are a 414 / 431 with a JSON body.
  ``buffer_bytes`` is the HTTP layer's read buffer per connection: a request head larger than
  it is refused by the HTTP layer itself (431) before the reader sees it.

``ServerOptions.server`` picks the HTTP layer: ``native`` (``readers._http``: asyncio +
httptools on uvloop, the default) or ``granian`` (the fallback; docs/reader.md).
"""

from __future__ import annotations

import argparse
import os
import resource
from dataclasses import asdict, dataclass, field

import orjson

from topics import ConfigError
from topics.settings import at_least, between, check_fields

#: file descriptors a worker keeps for itself beyond its client connections (tiers, logs ...)
FD_RESERVE = 256
_ENV = "WARMFLEET_READER_SERVER"  # how the parent hands the options to its worker processes
SERVERS = ("native", "granian")


@dataclass(frozen=True, slots=True)
class ReaderLimits:
    header_timeout_s: float = between(0.1, 3600, 5.0, problem="must be 0.1 .. 3600 s")
    max_connections: int = at_least(1, 4096, problem="must be >= 1")
    max_url_bytes: int = 8190
    max_header_bytes: int = 16384
    buffer_bytes: int = 65536
    backlog: int = at_least(128, 1024, problem="must be >= 128")

    def __post_init__(self) -> None:
        check_fields(self, "")
        if self.max_url_bytes < 256 or self.max_header_bytes < 1024:
            raise ConfigError(
                "max_url_bytes/max_header_bytes",
                (self.max_url_bytes, self.max_header_bytes),
                "must be >= 256 / >= 1024 bytes",
            )
        if self.buffer_bytes < max(8192, self.max_url_bytes + self.max_header_bytes):
            raise ConfigError(
                "buffer_bytes",
                self.buffer_bytes,
                "must be >= 8192 and hold max_url_bytes + max_header_bytes, so the reader "
                "(not the HTTP layer) answers oversized requests",
            )


@dataclass(frozen=True, slots=True)
class ServerOptions:
    host: str = "127.0.0.1"
    port: int = between(0, 65535, 8080, problem="must be 0 .. 65535", integer=True)
    workers: int = between(1, 256, 1, problem="must be 1 .. 256", integer=True)
    limits: ReaderLimits = field(default_factory=ReaderLimits)
    server: str = "native"

    def __post_init__(self) -> None:
        check_fields(self, "")
        if self.server not in SERVERS:
            raise ConfigError("server", self.server, f"must be one of {', '.join(SERVERS)}")

    def to_env(self) -> dict[str, str]:
        return {_ENV: orjson.dumps(asdict(self)).decode()}

    @classmethod
    def from_env(cls) -> ServerOptions | None:
        """What the parent process handed down, in a worker process (None outside one)."""
        raw = os.environ.get(_ENV)
        if not raw:
            return None
        data = orjson.loads(raw)
        return cls(**{**data, "limits": ReaderLimits(**data["limits"])})


def usable_connections(wanted: int) -> int:
    """``wanted``, lowered to what this process's file descriptor limit can hold.

    The soft limit is raised to the hard one first (as servers do): the cap is only a cap
    if the worker can actually hold that many sockets plus its own files."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard and hard != resource.RLIM_INFINITY:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    if soft == resource.RLIM_INFINITY:
        return wanted
    return max(1, min(wanted, soft - FD_RESERVE))


def add_server_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``warmfleet reader`` (documented in docs/reader.md)."""
    d = ReaderLimits()
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="worker processes, each on the port with SO_REUSEPORT (default 1; about one per core)",
    )
    parser.add_argument(
        "--header-timeout",
        type=float,
        default=d.header_timeout_s,
        metavar="SECONDS",
        help="a connection must send a whole request head within this time of opening or of "
        f"the previous answer, else it is closed: the header-read and keep-alive idle "
        f"timeout (default {d.header_timeout_s:g})",
    )
    parser.add_argument(
        "--max-connections",
        type=int,
        default=d.max_connections,
        help="open connections per worker; past it new ones wait in the listen backlog "
        f"(default {d.max_connections}, lowered to what ulimit -n allows)",
    )
    parser.add_argument(
        "--backlog", type=int, default=d.backlog, help=f"listen backlog (default {d.backlog})"
    )
    parser.add_argument(
        "--server",
        choices=SERVERS,
        default="native",
        help="the HTTP layer: native (asyncio + httptools on uvloop, default) or granian "
        "(the fallback)",
    )


def server_options(args: argparse.Namespace) -> ServerOptions:
    """The parsed options as ``ServerOptions`` (a bad value: ConfigError naming it)."""
    limits = ReaderLimits(
        header_timeout_s=args.header_timeout,
        max_connections=args.max_connections,
        backlog=args.backlog,
    )
    return ServerOptions(
        host=args.host, port=args.port, workers=args.workers, limits=limits, server=args.server
    )
