"""The one rule mechanism of settings classes (topics.settings): what each rule lets through,
and the ConfigError naming ``section.field`` that every settings class relies on."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest

from ab._experiment import Config as ABConfig
from demand import DemandConfig
from readers import ReaderLimits, ServerOptions
from tiers import HotSetOptions, RedisTier
from topics import ConfigError
from topics.settings import Rule, at_least, between, check, check_fields, not_negative, positive


@dataclass(frozen=True, kw_only=True, slots=True)
class Sample:
    wait_s: float = positive(1.0)
    slack_s: float = not_negative(0.0)
    count: int = at_least(1, 3)
    port: int = between(0, 65535, 80, problem="must be 0 .. 65535", integer=True)
    name: str = "free"  # no rule: never checked

    def __post_init__(self) -> None:
        check_fields(self, "sample")


def test_defaults_pass_and_values_keep_their_type() -> None:
    sample = Sample(wait_s=2, count=5, name="")
    assert (sample.wait_s, sample.count, sample.port, sample.name) == (2, 5, 80, "")


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [("wait_s", 0, "must be a positive number"), ("wait_s", -0.5, "must be a positive number"),
     ("wait_s", math.nan, "must be a positive number"),
     ("wait_s", math.inf, "must be a positive number"),
     ("wait_s", True, "must be a positive number"), ("wait_s", "1", "must be a positive number"),
     ("slack_s", -1e-9, "must be a number >= 0"), ("count", 0, "must be a positive integer"),
     ("count", 2.0, "must be a positive integer"), ("count", False, "must be a positive integer"),
     ("port", 65536, "must be 0 .. 65535"), ("port", 80.0, "must be 0 .. 65535")],
)  # fmt: skip
def test_a_broken_rule_names_section_field_and_value(
    field: str, value: object, problem: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        Sample(**{field: value})  # type: ignore[arg-type]
    assert (caught.value.field, caught.value.problem) == (f"sample.{field}", problem)
    assert caught.value.value is value  # the value as given, for the message


def test_check_words_its_own_rule_and_an_empty_section_names_the_bare_field() -> None:
    check("x", 5, Rule(low=1, high=9, problem="must be 1 .. 9"))
    with pytest.raises(ConfigError, match=r"^x: must be 1 \.\. 9 \(got 10\)$"):
        check("x", 10, Rule(low=1, high=9, problem="must be 1 .. 9"))
    with pytest.raises(ConfigError, match=r"^workers: must be 1 \.\. 256"):
        ServerOptions(workers=0)


@pytest.mark.parametrize(
    ("build", "field", "problem"),
    [(lambda: DemandConfig(poll_s=0), "demand.poll_s", "must be a positive number"),
     (lambda: DemandConfig(lease_ms=99), "demand.lease_ms", "must be an int >= 100 (ms)"),
     (lambda: HotSetOptions(max_keys=0), "hot_set.max_keys", "must be a positive integer"),
     (lambda: ReaderLimits(header_timeout_s=0.05), "header_timeout_s", "must be 0.1 .. 3600 s"),
     (lambda: ReaderLimits(max_connections=0), "max_connections", "must be >= 1"),
     (lambda: ReaderLimits(backlog=127), "backlog", "must be >= 128"),
     (lambda: ServerOptions(port=-1), "port", "must be 0 .. 65535"),
     (lambda: ABConfig(symbols=0), "ab.symbols", "must be a positive integer"),
     (lambda: ABConfig(jitter_s=-1.0), "ab.jitter_s", "must be a number >= 0"),
     (lambda: ABConfig(direct_l1_entries=-1), "ab.direct_l1_entries", "must be an int >= 0"),
     (lambda: RedisTier(max_keys_per_script=0), "redis.max_keys_per_script", "must be >= 1"),
     (lambda: RedisTier(max_keys_per_script=2.5), "redis.max_keys_per_script", "must be >= 1")],
)  # fmt: skip
def test_every_settings_class_checks_its_fields_through_the_rules(
    build: object, field: str, problem: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        build()  # type: ignore[operator]
    assert (caught.value.field, caught.value.problem) == (field, problem)


def test_the_settings_classes_accept_their_edges() -> None:
    assert ABConfig(zipf_s=0.0, latency_s=0.0, direct_l1_entries=0).direct_l1_entries == 0
    assert ReaderLimits(header_timeout_s=3600, backlog=128).backlog == 128
    assert ServerOptions(port=0, workers=256).workers == 256
    assert DemandConfig(lease_ms=100).lease_ms == 100
