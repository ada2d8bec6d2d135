"""phases.toml validation: an invalid config is refused with a message naming field and value."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from schedules import DEFAULT_PATH, Phase, load_config
from topics import ConfigError

GOOD = DEFAULT_PATH.read_text(encoding="utf-8")


def test_the_packaged_config_loads() -> None:
    config = load_config(DEFAULT_PATH)
    assert [ex.name for ex in config.exchanges] == ["binance", "okx"]
    assert config.calendar.timezone.key == "America/New_York"
    assert config.calendar.intervals_s[Phase.WEEKEND] == 600
    assert len(config.calendar.holidays) == 20
    assert config.boost.factor == 0.5 and config.deadline_s == 8


def _edit(old: str, new: str) -> str:
    assert old in GOOD, old
    return GOOD.replace(old, new, 1)


@pytest.mark.parametrize(
    ("text", "field", "value"),
    [
        (_edit("weekend = 600", "weekend = -5"), "phases.intervals.weekend", "-5"),
        (_edit("weekend = 600", 'weekend = "ten"'), "phases.intervals.weekend", "'ten'"),
        (_edit("overnight = 300\n", ""), "phases.intervals.overnight", "None"),
        (_edit("weekend = 600", "wekend = 600"), "phases.intervals.wekend", "600"),
        (_edit('open = "09:30"', 'open = "25:00"'), "sessions.open", "'25:00'"),
        (_edit('open = "09:30"', 'open = "03:00"'), "sessions.open", "'03:00'"),
        (_edit("2026-04-03,", '"2026-02-30",'), "holidays[3]", "'2026-02-30'"),
        (_edit('"America/New_York"', '"Mars/Olympus"'), "timezone", "'Mars/Olympus'"),
        (_edit('"tue", "wed"', '"tue", "funday"'), "trading_days[2]", "'funday'"),
        (
            _edit('["tickers", "books", "candles"]   #', '["tickers", "signals"]   #'),
            "warm.exchanges.binance.data_types[1]",
            "'signals'",
        ),
        (
            _edit("symbols = []                 ", 'symbols = ["BTCUSDT"]'),
            "warm.exchanges.binance.symbols[0]",
            "'BTCUSDT'",
        ),
        (
            _edit("min_interval_s = 5\n", "min_interval_s = 0\n"),
            "warm.exchanges.binance.min_interval_s",
            "0",
        ),
        (
            _edit("requests_per_s = 10\n", "requests_per_s = 0\n"),
            "warm.exchanges.binance.requests_per_s",
            "0",
        ),
        (_edit("factor = 0.5", "factor = 2"), "boost.factor", "2"),
        (_edit("deadline_s = 8", "deadline_s = -1"), "warm.deadline_s", "-1"),
        (_edit("candles = 2 ", "candels = 2 "), "phases.multipliers.candels", "2"),
    ],
)
def test_an_invalid_config_is_refused_naming_field_and_value(
    tmp_path: Path, text: str, field: str, value: str
) -> None:
    path = tmp_path / "phases.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}: ")
    assert f"(got {value})" in str(info.value)


def test_broken_toml_and_missing_file_are_config_errors(tmp_path: Path) -> None:
    path = tmp_path / "phases.toml"
    path.write_text("timezone = \n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path)
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.toml")


def test_clock_check_refuses_a_bad_file_with_the_field_on_stderr(tmp_path: Path) -> None:
    path = tmp_path / "phases.toml"
    path.write_text(_edit("weekend = 600", "weekend = 0"), encoding="utf-8")
    cmd = [sys.executable, "-m", "workers.cli", "clock", "--check"]
    bad = subprocess.run(
        cmd,
        env={"WARMFLEET_PHASES": str(path), "PATH": ""},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2
    assert "phases.intervals.weekend" in bad.stderr and "(got 0)" in bad.stderr
    good = subprocess.run(
        [*cmd, "--phases", str(DEFAULT_PATH)], capture_output=True, text=True, timeout=60
    )
    assert good.returncode == 0, good.stderr
    assert "binance/tickers: market_hours=15s" in good.stdout
