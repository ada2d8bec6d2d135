"""The report's PNG figures (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np

from ab._runner import Reads
from ab._verdict import CLAIMED_SHARES

COLORS = {"direct": "#c0392b", "multitier": "#2471a3"}
TIER_COLORS = {"L1": "#1b4f72", "L2": "#2e86c1", "L3": "#85c1e9", "origin": "#e67e22",
               "hit": "#5d6d7e"}  # fmt: skip


def latency_cdf(reads: Reads, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=100)
    lat = np.asarray(reads.latency_s) * 1000
    arms, tiers = np.asarray(reads.arm), np.asarray(reads.tier)
    for arm in ("direct", "multitier"):
        x = np.sort(lat[(arms == arm) & (tiers != "error")])
        if len(x):
            ax.step(x, np.arange(1, len(x) + 1) / len(x), where="post", label=arm,
                    color=COLORS[arm])  # fmt: skip
    ax.axvline(8.5, color="grey", ls="--", lw=1, label="report's P95 target 8.5 ms")
    ax.set_xscale("log")
    ax.set_xlabel("read latency (ms, log scale)")
    ax.set_ylabel("share of reads at or below")
    ax.set_title("Latency CDF per arm")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def tier_shares(arms: dict[str, Any], path: Path) -> None:
    bars = [
        ("report: current", {"hit": CLAIMED_SHARES["current"]["hit"],
                             "origin": CLAIMED_SHARES["current"]["origin"]}),
        ("measured: direct", arms["direct"]["shares_pct"]),
        ("report: optimized", {"hit": CLAIMED_SHARES["optimized"]["hit"],
                               "origin": CLAIMED_SHARES["optimized"]["origin"]}),
        ("measured: multitier", arms["multitier"]["shares_pct"]),
    ]  # fmt: skip
    fig, ax = plt.subplots(figsize=(7.5, 4.2), dpi=100)
    for i, (_label, shares) in enumerate(bars):
        bottom = 0.0
        for part in ("L1", "L2", "L3", "hit", "origin"):
            value = float(shares.get(part, 0.0))
            if value <= 0:
                continue
            seen = ax.get_legend_handles_labels()[1]
            ax.bar(i, value, bottom=bottom, color=TIER_COLORS[part],
                   label=None if part in seen else part)  # fmt: skip
            if value >= 4:
                ax.text(i, bottom + value / 2, f"{part} {value:.1f}%", ha="center",
                        va="center", fontsize=8, color="white")  # fmt: skip
            bottom += value
    ax.set_xticks(range(len(bars)), [b[0] for b in bars], fontsize=8)
    ax.set_ylabel("share of answered reads (%)")
    ax.set_ylim(0, 100)
    ax.set_title("Where reads were answered: the report's claims vs measured")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=5, fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def over_time(arms: dict[str, Any], path: Path) -> None:
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7.5, 5.5), dpi=100, sharex=True)
    for arm in ("direct", "multitier"):
        tl = arms[arm]["timeline"]
        t = np.asarray(tl["t"], dtype=float)
        hit = np.asarray([np.nan if v is None else v for v in tl["hit_rate_pct"]])
        p95 = np.asarray([np.nan if v is None else v for v in tl["p95_ms"]])
        mean = np.asarray([np.nan if v is None else v for v in tl["mean_ms"]])
        top.plot(t, hit, color=COLORS[arm], label=arm)
        bottom.plot(t, mean, color=COLORS[arm], label=f"{arm} mean")
        bottom.plot(t, p95, color=COLORS[arm], ls=":", label=f"{arm} P95")
    top.set_ylabel("hit rate (%)")
    top.set_title("Hit rate and latency over time (1 s buckets)")
    top.grid(alpha=0.3)
    top.legend(fontsize=8)
    bottom.set_yscale("log")
    bottom.set_ylabel("latency (ms, log)")
    bottom.set_xlabel("seconds into the run")
    bottom.grid(alpha=0.3, which="both")
    bottom.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def origin_load(arms: dict[str, Any], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(7.5, 3.8), dpi=100)
    for arm in ("direct", "multitier"):
        tl = arms[arm]["timeline"]
        ax.plot(tl["t"], tl["origin_reads_per_s"], color=COLORS[arm], label=arm)
    ax.set_xlabel("seconds into the run")
    ax.set_ylabel("reads answered by the origin / s")
    ax.set_title("Origin load of the reads over time")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


PLOTS = {
    "latency_cdf.png": "latency CDF per arm",
    "tier_shares.png": "tier shares, claimed and measured",
    "over_time.png": "hit rate and latency over time",
    "origin_load.png": "origin load over time",
}


def write_all(reads: Reads, arms: dict[str, Any], out: Path) -> list[str]:
    latency_cdf(reads, out / "latency_cdf.png")
    tier_shares(arms, out / "tier_shares.png")
    over_time(arms, out / "over_time.png")
    origin_load(arms, out / "origin_load.png")
    return list(PLOTS)
