"""The report's success metrics and guardrails (go / no-go), the issue's goals, and the
report's claimed figures next to what was measured."""

from __future__ import annotations

from typing import Any

#: the report's tables: its current state (the old design) and its optimized target
CLAIMS: dict[str, dict[str, float]] = {
    "current": {"mean_ms": 9.367, "hit_rate_pct": 82.0, "rps": 633.0, "p95_ms": 45.2},
    "optimized": {"mean_ms": 1.708, "hit_rate_pct": 98.0, "rps": 3500.0, "p95_ms": 8.5},
}
#: the report's claimed tier shares: only totals survive in the report (hit vs origin)
CLAIMED_SHARES = {
    "current": {"hit": 82.0, "origin": 18.0},
    "optimized": {"hit": 98.0, "origin": 2.0},
}
GUARDRAILS = {"p95_ms": 8.5, "hit_rate_pct": 95.0, "error_rate_pct": 0.2, "cpu_pct": 60.0,
              "memory_gb": 4.0}  # fmt: skip


def _check(name: str, measured: float | None, op: str, limit: float) -> dict[str, Any]:
    ok = measured is not None and (measured < limit if op == "<" else measured > limit)
    return {"name": name, "measured": measured, "rule": f"{op} {limit:g}", "pass": ok}


def verdict(arms: dict[str, Any], comparison: dict[str, Any], resources: dict[str, Any]) -> (
    dict[str, Any]
):  # fmt: skip
    m = arms["multitier"]
    welch = comparison.get("welch_t", {})
    faster = (comparison.get("mean_ratio") or 0) > 1 and (welch.get("p") is not None
                                                          and welch["p"] < 0.05)  # fmt: skip
    checks = [
        _check("multitier P95 latency (ms)", m["latency_ms"]["p95"], "<", GUARDRAILS["p95_ms"]),
        _check("multitier hit rate (%)", m["hit_rate_pct"], ">", GUARDRAILS["hit_rate_pct"]),
        _check("multitier error rate (%)", m["error_rate_pct"], "<",
               GUARDRAILS["error_rate_pct"]),
        _check("fleet CPU, mean share of the machine (%)", resources.get("cpu_pct_mean"), "<",
               GUARDRAILS["cpu_pct"]),
        _check("fleet memory, peak RSS (GB)", None if resources.get("rss_bytes_max") is None
               else resources["rss_bytes_max"] / 1024**3, "<", GUARDRAILS["memory_gb"]),
        {"name": "multitier faster, Welch p < 0.05", "measured": welch.get("p"),
         "rule": "mean ratio > 1 and p < 0.05", "pass": faster},
    ]  # fmt: skip
    return {"checks": checks, "go": all(c["pass"] for c in checks)}


def _within(flag: bool) -> str:
    return "within" if flag else "not within"


def goals(arms: dict[str, Any], comparison: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's "must show" list (stricter than the report's own targets)."""
    d, m = arms["direct"], arms["multitier"]
    origin_ratio = d["origin_requests"] / m["origin_requests"] if m["origin_requests"] else None
    return [
        {"goal": "multitier mean >= 20x lower than direct", "measured": comparison.get(
            "mean_ratio"), "pass": (comparison.get("mean_ratio") or 0) >= 20},
        {"goal": "multitier hit rate >= 99.9 %", "measured": m["hit_rate_pct"],
         "pass": m["hit_rate_pct"] >= 99.9},
        {"goal": "multitier P95 <= 1 ms", "measured": m["latency_ms"]["p95"],
         "pass": m["latency_ms"]["p95"] is not None and m["latency_ms"]["p95"] <= 1.0},
        {"goal": "origin requests of the reads >= 10x fewer (multitier vs direct)",
         "measured": f"{d['origin_requests']} vs {m['origin_requests']}"
         + (f" ({origin_ratio:.1f}x)" if origin_ratio is not None else ""),
         "pass": (origin_ratio is None and d["origin_requests"] > 0)
         or (origin_ratio is not None and origin_ratio >= 10)},
        {"goal": "multitier served age within every freshness class",
         "measured": _within(m["age_within_classes"]), "pass": bool(m["age_within_classes"])},
        {"goal": "direct served age NOT within the freshness classes (the old design's flaw)",
         "measured": _within(d["age_within_classes"]), "pass": not d["age_within_classes"]},
    ]  # fmt: skip


def claimed_vs_measured(arms: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for state, arm in (("current", "direct"), ("optimized", "multitier")):
        a = arms[arm]
        measured = {"mean_ms": a["latency_ms"]["mean"], "hit_rate_pct": a["hit_rate_pct"],
                    "rps": a["rps"], "p95_ms": a["latency_ms"]["p95"]}  # fmt: skip
        for metric, claim in CLAIMS[state].items():
            rows.append({"state": state, "arm": arm, "metric": metric, "claimed": claim,
                         "measured": measured[metric]})  # fmt: skip
    return rows
