"""The one host:port parser and the one redact, shared by settings, tiers and the CLI."""

from __future__ import annotations

import pytest

from topics import ConfigError, check_url, redact, server_list, split_host_port


def test_split_host_port_takes_the_default_port_and_refuses_what_is_not_an_address() -> None:
    assert split_host_port("kafka:9093") == ("kafka", 9093)
    assert split_host_port(" redis ", 6379) == ("redis", 6379)
    for bad in ("kafka", ":9092", "kafka:ninety", "kafka:0", "kafka:65536", ""):
        with pytest.raises(ValueError, match="is not host:port"):
            split_host_port(bad)


def test_server_list_reads_a_url_or_a_bare_list_and_names_the_field() -> None:
    assert server_list("F", "kafka://a:1,b", "kafka", 9092) == ("a:1", "b:9092")
    assert server_list("F", "a:1, b:2/", "memcached", 11211) == ("a:1", "b:2")
    with pytest.raises(ConfigError, match="F: must start with kafka://"):
        server_list("F", "redis://a:1", "kafka", 9092)
    with pytest.raises(ConfigError, match="each server must be host:port"):
        server_list("F", "kafka://a:1,:2", "kafka", 9092)


def test_redact_hides_the_password_only() -> None:
    assert redact("rediss://:s3cret@redis:6380/0") == "rediss://:***@redis:6380/0"
    assert redact("redis://user:pw@h:1/0") == "redis://user:***@h:1/0"
    assert redact("redis://h:6379/0") == "redis://h:6379/0"


@pytest.mark.parametrize(
    ("url", "secret", "kept"),
    [
        # redis-py reads ?password= and ?username= as credentials (issue 12, defect 7)
        ("redis://127.0.0.1:6390/0?password=hunter2", "hunter2", "redis://127.0.0.1:6390/0?"),
        ("redis://h:1/0?username=svc&password=pw9&db=2", "pw9", "db=2"),
        ("redis://h:1/0?username=svc-user", "svc-user", "username=***"),
        ("rediss://h:1/0?ssl_password=k3y&ssl_cert_reqs=none", "k3y", "ssl_cert_reqs=none"),
        ("kafka://b:9092?sasl_plain_password=s4sl", "s4sl", "kafka://b:9092"),
        ("redis://u:pw%40x@h:1/0?Password=also", "pw%40x", "redis://u:***@h:1/0"),
        ("redis://h:1/0?Password=also", "also", "Password=***"),
    ],
)
def test_redact_hides_every_form_of_secret_a_url_can_carry(
    url: str, secret: str, kept: str
) -> None:
    out = redact(url)
    assert secret not in out
    assert kept in out


def test_redact_of_an_unparsable_url_echoes_no_part_of_it() -> None:
    assert redact("redis://:hunter2@[::1") == "redis://***"
    assert "hunter2" not in redact("hunter2@[bad")


def test_check_url_names_the_field_and_hides_the_password() -> None:
    assert check_url("F", "redis://h:6379/0", ("redis",)) == "redis://h:6379/0"
    for bad, problem in (
        ("redis://:hunter2@h:notaport/0", "not a valid URL"),
        ("redis://:hunter2@[::1/0", "not a valid URL"),
        ("http://:hunter2@h:1", "must be redis://"),
        ("redis://:hunter2@:6379/0", "needs a host"),
    ):
        with pytest.raises(ConfigError, match=problem) as info:
            check_url("WARMFLEET_REDIS_URL", bad, ("redis",))
        assert str(info.value).startswith("WARMFLEET_REDIS_URL: ")
        assert "hunter2" not in str(info.value)
