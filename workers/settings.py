"""Process settings: typed, frozen, read once at start from ``WARMFLEET_*`` variables.

Every URL is parsed here, once. An invalid value stops the process with a ``ConfigError``
that names the variable and the value. Defaults point at the local stack
(`warmfleet stack up`), so a developer needs to set nothing.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from topics import KEY_PREFIX, ConfigError, Limits, check_url, server_list

ENV_PREFIX = "WARMFLEET_"


@dataclass(frozen=True, slots=True)
class Settings:
    kafka_servers: tuple[str, ...] = ("127.0.0.1:9092",)
    redis_url: str = field(default="redis://127.0.0.1:6379/0", repr=False)  # may hold a password
    memcached_servers: tuple[str, ...] = ("127.0.0.1:11211",)
    memory_url: str = "memory://?max_entries=50000"
    #: prefixed to every topic name and consumer group; tests and side-by-side fleets use it
    namespace: str = ""
    #: first segment of every cache key (DESIGN.md: ``virt``)
    key_prefix: str = KEY_PREFIX
    log_level: str = "INFO"
    log_format: str = "auto"
    #: exchange id -> REST base URL override (the simulator); empty means the real exchange
    exchange_urls: Mapping[str, str] = field(default_factory=dict)
    metrics_port: int = 0  # 0 = no metrics HTTP server in this process
    #: Kafka security: PLAINTEXT (local stack), SASL_PLAINTEXT, SASL_SSL or SSL
    kafka_security_protocol: str = "PLAINTEXT"
    kafka_sasl_mechanism: str | None = None  # PLAIN, SCRAM-SHA-256, SCRAM-SHA-512
    kafka_sasl_username: str | None = None
    kafka_sasl_password: str | None = field(default=None, repr=False)
    #: the record contract's window and size cap (topics/_contract.py; docs/contracts.md)
    contract_limits: Limits = field(default_factory=Limits)

    def kafka_client_options(self) -> dict[str, Any]:
        """Keyword arguments for every aiokafka client (producer, consumer, admin)."""
        if self.kafka_security_protocol == "PLAINTEXT":
            return {}
        options: dict[str, Any] = {"security_protocol": self.kafka_security_protocol}
        if "SSL" in self.kafka_security_protocol:
            from aiokafka.helpers import create_ssl_context

            options["ssl_context"] = create_ssl_context()
        if self.kafka_sasl_mechanism:
            options.update(
                sasl_mechanism=self.kafka_sasl_mechanism,
                sasl_plain_username=self.kafka_sasl_username,
                sasl_plain_password=self.kafka_sasl_password,
            )
        return options

    @property
    def kafka_url(self) -> str:
        return "kafka://" + ",".join(self.kafka_servers)

    @property
    def memcached_url(self) -> str:
        return "memcached://" + ",".join(self.memcached_servers)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env

        def get(name: str) -> str | None:
            value = env.get(ENV_PREFIX + name)
            return value if value not in (None, "") else None

        kwargs: dict[str, object] = {}
        if (raw := get("KAFKA_URL")) is not None:
            kwargs["kafka_servers"] = server_list("WARMFLEET_KAFKA_URL", raw, "kafka", 9092)
        if (raw := get("REDIS_URL")) is not None:
            kwargs["redis_url"] = check_url(
                "WARMFLEET_REDIS_URL", raw, ("redis", "rediss", "redis+cluster", "rediss+cluster")
            )
        if (raw := get("MEMCACHED_URL")) is not None:
            kwargs["memcached_servers"] = server_list(
                "WARMFLEET_MEMCACHED_URL", raw, "memcached", 11211
            )
        if (raw := get("MEMORY_URL")) is not None:
            if not raw.startswith("memory://"):
                raise ConfigError("WARMFLEET_MEMORY_URL", raw, "must start with memory://")
            kwargs["memory_url"] = raw
        if (raw := get("NAMESPACE")) is not None:
            kwargs["namespace"] = raw
        if (raw := get("KEY_PREFIX")) is not None:
            kwargs["key_prefix"] = raw
        if (raw := get("LOG_LEVEL")) is not None:
            if raw.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
                raise ConfigError(
                    "WARMFLEET_LOG_LEVEL", raw, "must be DEBUG, INFO, WARNING or ERROR"
                )
            kwargs["log_level"] = raw.upper()
        if (raw := get("LOG_FORMAT")) is not None:
            if raw not in ("auto", "console", "json"):
                raise ConfigError("WARMFLEET_LOG_FORMAT", raw, "must be auto, console or json")
            kwargs["log_format"] = raw
        if (raw := get("EXCHANGE_URLS")) is not None:
            urls: dict[str, str] = {}
            for item in raw.split(","):
                name, sep, url = item.strip().partition("=")
                if not sep or not name or not url.startswith(("http://", "https://")):
                    raise ConfigError(
                        "WARMFLEET_EXCHANGE_URLS",
                        raw,
                        "must be exchange=http://host:port[,exchange=...]",
                    )
                urls[name] = url.rstrip("/")
            kwargs["exchange_urls"] = urls
        if (raw := get("METRICS_PORT")) is not None:
            if not raw.isdigit() or int(raw) > 65535:
                raise ConfigError("WARMFLEET_METRICS_PORT", raw, "must be a port number or 0")
            kwargs["metrics_port"] = int(raw)
        kwargs.update(_kafka_security(get))
        contract = {
            name: int(raw)
            for name, var in _CONTRACT_VARS.items()
            if (raw := get(var)) is not None and _positive_int(ENV_PREFIX + var, raw)
        }
        if contract:
            kwargs["contract_limits"] = Limits(**contract)
        return cls(**kwargs)  # type: ignore[arg-type]


_CONTRACT_VARS = {
    "max_ahead_ms": "CONTRACT_MAX_AHEAD_MS",
    "max_age_ms": "CONTRACT_MAX_AGE_MS",
    "max_record_bytes": "CONTRACT_MAX_RECORD_BYTES",
}


def _positive_int(name: str, raw: str) -> bool:
    if not raw.isdigit() or int(raw) <= 0:
        raise ConfigError(name, raw, "must be a positive integer")
    return True


PROTOCOLS = ("PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL", "SSL")
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


def _kafka_security(get: Any) -> dict[str, object]:
    """WARMFLEET_KAFKA_SECURITY_PROTOCOL and WARMFLEET_KAFKA_SASL_{MECHANISM,USERNAME,PASSWORD}.

    Credentials without a protocol mean SASL_PLAINTEXT; a mechanism without both the user
    name and the password is refused (naming the missing variable, never the password)."""
    out: dict[str, object] = {}
    mechanism, user, password = (
        get("KAFKA_SASL_MECHANISM"),
        get("KAFKA_SASL_USERNAME"),
        get("KAFKA_SASL_PASSWORD"),
    )
    protocol = get("KAFKA_SECURITY_PROTOCOL")
    if protocol is not None and protocol.upper() not in PROTOCOLS:
        raise ConfigError(
            "WARMFLEET_KAFKA_SECURITY_PROTOCOL", protocol, "must be " + "/".join(PROTOCOLS)
        )
    if user is not None or password is not None or mechanism is not None:
        mechanism = (mechanism or "PLAIN").upper()
        if mechanism not in MECHANISMS:
            raise ConfigError(
                "WARMFLEET_KAFKA_SASL_MECHANISM", mechanism, "must be " + "/".join(MECHANISMS)
            )
        if user is None:
            raise ConfigError("WARMFLEET_KAFKA_SASL_USERNAME", None, "is required with SASL")
        if password is None:
            raise ConfigError("WARMFLEET_KAFKA_SASL_PASSWORD", "(unset)", "is required with SASL")
        protocol = (protocol or "SASL_PLAINTEXT").upper()
        if not protocol.startswith("SASL_"):
            raise ConfigError(
                "WARMFLEET_KAFKA_SECURITY_PROTOCOL",
                protocol,
                "must be SASL_PLAINTEXT or SASL_SSL when SASL credentials are set",
            )
        out.update(
            kafka_sasl_mechanism=mechanism, kafka_sasl_username=user, kafka_sasl_password=password
        )
    if protocol is not None:
        out["kafka_security_protocol"] = protocol.upper()
    return out
