"""The chaos suite's arithmetic, without servers: windows, gaps, freshness, breakers, goals,
and the guard that keeps it off the shared stack."""

from __future__ import annotations

import socket
import subprocess

import pytest

from chaos import SCENARIOS, Result, faults_stack
from chaos._fleet import warmfleet_command
from chaos._load import NO_ANSWER, Sample, percentile, window
from chaos._measure import (
    Ledger,
    Observation,
    Timeline,
    breaker_back_s,
    fresh_again_s,
    longest_gap_s,
)
from chaos._runner import fleet_ports, goals


def test_window_counts_what_a_reader_should_not_get() -> None:
    samples = [
        Sample(1.0, 200, 0.001),
        Sample(1.1, 404, 0.002),  # a warm key missing: counted
        Sample(1.2, 404, 0.003, cold=True),  # a cold key's right answer: not counted
        Sample(1.3, 200, 0.004, cold=True),  # a cold key answered 200: wrong
        Sample(1.4, 503, 0.005),
        Sample(1.5, NO_ANSWER, 2.0),
        Sample(9.0, 500, 0.1),  # outside the window
    ]
    w = window(samples, 1.0, 2.0)
    assert (w.requests, w.non_2xx, w.server_errors, w.no_answer) == (6, 4, 1, 1)
    assert w.max_ms == 2000.0 and w.p99_ms == 2000.0
    assert percentile([float(i) for i in range(1, 101)], 0.99) == 99.0
    assert percentile([], 0.5) is None


def test_longest_gap_includes_the_edges() -> None:
    assert longest_gap_s([10_000, 25_000, 40_000], 5_000, 50_000) == 15.0
    assert longest_gap_s([10_000, 12_000], 5_000, 50_000) == 38.0  # nothing after 12 s
    assert longest_gap_s([], 0, 1_000) is None


def _obs(at: float, wall_ms: float, served: dict[str, int | None], **brk: float) -> Observation:
    breakers = {("reader", t): v for t, v in brk.items()}
    return Observation(at, wall_ms, breakers, {}, None, served)


def test_fresh_again_and_breaker_back() -> None:
    t = Timeline(fleet=None, base_url="")  # type: ignore[arg-type]
    t.points = [
        _obs(10.0, 100_000, {"binance": 70_000, "okx": 95_000}, redis=0.0),
        _obs(11.0, 101_000, {"binance": 70_000, "okx": 95_000}, redis=1.0),  # fault
        _obs(20.0, 110_000, {"binance": 70_000, "okx": 95_000}, redis=1.0),  # restored
        _obs(21.5, 111_500, {"binance": 100_000, "okx": 95_000}, redis=1.0),
        _obs(23.0, 113_000, {"binance": 100_000, "okx": 99_000}, redis=0.0),
    ]
    # binance 40 s old until 21.5 s; both <= 20 s old from 21.5 s on
    assert fresh_again_s(t, 20.0, ("binance", "okx")) == 1.5
    assert fresh_again_s(t, 20.0, ("okx",)) == 0.0
    assert breaker_back_s(t, "redis", 10.5, 20.0) == (True, 3.0)
    assert breaker_back_s(t, "memcached", 10.5, 20.0) == (False, None)


def test_goals_mark_required_misses_and_watched_ones() -> None:
    ledger = Ledger(produced=10, expected=10, processed=10, observed=9, keys=2, keys_missing=0)
    assert (ledger.lost, ledger.doubled) == (1, 0)
    r = Result("worker-kill", "", "ns.", ledger=ledger, fresh_after_s=3.0)
    r.phase_after = "pre_market"
    r.goals = goals(SCENARIOS["worker-kill"], r)
    failed = {g.name: g.required for g in r.goals if not g.ok}
    assert failed == {"0 lost, 0 doubled": True, "phase held": False}
    assert not r.ok
    tier = Result("redis-kill", "", "ns.", ledger=ledger, fresh_after_s=None)
    tier.phase_after = "market_hours"
    tier.goals = goals(SCENARIOS["redis-kill"], tier)
    # in a tier scenario the ledger and freshness are watched, not required
    assert tier.ok and {g.name for g in tier.goals if not g.ok} == {
        "0 lost, 0 doubled",
        "fresh <= 30 s after restore",
    }


def test_the_chaos_stack_never_takes_the_shared_ports() -> None:
    cfg = faults_stack(28400)
    assert cfg.faults and (cfg.ports.kafka, cfg.ports.redis, cfg.ports.toxiproxy) == (
        28401,
        28403,
        28410,
    )
    with pytest.raises(ValueError, match="9092"):
        faults_stack(9091)
    with pytest.raises(ValueError, match="6379"):
        faults_stack(6376)


def test_cli_lists_and_refuses_unknown_scenarios() -> None:
    listed = subprocess.run(
        [*warmfleet_command(), "chaos", "--list"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    assert {line.split()[0] for line in listed.stdout.splitlines()} == set(SCENARIOS)
    bad = subprocess.run(
        [*warmfleet_command(), "chaos", "redis-melt"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert bad.returncode != 0 and "unknown scenario 'redis-melt'" in bad.stderr


def test_fleet_ports_sit_after_the_stack_and_name_a_taken_one() -> None:
    cfg = faults_stack(28700)
    assert fleet_ports(cfg) == (28720, 28724)  # below the ephemeral range (TIME_WAIT)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 28722))
        squatter.listen()
        with pytest.raises(RuntimeError, match="port 28722"):
            fleet_ports(cfg)
