"""The experiment's statistics against textbook values: Welch's example from its
Wikipedia article, the Mann-Whitney example of scipy's documentation (Conover), Cohen's
power tables, and the report's own d = 3.06 / n = 2,128 inconsistency."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest

from ab import Reads, compare, power_analysis, summarise_arm
from ab._stats import cohen_d
from ab._workload import Item

# Welch's t-test, Wikipedia "Welch's t-test", example 1: t = -2.46, df = 24.99, p = 0.021
A1 = [27.5, 21.0, 19.0, 23.6, 17.0, 17.9, 16.9, 20.1, 21.9, 22.6, 23.1, 19.6, 19.0, 21.7, 21.4]
A2 = [27.1, 22.0, 20.8, 23.4, 23.4, 23.5, 25.8, 22.0, 24.8, 20.2, 21.9, 22.1, 22.9, 20.5, 24.4]


def reads_of(control: list[float], treatment: list[float], *, tier: str = "memory") -> Reads:
    """Reads with these latencies in ms (direct = control, multitier = treatment)."""
    reads = Reads()
    item = Item("tickers", "binance", "BTC/USDT")
    for arm, values in (("direct", control), ("multitier", treatment)):
        for i, ms in enumerate(values):
            reads.add(i * 0.1, arm, item, tier, ms / 1000.0, 1.0, True, "")
    return reads


def test_welch_matches_the_textbook_example() -> None:
    c = compare(reads_of(A1, A2), resamples=500, seed=1)
    assert c["welch_t"]["t"] == pytest.approx(-2.4554, abs=1e-4)
    assert c["welch_t"]["df"] == pytest.approx(24.9885, abs=1e-4)
    assert c["welch_t"]["p"] == pytest.approx(0.021378, abs=1e-6)
    logs = [math.log(x) for x in A1], [math.log(x) for x in A2]
    assert c["welch_t_log"]["geometric_mean_ratio"] == pytest.approx(
        math.exp(statistics.fmean(logs[0]) - statistics.fmean(logs[1]))
    )


def test_mann_whitney_matches_the_documented_example() -> None:
    # scipy.stats.mannwhitneyu's documented example (Conover): U1 = 17, exact p = 0.1111
    c = compare(reads_of([19, 22, 16, 29, 24], [20, 11, 17, 12]), resamples=200, seed=1)
    assert c["mann_whitney_u"]["u"] == 17.0
    assert c["mann_whitney_u"]["p"] == pytest.approx(1 / 9, abs=1e-9)
    assert c["mann_whitney_u"]["prob_control_slower"] == pytest.approx(17 / 20)


def test_cohens_d_is_the_pooled_sd_formula_with_a_bootstrap_interval_around_it() -> None:
    n1, n2 = len(A1), len(A2)
    pooled = math.sqrt(((n1 - 1) * statistics.variance(A1) + (n2 - 1) * statistics.variance(A2))
                       / (n1 + n2 - 2))  # fmt: skip
    expected = (statistics.fmean(A1) - statistics.fmean(A2)) / pooled
    assert float(cohen_d(np.array(A1), np.array(A2))) == pytest.approx(expected)
    c = compare(reads_of(A1, A2), resamples=2000, seed=3)
    d = c["cohen_d"]
    assert d["d"] == pytest.approx(expected) and d["d"] == pytest.approx(-0.8966, abs=1e-4)
    assert d["ci95"]["low"] < d["d"] < d["ci95"]["high"] < 0  # A1 is clearly faster
    assert c["mean_ratio"] == pytest.approx(statistics.fmean(A1) / statistics.fmean(A2))


def test_power_analysis_reproduces_cohens_table_and_checks_the_report() -> None:
    p = power_analysis(0.5)
    assert p["n_per_arm_for_observed_d"] == pytest.approx(63.77, abs=0.01)  # Cohen: 64
    assert p["n_per_arm_for_report_d"] == pytest.approx(3.01, abs=0.01)  # "about 3"
    assert p["d_detectable_with_report_n"] == pytest.approx(0.0859, abs=1e-4)  # not 3.06
    assert power_analysis(None)["n_per_arm_for_observed_d"] is None


def test_arm_summary_shares_sum_to_100_and_intervals_bracket_the_estimates() -> None:
    reads = Reads()
    item = Item("tickers", "binance", "BTC/USDT")
    rng = np.random.default_rng(5)
    tiers = ["memory"] * 80 + ["memcached"] * 10 + ["redis"] * 5 + ["origin"] * 4 + ["error"]
    for i, tier in enumerate(tiers):
        latency = 0.05 if tier == "origin" else float(rng.uniform(1e-5, 1e-3))
        age = float("nan") if tier == "error" else 20.0 if i % 2 else 5.0
        reads.add(i / 10, "direct", item, tier, latency, age, True, "X" if tier == "error" else "")
    a = summarise_arm(reads, "direct", duration_s=10.0, origin_requests=4, resamples=500, seed=2)
    assert a["reads"] == 100 and a["errors"] == 1 and a["error_rate_pct"] == 1.0
    assert sum(a["shares_pct"].values()) == pytest.approx(100.0)
    assert a["shares_pct"]["origin"] == pytest.approx(400 / 99)
    assert a["hit_rate_pct"] == pytest.approx(9500 / 99)
    lo, hi = a["ci95"]["mean_ms"]["low"], a["ci95"]["mean_ms"]["high"]
    assert lo < a["latency_ms"]["mean"] < hi
    tickers = a["served_age"]["tickers"]
    assert tickers["class_s"] == 15 and tickers["within"] is False  # half the reads are 20 s old
    assert tickers["within_pct"] == pytest.approx(100 * 50 / 99, abs=1)
    assert a["age_within_classes"] is False
    assert a["origin_requests_per_s"] == 0.4


def test_an_arm_without_enough_reads_gets_no_test_but_no_crash() -> None:
    c = compare(reads_of([1.0, 2.0], [1.0]), resamples=100, seed=1)
    assert "welch_t" not in c and "fewer than 3" in c["error"]
