"""The one host:port parser and the one redact, shared by settings, tiers and the CLI."""

from __future__ import annotations

import pytest

from topics import ConfigError, redact, server_list, split_host_port


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
