"""`warmfleet ab` end to end, as a user runs it: it starts its own fleet (sim at 50 ms,
clock, poller, worker) in its own namespace on the local stack, reads for 20 s, and
writes the report."""

from __future__ import annotations

import asyncio
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.image
import pytest

from tests.conftest import StackURLs

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def ab(
    stack_urls: StackURLs, tmp_path: Path, *argv: str, env: dict[str, str] | None = None
) -> tuple[dict[str, Any], str]:
    env = {
        **os.environ,
        "WARMFLEET_KAFKA_URL": stack_urls.kafka_url,
        "WARMFLEET_REDIS_URL": stack_urls.redis_url,
        "WARMFLEET_MEMCACHED_URL": stack_urls.memcached_url,
        "WARMFLEET_HOME": str(tmp_path / "home"),  # the fleet's logs go here
        **(env or {}),
    }
    proc = subprocess.run(
        [sys.executable, "-m", "workers.cli", "ab", "--no-live", "--json", "--bootstrap",
         "500", *argv],
        env=env, capture_output=True, timeout=400,
    )  # fmt: skip
    err = proc.stderr.decode(errors="replace")
    assert proc.returncode == 0, err[-4000:]
    try:
        return json.loads(proc.stdout), err
    except ValueError as exc:
        raise AssertionError(f"stdout is not results.json: {proc.stdout[:2000]!r}") from exc


def numbers(tree: Any) -> list[Any]:
    if isinstance(tree, dict):
        return [x for v in tree.values() for x in numbers(v)]
    if isinstance(tree, list):
        return [x for v in tree for x in numbers(v)]
    return [tree]


@pytest.mark.timeout(420)
def test_a_20_second_split_run_measures_both_arms_and_writes_the_report(
    stack_urls: StackURLs, tmp_path: Path
) -> None:
    out = tmp_path / "report"
    results, err = ab(stack_urls, tmp_path, "--duration", "20", "--out", str(out))
    assert "fleet up in namespace" in err
    assert results["config"]["origin_latency_ms"] == 50.0
    assert results["config"]["warm_pct"] == 100.0
    direct, multi = results["arms"]["direct"], results["arms"]["multitier"]
    assert direct["reads"] > 500 and multi["reads"] > 500
    assert direct["origin_reads"] > 0 and direct["hit_rate_pct"] < 100.0  # it misses
    assert direct["origin_requests"] >= direct["origin_reads"]
    assert multi["hit_rate_pct"] >= 99.0
    for arm in (direct, multi):
        assert sum(arm["shares_pct"].values()) == pytest.approx(100.0)
        assert set(arm["shares_pct"]) == {"L1", "L2", "L3", "origin"}
    c = results["comparison"]
    for name in ("welch_t", "welch_t_log", "mann_whitney_u", "cohen_d", "power"):
        assert name in c
    stats = [c["welch_t"]["t"], c["welch_t"]["p"], c["welch_t_log"]["p"],
             c["mann_whitney_u"]["u"], c["mann_whitney_u"]["p"], c["cohen_d"]["d"],
             c["cohen_d"]["ci95"]["low"], c["cohen_d"]["ci95"]["high"],
             c["power"]["n_per_arm_for_observed_d"], c["power"]["d_detectable_with_report_n"],
             direct["ci95"]["mean_ms"]["low"], multi["ci95"]["p95_ms"]["high"],
             direct["ci95"]["hit_rate_pct"]["low"]]  # fmt: skip
    assert all(isinstance(x, float) and math.isfinite(x) for x in stats), stats
    assert c["mean_ratio"] > 1  # the fleet's reads are faster on average
    assert results["resources"]["samples"] >= 10 and results["resources"]["rss_bytes_max"] > 0
    assert {ch["name"] for ch in results["verdict"]["checks"]} >= {"multitier P95 latency (ms)"}
    assert results["fleet_exited"] == {}
    assert results["config"]["same_process"] is False  # one process per arm by default
    # the report: every file, valid PNGs, both arms named, the same results.json
    for name in ("latency_cdf.png", "tier_shares.png", "over_time.png", "origin_load.png"):
        data = (out / name).read_bytes()
        assert data[:8] == PNG_SIGNATURE, name
        image = matplotlib.image.imread(out / name)
        assert image.ndim == 3 and image.shape[0] > 200 and image.shape[1] > 400
        assert image.std() > 0.01  # not a blank canvas
    html = (out / "report.html").read_text()
    assert "direct" in html and "multitier" in html and "<img src='latency_cdf.png'" in html
    assert "Claimed (report) | measured" in (out / "report.md").read_text()
    assert json.loads((out / "results.json").read_text()) == results
    assert None not in [x for x in numbers(results["arms"]["multitier"]["latency_ms"])]


@pytest.mark.timeout(420)
def test_shadow_serves_only_direct_answers(stack_urls: StackURLs, tmp_path: Path) -> None:
    results, _ = ab(stack_urls, tmp_path, "--duration", "8", "--shadow", "--same-process")
    assert results["config"]["same_process"] is True
    direct, multi = results["arms"]["direct"], results["arms"]["multitier"]
    assert results["config"]["mode"] == "shadow"
    assert direct["served_reads"] == direct["reads"] > 100
    assert multi["served_reads"] == 0 and multi["reads"] == direct["reads"]


@pytest.mark.timeout(420)
async def test_attach_reads_a_running_fleet_and_samples_its_processes(
    stack_urls: StackURLs, tmp_path: Path
) -> None:
    from ab import _fleet

    stack = _fleet.StackURLs(stack_urls.kafka_url, stack_urls.redis_url,
                             stack_urls.memcached_url)  # fmt: skip
    fleet = await _fleet.start(stack, seed=7, symbols=8, latency_s=0.05, jitter_s=0.01,
                               log_dir=tmp_path / "fleet", hold_for_s=300)  # fmt: skip
    try:
        env = {"WARMFLEET_NAMESPACE": fleet.namespace, "WARMFLEET_KEY_PREFIX": fleet.prefix}
        results, err = await asyncio.to_thread(
            ab, stack_urls, tmp_path, "--attach", "--sim-url", fleet.sim_url, "--duration",
            "5", "--split", "0.25", env=env,
        )  # fmt: skip
    finally:
        await _fleet.stop(fleet)
    assert f"attached to namespace {fleet.namespace!r}" in err
    cfg = results["config"]
    assert (cfg["self_contained"], cfg["namespace"], cfg["symbols"]) == (False, fleet.namespace, 8)
    assert (cfg["origin_latency_ms"], cfg["origin_jitter_ms"]) == (50.0, 10.0)
    assert set(results["resources"]["processes"]) == {"clock", "poller", "worker"}
    direct, multi = results["arms"]["direct"], results["arms"]["multitier"]
    assert multi["reads"] < direct["reads"]  # a 25 % split
    assert multi["hit_rate_pct"] >= 99.0
