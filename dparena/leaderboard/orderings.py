"""Orderings: does a paper's "A beats B on metric M at ε" hold in the stored runs?

A suite may state orderings a paper reports (``[[ordering]]`` tables, see docs/protocols.md).
Each is judged on the newest runs of its section at its ε: the difference of the two labels'
seed means (in the metric's better direction, so > 0 means the paper's order) with a 95%
bootstrap CI that resamples each label's seeds independently. The verdict is

* ``holds``: the whole CI is above 0;
* ``reversed``: the whole CI is below 0;
* ``not resolved``: the CI contains 0 (more seeds would be needed to tell);
* ``holds (worse has 0 valid rows)`` / ``reversed (better has 0 valid rows)``: one side ran within
  its budget but returned nothing the metric could score (an LM whose output never parsed), the
  other has values;
* ``no data``: a side has no scored run (not run yet, or failed).

With few seeds a percentile bootstrap is narrow (3 seeds give at most 10 distinct resampled
means per side); the table prints n beside every mean so the reader can weigh it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from dparena.leaderboard.aggregate import (
    BOOTSTRAP_RESAMPLES,
    CI_LEVEL,
    Stat,
    latest_runs,
    records_returned,
)
from dparena.types import Direction

if TYPE_CHECKING:
    from dparena.harness.store import StoredRun


class Claim(Protocol):
    """What a suite's ``[[ordering]]`` says (``dparena.harness.suite.Ordering``)."""

    section: str
    metric: str  # a column name, e.g. "ml-efficacy/f1"
    better: str  # run labels
    worse: str
    epsilon: float
    source: str


@dataclass(frozen=True)
class Judged:
    claim: Any
    better: Stat | None
    worse: Stat | None
    difference: float | None  # oriented: > 0 means the claimed order
    ci_low: float | None
    ci_high: float | None
    verdict: str


def _side(runs: list[StoredRun], label: str, column: str) -> tuple[list[float], int, int]:
    """(finite values, runs with no records returned, runs in the slot) for one label."""
    mine = [r for r in runs if r.label == label and r.status == "ok"]
    values = []
    empty = 0
    for r in mine:
        stored = r.metrics.get(column)
        v = stored.value if stored is not None else None
        if v is not None and math.isfinite(v):
            values.append(v)
        elif stored is None and records_returned(r) == 0:
            empty += 1
    return values, empty, len(mine)


def _direction(runs: list[StoredRun], column: str) -> Direction:
    for r in runs:
        if column in r.metrics:
            return Direction(r.metrics[column].direction)
    return Direction.MAXIMIZE


def difference_ci(better: list[float], worse: list[float], sign: float,
                  seed: int = 0) -> tuple[float, float | None, float | None]:
    """Oriented mean difference and its percentile-bootstrap CI (None when a side has < 2)."""
    a, b = np.asarray(better, float), np.asarray(worse, float)
    diff = sign * float(a.mean() - b.mean())
    if len(a) < 2 or len(b) < 2:
        return diff, None, None
    rng = np.random.default_rng(seed)
    ma = a[rng.integers(0, len(a), size=(BOOTSTRAP_RESAMPLES, len(a)))].mean(axis=1)
    mb = b[rng.integers(0, len(b), size=(BOOTSTRAP_RESAMPLES, len(b)))].mean(axis=1)
    alpha = (1 - CI_LEVEL) / 2
    lo, hi = np.quantile(sign * (ma - mb), [alpha, 1 - alpha])
    return diff, float(lo), float(hi)


def judge(runs: list[StoredRun], claims: list[Claim]) -> list[Judged]:
    current = latest_runs(runs)
    out = []
    for claim in claims:
        # a non-private reference (epsilon None) stands in every ε of its section
        slot = [r for r in current if r.section == claim.section
                and (r.epsilon is None or math.isclose(r.epsilon, claim.epsilon))]
        good, good_empty, good_n = _side(slot, claim.better, claim.metric)
        bad, bad_empty, bad_n = _side(slot, claim.worse, claim.metric)
        if good and bad:
            sign = -1.0 if _direction(slot, claim.metric) is Direction.MINIMIZE else 1.0
            diff, lo, hi = difference_ci(good, bad, sign)
            if lo is None:
                verdict = "not resolved (fewer than 2 runs on a side)"
            elif lo > 0:
                verdict = "holds"
            elif hi < 0:
                verdict = "reversed"
            else:
                verdict = "not resolved"
            out.append(Judged(claim, _stat(good), _stat(bad), diff, lo, hi, verdict))
            continue
        if good and not bad and bad_n and bad_empty == bad_n:
            verdict = "holds (worse has 0 valid rows)"
        elif bad and not good and good_n and good_empty == good_n:
            verdict = "reversed (better has 0 valid rows)"
        else:
            verdict = "no data"
        out.append(Judged(claim, _stat(good), _stat(bad), None, None, None, verdict))
    return out


def _stat(values: list[float]) -> Stat | None:
    return Stat.of(values) if values else None


def _fmt_stat(s: Stat | None, empty: str) -> str:
    if s is None:
        return empty
    if s.ci_low is None:
        return f"{s.mean:.3f} (n={s.n})"
    half = (s.ci_high - s.ci_low) / 2
    return f"{s.mean:.3f} ± {half:.3f} (n={s.n})"


def to_markdown(judged: list[Judged], title: str = "Orderings",
                sections: dict[str, str] | None = None) -> str:
    """The claims' table; ``sections`` (section name → its N, seeds and samples) is listed under
    the title."""
    listed = [f"- section {name}: {text}" for name, text in (sections or {}).items() if text]
    lines = [f"### {title}", "", *listed, *([""] if listed else []),
             "| claim | source | section | ε | better | worse | difference [95% CI] | verdict |",
             "|---|---|---|---:|---:|---:|---:|---|"]
    for j in judged:
        c = j.claim
        empty_good = "0 valid rows" if j.verdict.startswith("reversed (") else "—"
        empty_bad = "0 valid rows" if j.verdict.startswith("holds (") else "—"
        if j.difference is None:
            diff = "—"
        elif j.ci_low is None:
            diff = f"{j.difference:+.3f}"
        else:
            diff = f"{j.difference:+.3f} [{j.ci_low:+.3f}, {j.ci_high:+.3f}]"
        lines.append(
            f"| {c.better} > {c.worse} on {c.metric} | {c.source} | {c.section} | {c.epsilon:g} "
            f"| {_fmt_stat(j.better, empty_good)} | {_fmt_stat(j.worse, empty_bad)} | {diff} "
            f"| **{j.verdict}** |")
    lines += ["", "_better / worse: seed mean ± half-width of its 95% bootstrap CI (n runs). "
              "difference: better − worse in the metric's better direction (> 0 = the paper's "
              "order), 95% bootstrap CI resampling each side's seeds. holds / reversed: the CI "
              "excludes 0; not resolved: it does not._", ""]
    return "\n".join(lines)
