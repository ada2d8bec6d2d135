"""Statistics of a run, with scipy.stats and statsmodels (no hand-rolled tests).

``summarise_arm`` -> the per-arm figures; ``compare`` -> Welch's t-test on latency and on
log-latency, Mann-Whitney U, Cohen's d with a bootstrap interval, bootstrap intervals for
mean, P95 and hit rate per arm, and the power analysis (sample size per arm for the
observed effect, and the report's own d = 3.06 / n = 2,128 checked).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import stats
from statsmodels.stats.power import TTestIndPower

from ab._arms import TIER_LABEL, TIERS
from ab._runner import Reads
from ab._workload import DATA_TYPES, freshness_s

ALPHA = 0.05
POWER = 0.8
#: the report's figures, checked rather than copied
REPORT_D = 3.06
REPORT_N = 2128

Array = NDArray[np.float64]


def finite(x: float | None) -> float | None:
    """A float for results.json: None where the value is NaN or infinite."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def cohen_d(a: Array, b: Array, axis: int = -1) -> Any:
    """(mean a - mean b) / pooled standard deviation (ddof 1); vectorised along ``axis``
    for ``scipy.stats.bootstrap``."""
    na, nb = a.shape[axis], b.shape[axis]
    va, vb = np.var(a, axis=axis, ddof=1), np.var(b, axis=axis, ddof=1)
    pooled = np.sqrt(((na - 1) * va + (nb - 1) * vb) / (na + nb - 2))
    return (np.mean(a, axis=axis) - np.mean(b, axis=axis)) / pooled


def _p95(x: Array, axis: int = -1) -> Any:
    return np.percentile(x, 95, axis=axis)


def _ci(
    samples: Sequence[Array], statistic: Any, *, resamples: int, seed: int
) -> dict[str, float | None]:
    """A 95 % percentile bootstrap interval (scipy.stats.bootstrap)."""
    if any(len(s) < 2 for s in samples):
        return {"low": None, "high": None}
    result = stats.bootstrap(
        tuple(samples), statistic, n_resamples=resamples, confidence_level=0.95,
        method="percentile", vectorized=True, batch=max(1, 4_000_000 // max(map(len, samples))),
        rng=np.random.default_rng(seed),
    )  # fmt: skip
    ci = result.confidence_interval
    return {"low": finite(ci.low), "high": finite(ci.high)}


def _quantiles_ms(lat: Array) -> dict[str, float | None]:
    if len(lat) == 0:
        return dict.fromkeys(("mean", "p50", "p95", "p99", "max"), None)
    ms = lat * 1000.0
    p50, p95, p99 = np.percentile(ms, [50, 95, 99])
    return {"mean": finite(ms.mean()), "p50": finite(p50), "p95": finite(p95),
            "p99": finite(p99), "max": finite(ms.max())}  # fmt: skip


def _columns(reads: Reads, arm: str) -> dict[str, Any]:
    mask = np.array([a == arm for a in reads.arm], dtype=bool)
    return {
        "t": np.asarray(reads.t, dtype=float)[mask],
        "latency": np.asarray(reads.latency_s, dtype=float)[mask],
        "age": np.asarray(reads.age_s, dtype=float)[mask],
        "tier": np.asarray(reads.tier, dtype=object)[mask],
        "data_type": np.asarray(reads.data_type, dtype=object)[mask],
        "served": np.asarray(reads.served, dtype=bool)[mask],
    }


def summarise_arm(
    reads: Reads, arm: str, *, duration_s: float, origin_requests: int, resamples: int, seed: int
) -> dict[str, Any]:
    c = _columns(reads, arm)
    n = len(c["t"])
    ok = c["tier"] != "error"
    answered = int(ok.sum())
    counts = {tier: int((c["tier"] == tier).sum()) for tier in TIERS}
    shares = {TIER_LABEL[t]: (100.0 * counts[t] / answered if answered else 0.0) for t in TIERS}
    hits = np.isin(c["tier"], ("memory", "memcached", "redis")).astype(float)[ok]
    lat = c["latency"][ok]
    age: dict[str, Any] = {}
    for data_type in DATA_TYPES:
        ages = c["age"][ok & (c["data_type"] == data_type)]
        limit = freshness_s(data_type)
        if len(ages) == 0:
            age[data_type] = {"class_s": limit, "reads": 0, "within_pct": None, "within": None,
                              **dict.fromkeys(("p50_s", "p95_s", "p99_s", "max_s"))}  # fmt: skip
            continue
        p50, p95, p99 = np.percentile(ages, [50, 95, 99])
        within = 100.0 * float((ages <= limit).mean())
        age[data_type] = {
            "class_s": limit, "reads": len(ages), "within_pct": within,
            # "within the freshness class": at least 99 % of its reads no older than it
            "within": bool(p99 <= limit),
            "p50_s": finite(p50), "p95_s": finite(p95), "p99_s": finite(p99),
            "max_s": finite(ages.max()),
        }  # fmt: skip
    latency = _quantiles_ms(lat)
    return {
        "reads": n,
        "served_reads": int(c["served"].sum()),
        "answered": answered,
        "errors": n - answered,
        "error_rate_pct": 100.0 * (n - answered) / n if n else 0.0,
        "tier_counts": counts,
        "shares_pct": shares,
        "hit_rate_pct": 100.0 * float(hits.mean()) if answered else 0.0,
        "latency_ms": latency,
        "rps": n / duration_s,
        "origin_reads": counts["origin"],
        "origin_requests": origin_requests,
        "origin_requests_per_s": origin_requests / duration_s,
        "served_age": age,
        "age_within_classes": all(v["within"] is not False for v in age.values()),
        "ci95": {
            "mean_ms": _ci([lat * 1000], np.mean, resamples=resamples, seed=seed),
            "p95_ms": _ci([lat * 1000], _p95, resamples=resamples, seed=seed + 1),
            "hit_rate_pct": _ci([hits * 100], np.mean, resamples=resamples, seed=seed + 2),
        },
        "timeline": timeline(c, duration_s),
    }


def timeline(c: dict[str, Any], duration_s: float, step_s: float = 1.0) -> dict[str, list[Any]]:
    """Per ``step_s`` bucket: reads, hit rate, mean and P95 latency, origin reads/s."""
    edges = np.arange(0.0, duration_s + step_s, step_s)
    out: dict[str, list[Any]] = {"t": [], "reads": [], "hit_rate_pct": [], "mean_ms": [],
                                 "p95_ms": [], "origin_reads_per_s": []}  # fmt: skip
    bucket = np.digitize(c["t"], edges) - 1
    for i in range(len(edges) - 1):
        sel = bucket == i
        tiers, lat = c["tier"][sel], c["latency"][sel][c["tier"][sel] != "error"] * 1000
        answered = int((tiers != "error").sum())
        hit = int(np.isin(tiers, ("memory", "memcached", "redis")).sum())
        out["t"].append(float(edges[i]))
        out["reads"].append(int(sel.sum()))
        out["hit_rate_pct"].append(100.0 * hit / answered if answered else None)
        out["mean_ms"].append(finite(lat.mean()) if len(lat) else None)
        out["p95_ms"].append(finite(np.percentile(lat, 95)) if len(lat) else None)
        out["origin_reads_per_s"].append(int((tiers == "origin").sum()) / step_s)
    return out


def _power_n(d: float) -> float | None:
    """Samples per arm for a two-sided two-sample t-test to detect ``d`` at ALPHA, POWER."""
    if not math.isfinite(d) or d == 0:
        return None
    try:
        n = TTestIndPower().solve_power(effect_size=abs(d), alpha=ALPHA, power=POWER, ratio=1.0)
    except (ValueError, RuntimeError):
        return None
    return finite(float(np.asarray(n).item()))


def power_analysis(d_observed: float | None) -> dict[str, Any]:
    d_for_n = TTestIndPower().solve_power(nobs1=REPORT_N, alpha=ALPHA, power=POWER, ratio=1.0)
    return {
        "alpha": ALPHA,
        "power": POWER,
        "observed_d": finite(d_observed),
        "n_per_arm_for_observed_d": _power_n(d_observed) if d_observed is not None else None,
        "report_d": REPORT_D,
        "n_per_arm_for_report_d": _power_n(REPORT_D),
        "report_n": REPORT_N,
        "d_detectable_with_report_n": finite(float(np.asarray(d_for_n).item())),
    }


def compare(
    reads: Reads, *, treatment: str = "multitier", control: str = "direct", resamples: int,
    seed: int,
) -> dict[str, Any]:  # fmt: skip
    """Control (``direct``) against treatment (``multitier``) on the latency of answered
    reads (seconds -> ms). Positive d / t: the control is slower."""
    a_c, b_c = _columns(reads, control), _columns(reads, treatment)
    a = a_c["latency"][a_c["tier"] != "error"] * 1000
    b = b_c["latency"][b_c["tier"] != "error"] * 1000
    out: dict[str, Any] = {"control": control, "treatment": treatment,
                           "n": {control: len(a), treatment: len(b)}}  # fmt: skip
    if len(a) < 3 or len(b) < 3:
        out["error"] = "fewer than 3 answered reads in an arm: no test"
        out["power"] = power_analysis(None)
        return out
    welch = stats.ttest_ind(a, b, equal_var=False)
    log_welch = stats.ttest_ind(np.log(a), np.log(b), equal_var=False)
    mwu = stats.mannwhitneyu(a, b, alternative="two-sided")
    d = float(cohen_d(a, b))
    out.update({
        "welch_t": {"t": finite(welch.statistic), "p": finite(welch.pvalue),
                    "df": finite(welch.df)},
        "welch_t_log": {"t": finite(log_welch.statistic), "p": finite(log_welch.pvalue),
                        "df": finite(log_welch.df),
                        "geometric_mean_ratio": finite(math.exp(np.log(a).mean()
                                                                - np.log(b).mean()))},
        "mann_whitney_u": {"u": finite(mwu.statistic), "p": finite(mwu.pvalue),
                           # P(a control read is slower than a treatment read)
                           "prob_control_slower": finite(mwu.statistic / (len(a) * len(b)))},
        "cohen_d": {"d": finite(d), "ci95": _ci([a, b], cohen_d, resamples=resamples,
                                               seed=seed + 3)},
        "mean_ratio": finite(a.mean() / b.mean()),
        "power": power_analysis(d),
    })  # fmt: skip
    return out
