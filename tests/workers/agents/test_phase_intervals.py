"""The agents' intervals before any PhaseChange: the loaded phase config's, one table
(issue 11: the agents had a table of their own, signals 15 s and candles 60 s where
phases.toml says 30 s, and unknown data types fell back to tickers instead of default)."""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime

import orjson

from schedules import Phase, default_path, load_config, parse_config
from workers.agents import PhaseFollower, config_intervals

MARKET_HOURS = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)  # a Tuesday, 10:00 in New York
WEEKEND = datetime(2026, 12, 5, 15, 0, tzinfo=UTC)  # a Saturday


def test_fallback_intervals_are_the_configs() -> None:
    config = load_config(default_path())
    assert config.calendar.phase_at(MARKET_HOURS) is Phase.MARKET_HOURS
    at_market = config_intervals(config, MARKET_HOURS)
    assert at_market["signals"] == 30.0 and at_market["candles"] == 30.0  # phases.toml
    assert at_market["tickers"] == 15.0 and at_market["default"] == 15.0
    assert config_intervals(config, WEEKEND)["tickers"] == 600.0


def test_the_follower_starts_from_the_config_now_and_unknown_types_use_default() -> None:
    config = load_config(default_path())
    follower = PhaseFollower("127.0.0.1:1", "control.phase", config=config)
    now = config_intervals(config, datetime.now(UTC))
    assert {dt: follower.interval(dt) for dt in now} == now
    assert follower.interval("no-such-type") == now["default"]


def test_default_follows_the_default_row_not_tickers() -> None:
    raw = tomllib.loads(default_path().read_text())
    raw["phases"]["multipliers"]["default"] = 7
    config = parse_config(raw)
    follower = PhaseFollower("127.0.0.1:1", "control.phase", config=config)
    now = config_intervals(config, datetime.now(UTC))
    assert follower.interval("whatever") == now["default"] == 7 * now["tickers"]


def test_a_phase_change_overrides_and_keeps_the_config_for_what_it_does_not_name() -> None:
    config = load_config(default_path())
    follower = PhaseFollower("127.0.0.1:1", "control.phase", config=config)
    before = dict(follower.intervals)
    body = {"phase": "weekend", "intervals_s": {"tickers": 600.0}, "at_ms": 1,
            "next_transition_ms": None}  # fmt: skip
    assert follower.apply(orjson.dumps(body)) and follower.phase == "weekend"
    assert follower.interval("tickers") == 600.0
    assert follower.interval("candles") == before["candles"]
    for bad in (b"{", orjson.dumps({**body, "intervals_s": {"tickers": -5}}), None):
        assert not follower.apply(bad)
    assert follower.interval("tickers") == 600.0 and follower.changes == 1
