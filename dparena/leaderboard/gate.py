"""The regression gate: compare current results with a baseline leaderboard JSON.

A (dataset, method label, ε, metric) mean regresses when it is worse than the baseline's in the
metric's direction by more than ``tolerance`` × |baseline mean| — or, when both sides have at least
two seeds, when additionally the two 95% confidence intervals do not overlap (the difference is
then beyond the seed noise as well as beyond the tolerance). Entries whose dataset or metric
version differs are not compared (reported as skipped); baseline entries with no current
counterpart are reported as missing. Only regressions make the gate fail.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dparena.errors import ConfigError


@dataclass
class Comparison:
    dataset: str
    label: str
    epsilon: float | None
    metric: str
    direction: str
    baseline: float
    current: float | None
    status: str  # "ok", "regressed", "improved", "missing", "skipped"
    reason: str = ""

    @property
    def change(self) -> float | None:
        if self.current is None:
            return None
        return self.current - self.baseline


def load_baseline(path: str | Path) -> list[dict[str, Any]]:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"baseline file {path} not found; create one with "
                          f"`dparena leaderboard --format json --out {path}`")
    try:
        doc = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not valid JSON ({exc}); regenerate it with "
                          f"`dparena leaderboard --format json`") from None
    if not isinstance(doc, dict) or doc.get("format") != "dparena-leaderboard":
        raise ConfigError(f"{path}: not a dparena leaderboard JSON; create one with "
                          f"`dparena leaderboard --format json`")
    return doc["entries"]


def _key(e: dict[str, Any]) -> tuple:
    return (e["dataset"], e["label"], e["epsilon"], e["metric"])


def compare(current: list[dict[str, Any]], baseline: list[dict[str, Any]],
            tolerance: float = 0.05) -> list[Comparison]:
    if tolerance < 0:
        raise ConfigError("--tolerance must be >= 0 (a relative fraction, e.g. 0.05)")
    now = {_key(e): e for e in current}
    out = []
    for base in baseline:
        if base.get("status", "ok") != "ok" or base.get("mean") is None:
            continue
        cur = now.get(_key(base))
        comp = Comparison(base["dataset"], base["label"], base["epsilon"], base["metric"],
                          base["direction"], base["mean"], None, "missing")
        if cur is None or cur.get("mean") is None:
            comp.reason = "no current result"
            out.append(comp)
            continue
        comp.current = cur["mean"]
        if (cur.get("dataset_version") != base.get("dataset_version")
                or cur.get("metric_version") != base.get("metric_version")):
            comp.status, comp.reason = "skipped", "dataset or metric version changed"
            out.append(comp)
            continue
        if cur.get("status") in ("invalid", "audit-failed", "audit-error"):
            comp.status = "regressed"
            comp.reason = {"invalid": "run is INVALID (overspent its budget)",
                           "audit-failed": "the privacy audit rejects the claimed ε "
                                           "(Holm–Bonferroni over the store's audits)",
                           "audit-error": "the privacy audit raised, so the claimed ε is unchecked",
                           }[cur["status"]]
            out.append(comp)
            continue
        sign = 1.0 if base["direction"] == "maximize" else -1.0
        worse_by = sign * (base["mean"] - cur["mean"])
        allowed = tolerance * abs(base["mean"])
        if worse_by > allowed:
            both_ci = (base.get("n", 1) >= 2 and cur.get("n", 1) >= 2
                       and None not in (base.get("ci_low"), base.get("ci_high"),
                                        cur.get("ci_low"), cur.get("ci_high")))
            if both_ci:
                if sign > 0:
                    separated = cur["ci_high"] < base["ci_low"]
                else:
                    separated = cur["ci_low"] > base["ci_high"]
                if separated:
                    comp.status, comp.reason = "regressed", "beyond tolerance and CIs disjoint"
                else:
                    comp.status, comp.reason = "ok", "beyond tolerance but within seed noise (CIs overlap)"
            else:
                comp.status, comp.reason = "regressed", f"worse by more than {tolerance:g} relative"
        elif -worse_by > allowed:
            comp.status = "improved"
        else:
            comp.status = "ok"
        out.append(comp)
    return out


def format_comparisons(comps: list[Comparison]) -> str:
    """A plain-text table of what regressed, went missing or was skipped, and a count line."""
    from dparena.leaderboard.render import fmt_value

    shown = [c for c in comps if c.status in ("regressed", "missing", "skipped")]
    rows = [("status", "dataset", "method", "ε", "metric", "baseline", "current", "reason")]
    for c in shown:
        rows.append((c.status, c.dataset, c.label, "ref" if c.epsilon is None else f"{c.epsilon:g}",
                     c.metric, fmt_value(c.baseline),
                     "—" if c.current is None else fmt_value(c.current), c.reason))
    lines = []
    if shown:
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        for r in rows:
            lines.append("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())
    counts = {s: sum(c.status == s for c in comps)
              for s in ("ok", "improved", "regressed", "missing", "skipped")}
    lines.append(", ".join(f"{v} {k}" for k, v in counts.items()))
    return "\n".join(lines)


def check_database(db, baseline, tolerance: float = 0.05) -> list[Comparison]:
    """Compare a result database with a baseline file (what `dparena check` does)."""
    from dparena.harness.store import Store
    from dparena.leaderboard.aggregate import baseline_entries, build_tables

    if not Path(db).exists():
        raise ConfigError(f"no result database at {db}; run a suite first (dparena run SUITE)")
    base = load_baseline(baseline)
    current = baseline_entries(build_tables(Store(db).runs(), all_metrics=True))
    return compare(current, base, tolerance)
