"""report.md, report.html and results.json from one results dict (the same tables in
both documents)."""

from __future__ import annotations

import html
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ab._plots import PLOTS

Table = tuple[str, Sequence[str], Sequence[Sequence[Any]]]


def fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if value == 0:
            return "0"
        if abs(value) >= 1e6 or abs(value) < 1e-3:
            return f"{value:.3g}"
        return f"{value:,.{digits}f}".rstrip("0").rstrip(".") if abs(value) < 1e3 else (
            f"{value:,.0f}"
        )  # fmt: skip
    return str(value)


def _ci(ci: dict[str, Any]) -> str:
    return f"[{fmt(ci.get('low'))}, {fmt(ci.get('high'))}]"


def tables(r: dict[str, Any]) -> list[Table]:
    arms = r["arms"]
    names = ("direct", "multitier")
    per_arm: list[Sequence[Any]] = []
    rows: list[tuple[str, Callable[[dict[str, Any]], Any]]] = [
        ("reads", lambda a: a["reads"]),
        ("served reads", lambda a: a["served_reads"]),
        *[(f"share {t} (%)", lambda a, t=t: a["shares_pct"][t]) for t in ("L1", "L2", "L3",
                                                                          "origin")],
        ("hit rate (%)", lambda a: a["hit_rate_pct"]),
        ("hit rate 95 % CI", lambda a: _ci(a["ci95"]["hit_rate_pct"])),
        *[(f"{q} latency (ms)", lambda a, q=q: a["latency_ms"][q]) for q in ("mean", "p50",
                                                                             "p95", "p99")],
        ("mean 95 % CI (ms)", lambda a: _ci(a["ci95"]["mean_ms"])),
        ("P95 95 % CI (ms)", lambda a: _ci(a["ci95"]["p95_ms"])),
        ("requests / s", lambda a: a["rps"]),
        ("error rate (%)", lambda a: a["error_rate_pct"]),
        ("origin reads", lambda a: a["origin_reads"]),
        ("origin requests / s", lambda a: a["origin_requests_per_s"]),
    ]  # fmt: skip
    for label, get in rows:
        per_arm.append([label, *(fmt(get(arms[n])) for n in names)])
    ages: list[Sequence[Any]] = []
    for n in names:
        for data_type, a in arms[n]["served_age"].items():
            ages.append([n, data_type, fmt(a["class_s"]), a["reads"], fmt(a["p50_s"]),
                         fmt(a["p95_s"]), fmt(a["p99_s"]), fmt(a["max_s"]),
                         fmt(a["within_pct"]), fmt(a["within"])])  # fmt: skip
    c = r["comparison"]
    st: list[Sequence[Any]] = []
    if "welch_t" in c:
        st = [
            ["Welch's t-test, latency", f"t = {fmt(c['welch_t']['t'])}, df = "
             f"{fmt(c['welch_t']['df'])}", fmt(c["welch_t"]["p"])],
            ["Welch's t-test, log-latency", f"t = {fmt(c['welch_t_log']['t'])}, geometric "
             f"mean ratio {fmt(c['welch_t_log']['geometric_mean_ratio'])}x",
             fmt(c["welch_t_log"]["p"])],
            ["Mann-Whitney U", f"U = {fmt(c['mann_whitney_u']['u'])}, P(direct read slower) = "
             f"{fmt(c['mann_whitney_u']['prob_control_slower'])}", fmt(c["mann_whitney_u"]["p"])],
            ["Cohen's d (direct - multitier)", f"d = {fmt(c['cohen_d']['d'])}, 95 % CI "
             f"{_ci(c['cohen_d']['ci95'])}", ""],
            ["mean latency ratio direct / multitier", f"{fmt(c['mean_ratio'])}x", ""],
        ]  # fmt: skip
    else:
        st = [["no test", c.get("error", ""), ""]]
    p = c["power"]
    power = [
        ["observed d", fmt(p["observed_d"]), "n per arm at alpha 0.05, power 0.8",
         fmt(p["n_per_arm_for_observed_d"])],
        ["report's d", fmt(p["report_d"]), "n per arm", fmt(p["n_per_arm_for_report_d"])],
        ["report's n per arm", fmt(p["report_n"]), "smallest d it detects",
         fmt(p["d_detectable_with_report_n"])],
    ]  # fmt: skip
    claims = [[row["state"], row["arm"], row["metric"], fmt(row["claimed"]),
               fmt(row["measured"])] for row in r["claimed_vs_measured"]]  # fmt: skip
    checks = [[ch["name"], ch["rule"], fmt(ch["measured"]), "pass" if ch["pass"] else "FAIL"]
              for ch in r["verdict"]["checks"]]  # fmt: skip
    goals = [[g["goal"], fmt(g["measured"]), "met" if g["pass"] else "MISSED"]
             for g in r["goals"]]  # fmt: skip
    o = r["origin"]
    origin = [[k, fmt(v)] for k, v in o.items()]
    res = r["resources"]
    resources = [["fleet processes", ", ".join(f"{k} {v}" for k, v in res["processes"].items())],
                 ["CPU mean / max (% of all cores)", f"{fmt(res['cpu_pct_mean'])} / "
                  f"{fmt(res['cpu_pct_max'])}"],
                 ["peak RSS (MB)", fmt((res["rss_bytes_max"] or 0) / 2**20)]]  # fmt: skip
    return [
        ("Per arm", ["", *names], per_arm),
        ("Served age against each data type's freshness class",
         ["arm", "data type", "class (s)", "reads", "P50 (s)", "P95 (s)", "P99 (s)", "max (s)",
          "within class (%)", "within (P99 <= class)"], ages),
        ("Claimed (report) | measured", ["report state", "arm", "metric", "claimed",
                                         "measured"], claims),
        ("Statistics (answered reads)", ["test", "statistic", "p"], st),
        ("Power analysis", ["", "", "", ""], power),
        ("Success metrics and guardrails", ["check", "rule", "measured", ""], checks),
        ("Goals of issue 16", ["goal", "measured", ""], goals),
        ("Origin requests", ["", ""], origin),
        ("Fleet resources (psutil)", ["", ""], resources),
    ]  # fmt: skip


_POLICY = {False: "take what the caches hold", True: "refuse copies older than the class"}


def _header(r: dict[str, Any]) -> list[str]:
    cfg = r["config"]
    return [
        f"mode {cfg['mode']}, {cfg['duration_s']:g} s measured after "
        f"{cfg.get('warmup_s', 0):g} s of warm-up load, rate {cfg['rate']:g}/s, concurrency "
        f"{cfg['concurrency']}, Zipf s = {cfg['zipf_s']:g} over {cfg['items']} items "
        f"({cfg['symbols']} symbols x tickers/analysis x 2 exchanges + 3 overviews), seed "
        f"{cfg['seed']}",
        f"origin latency {cfg['origin_latency_ms']:g} ± {cfg['origin_jitter_ms']:g} ms, "
        f"direct's one TTL {cfg['direct_ttl_s']:g} s, reads "
        f"{_POLICY[bool(cfg.get('strict_freshness'))]}, fleet "
        f"{'started by the run' if cfg['self_contained'] else 'attached'} "
        f"(namespace {cfg['namespace']!r}), warm before the load: "
        f"{fmt(cfg['warm_pct'])} % of the keys",
        f"verdict: **{'GO' if r['verdict']['go'] else 'NO-GO'}**",
    ]


def markdown(r: dict[str, Any]) -> str:
    out = ["# warmfleet ab: direct (old design) vs multitier (the fleet)", ""]
    out += [f"- {line}" for line in _header(r)] + [""]
    for title, head, rows in tables(r):
        out += [f"## {title}", "", "| " + " | ".join(head) + " |",
                "|" + "---|" * len(head)]  # fmt: skip
        out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
        out.append("")
    out += ["## Figures", ""]
    out += [f"![{title}]({name})" for name, title in PLOTS.items()]
    return "\n".join(out) + "\n"


def to_html(r: dict[str, Any]) -> str:
    e = html.escape
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>warmfleet ab</title>",
             "<style>body{font-family:sans-serif;max-width:70em;margin:auto}table{border-"
             "collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.25em .6em;"
             "text-align:right}td:first-child,th:first-child{text-align:left}</style></head>"
             "<body><h1>warmfleet ab: <span class='arm'>direct</span> (old design) vs "
             "<span class='arm'>multitier</span> (the fleet)</h1><ul>"]  # fmt: skip
    parts += [f"<li>{e(line).replace('**', '')}</li>" for line in _header(r)] + ["</ul>"]
    for title, head, rows in tables(r):
        parts.append(f"<h2>{e(title)}</h2><table><tr>")
        parts += [f"<th>{e(str(h))}</th>" for h in head] + ["</tr>"]
        for row in rows:
            parts.append("<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in row) + "</tr>")
        parts.append("</table>")
    parts.append("<h2>Figures</h2>")
    parts += [f"<figure><img src='{e(n)}' alt='{e(t)}'><figcaption>{e(t)}</figcaption>"
              "</figure>" for n, t in PLOTS.items()]  # fmt: skip
    parts.append("</body></html>")
    return "\n".join(parts)


def results_json(r: dict[str, Any]) -> str:
    return json.dumps(r, indent=2, allow_nan=False)


def write(r: dict[str, Any], out: Path) -> None:
    (out / "results.json").write_text(results_json(r) + "\n", encoding="utf-8")
    (out / "report.md").write_text(markdown(r), encoding="utf-8")
    (out / "report.html").write_text(to_html(r), encoding="utf-8")
