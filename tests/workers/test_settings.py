from __future__ import annotations

import pytest

from topics import ConfigError, redact
from workers.settings import Settings


def test_defaults_point_at_the_local_stack() -> None:
    s = Settings.from_env({})
    assert s.kafka_url == "kafka://127.0.0.1:9092"
    assert s.redis_url == "redis://127.0.0.1:6379/0"
    assert s.memcached_url == "memcached://127.0.0.1:11211"
    assert s.kafka_client_options() == {}


def test_urls_are_parsed_once() -> None:
    s = Settings.from_env(
        {
            "WARMFLEET_KAFKA_URL": "kafka://k1:9092,k2",
            "WARMFLEET_MEMCACHED_URL": "memcached://m1:11211,m2:11311",
            "WARMFLEET_EXCHANGE_URLS": "binance=http://127.0.0.1:8899/,okx=http://127.0.0.1:8899",
        }
    )
    assert s.kafka_servers == ("k1:9092", "k2:9092")
    assert s.memcached_servers == ("m1:11211", "m2:11311")
    assert s.exchange_urls == {"binance": "http://127.0.0.1:8899", "okx": "http://127.0.0.1:8899"}


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("WARMFLEET_KAFKA_URL", "http://k:9092"),
        ("WARMFLEET_KAFKA_URL", "kafka://k:port"),
        ("WARMFLEET_REDIS_URL", "memcached://x"),
        ("WARMFLEET_REDIS_URL", "redis://127.0.0.1:notaport/0"),
        ("WARMFLEET_REDIS_URL", "redis://[::1/0"),
        ("WARMFLEET_REDIS_URL", "redis:///0"),
        ("WARMFLEET_LOG_LEVEL", "LOUD"),
        ("WARMFLEET_METRICS_PORT", "99999"),
        ("WARMFLEET_EXCHANGE_URLS", "binance"),
        ("WARMFLEET_KAFKA_SECURITY_PROTOCOL", "TLS"),
    ],
)
def test_bad_values_name_the_variable(variable: str, value: str) -> None:
    with pytest.raises(ConfigError, match=variable):
        Settings.from_env({variable: value})


@pytest.mark.parametrize(
    ("given", "missing"),
    [
        ("WARMFLEET_KAFKA_SASL_USERNAME", "WARMFLEET_KAFKA_SASL_PASSWORD"),
        ("WARMFLEET_KAFKA_SASL_PASSWORD", "WARMFLEET_KAFKA_SASL_USERNAME"),
    ],
)
def test_half_of_the_sasl_credentials_names_the_missing_half(given: str, missing: str) -> None:
    with pytest.raises(ConfigError, match=missing):
        Settings.from_env({given: "svc"})


def test_sasl_credentials_reach_the_kafka_clients_and_never_the_repr() -> None:
    s = Settings.from_env(
        {
            "WARMFLEET_KAFKA_SASL_MECHANISM": "scram-sha-512",
            "WARMFLEET_KAFKA_SASL_USERNAME": "svc",
            "WARMFLEET_KAFKA_SASL_PASSWORD": "s3cret-pw",
            "WARMFLEET_REDIS_URL": "rediss://:hunter2@redis:6380/0",
        }
    )
    options = s.kafka_client_options()
    assert options == {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "svc",
        "sasl_plain_password": "s3cret-pw",
    }
    assert "s3cret-pw" not in repr(s) and "hunter2" not in repr(s)
    assert redact(s.redis_url) == "rediss://:***@redis:6380/0"


def test_sasl_ssl_builds_a_tls_context() -> None:
    s = Settings.from_env(
        {
            "WARMFLEET_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "WARMFLEET_KAFKA_SASL_USERNAME": "svc",
            "WARMFLEET_KAFKA_SASL_PASSWORD": "pw",
        }
    )
    options = s.kafka_client_options()
    assert options["security_protocol"] == "SASL_SSL" and options["sasl_mechanism"] == "PLAIN"
    assert options["ssl_context"].check_hostname is True
