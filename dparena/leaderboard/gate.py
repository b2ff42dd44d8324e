"""The regression gate: compare current results with a baseline leaderboard JSON.

A (dataset, method label, ε, metric) mean regresses when it is worse than the baseline's in the
metric's direction by more than ``tolerance`` × |baseline mean| — or, when both sides have at least
two seeds, when additionally the two 95% confidence intervals do not overlap (the difference is
then beyond the seed noise as well as beyond the tolerance). A current row that is INVALID,
AUDIT-FAILED or AUDIT-ERROR regresses whatever its values.

A baseline entry without a current value — its runs failed, its metric failed or returned
nothing, or there is no such run — is **missing**, and so is one that lost runs to failures since
the baseline was made; missing entries fail the gate too unless ``allow_missing`` is given (then
they are reported and the remaining values are compared). Entries whose dataset or metric version
differs, and baseline rows that were not ok themselves, are not compared (reported as skipped).

A method whose noise takes no seed (``Method.reproducible = False``: AIM and MST through OpenDP;
any run with secure noise) gives a different value on every fresh run, and a single run has no
spread to judge that noise by. When either side of such an entry has one run, a drop beyond
``tolerance`` but within ``unseeded_tolerance`` (default 0.4: MST's run-to-run spread on the quick
suite reaches 9% relative for dcr) is reported as **noisy**, not failing; a larger drop (a value
halved) regresses. With at least two runs on both sides the CI rule above applies to it as to any
method.
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dparena.errors import ConfigError
from dparena.types import Direction

STATUSES = ("ok", "improved", "noisy", "regressed", "missing", "skipped")
UNSEEDED_TOLERANCE = 0.4
PRIVACY_FAILURES = {
    "invalid": "overspent its budget",
    "audit-failed": "the privacy audit rejects the claimed ε (Holm–Bonferroni over the store's "
                    "audits)",
    "audit-error": "the privacy audit raised, so the claimed ε is unchecked",
}


@dataclass
class Comparison:
    dataset: str
    label: str
    epsilon: float | None
    metric: str
    direction: str
    baseline: float
    current: float | None
    status: str  # one of STATUSES
    reason: str = ""

    @property
    def change(self) -> float | None:
        if self.current is None:
            return None
        return self.current - self.baseline


def load_baseline(path: str | Path) -> list[dict[str, Any]]:
    """The entries of a baseline file, checked: any defect is a one-line ConfigError."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"baseline file {path} not found; create one with "
                          f"`dparena leaderboard --format json --out {path}`")
    regenerate = "regenerate it with `dparena leaderboard --format json`"
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: could not read the baseline ({exc})") from None
    try:
        doc = json.loads(text, parse_constant=_no_constant)
    except (json.JSONDecodeError, ValueError) as exc:
        message = " ".join(str(exc).split())
        raise ConfigError(f"{path}: not valid JSON ({message}); {regenerate}") from None
    if not isinstance(doc, dict) or doc.get("format") != "dparena-leaderboard":
        raise ConfigError(f"{path}: not a dparena leaderboard JSON; create one with "
                          f"`dparena leaderboard --format json`")
    entries = doc.get("entries")
    if not isinstance(entries, list):
        raise ConfigError(f"{path}: has no 'entries' list; {regenerate}")
    if not entries:
        raise ConfigError(f"{path}: the baseline has no entries, so it gates nothing; make it "
                          f"from a database with results")
    seen = set()
    for i, entry in enumerate(entries, 1):
        problem = _entry_problem(entry)
        if problem is None and _key(entry) in seen:
            problem = "lists the same dataset, method, ε and metric twice"
        if problem is not None:
            what = (f" ({entry.get('dataset')}/{entry.get('label')}/ε={entry.get('epsilon')}/"
                    f"{entry.get('metric')})" if isinstance(entry, dict) else "")
            raise ConfigError(f"{path}: entry {i}{what} {problem}; {regenerate}")
        seen.add(_key(entry))
    return entries


def _no_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def _short(value: Any) -> str:
    text = " ".join(repr(value).split())
    return text if len(text) <= 40 else text[:37] + "..."


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


_DIRECTIONS = frozenset(d.value for d in Direction)


def _entry_problem(e: Any) -> str | None:
    """What is wrong with one baseline entry, or None."""
    if not isinstance(e, dict):
        return "is not an object"
    for name in ("dataset", "label", "metric"):
        if not isinstance(e.get(name), str):
            return f"has no text {name!r}"
    if e.get("direction") not in _DIRECTIONS:
        return "has no 'direction' (maximize or minimize)"
    if "epsilon" not in e or not (e["epsilon"] is None or (_number(e["epsilon"])
                                                          and e["epsilon"] > 0)):
        return "has no 'epsilon' (a number > 0, or null for a reference)"
    if "mean" not in e:
        return "has no 'mean'"
    if not _number(e["mean"]):
        return f"'mean' must be a finite number (got {_short(e['mean'])})"
    for name in ("std", "ci_low", "ci_high"):
        if e.get(name) is not None and not _number(e[name]):
            return f"{name!r} must be a finite number or null (got {_short(e[name])})"
    n = e.get("n", 1)
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        return f"'n' must be a positive integer (got {_short(n)})"
    lost = e.get("lost", 0)
    if not isinstance(lost, int) or isinstance(lost, bool) or lost < 0:
        return f"'lost' must be an integer >= 0 (got {_short(lost)})"
    if not isinstance(e.get("status", "ok"), str):
        return "'status' must be text"
    if e.get("reproducible") not in (None, True, False):
        return "'reproducible' must be true, false or null"
    return None


def _key(e: dict[str, Any]) -> tuple:
    return (e["dataset"], e["label"], e["epsilon"], e["metric"])


def check_tolerance(value: float, option: str = "--tolerance") -> float:
    if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise ConfigError(f"{option} must be a finite number >= 0 (a relative fraction, e.g. "
                          f"0.05), got {value!r}")
    return float(value)


def compare(current: list[dict[str, Any]], baseline: list[dict[str, Any]],
            tolerance: float = 0.05, allow_missing: bool = False,
            unseeded_tolerance: float = UNSEEDED_TOLERANCE) -> list[Comparison]:
    """Compare ``current`` entries (``aggregate.current_entries``; plain baseline entries work
    too) with ``baseline`` entries, one Comparison per baseline entry."""
    check_tolerance(tolerance)
    check_tolerance(unseeded_tolerance, "--unseeded-tolerance")
    now = {_key(e): e for e in current}
    rows = {_key(e)[:3] for e in current}
    out = []
    for base in baseline:
        comp = Comparison(base["dataset"], base["label"], base["epsilon"], base["metric"],
                          base["direction"], base["mean"], None, "missing")
        out.append(comp)
        if base.get("status", "ok") != "ok":
            comp.status = "skipped"
            comp.reason = f"the baseline's row is {base['status']}: nothing to compare with"
            continue
        cur = now.get(_key(base))
        if cur is None:
            comp.reason = ("no run" if _key(base)[:3] not in rows
                           else "no value: the current runs do not compute this metric")
            continue
        comp.current = cur.get("mean")
        if cur.get("status") in PRIVACY_FAILURES:
            status = cur["status"]
            comp.status = "regressed"
            comp.reason = f"{status}: {cur.get('note') or PRIVACY_FAILURES[status]}"
            continue
        if comp.current is None:
            comp.reason = cur.get("why") or "no value"
            continue
        lost = cur.get("lost", 0) > base.get("lost", 0)
        if lost and not allow_missing:
            comp.reason = cur.get("why") or "runs failed since the baseline"
            continue
        if (cur.get("dataset_version") != base.get("dataset_version")
                or cur.get("metric_version") != base.get("metric_version")):
            comp.status, comp.reason = "skipped", "dataset or metric version changed"
            continue
        _judge(comp, base, cur, tolerance, unseeded_tolerance)
        if lost:
            comp.reason = "; ".join(filter(None, [comp.reason, cur.get("why")]))
    return out


def _judge(comp: Comparison, base: dict[str, Any], cur: dict[str, Any], tolerance: float,
           unseeded_tolerance: float) -> None:
    """Set ``comp.status`` / ``reason`` from the two means (and their CIs)."""
    direction = Direction(base["direction"])
    worse_by = direction.gain(base["mean"], cur["mean"])
    allowed = tolerance * abs(base["mean"])
    if worse_by > allowed:
        both_ci = (base.get("n", 1) >= 2 and cur.get("n", 1) >= 2
                   and None not in (base.get("ci_low"), base.get("ci_high"),
                                    cur.get("ci_low"), cur.get("ci_high")))
        if both_ci:
            if direction.worse_interval((cur["ci_low"], cur["ci_high"]),
                                        than=(base["ci_low"], base["ci_high"])):
                comp.status, comp.reason = "regressed", "beyond tolerance and CIs disjoint"
            else:
                comp.status = "ok"
                comp.reason = "beyond tolerance but within seed noise (CIs overlap)"
        elif not _reproducible(base, cur):
            band = max(tolerance, unseeded_tolerance)
            n = min(base.get("n", 1), cur.get("n", 1))
            said = f"not reproducible: method noise is not seeded (n = {n})"
            if worse_by > band * abs(base["mean"]):
                comp.status = "regressed"
                comp.reason = f"{said}, but worse by more than its band of {band:g} relative"
            else:
                comp.status = "noisy"
                comp.reason = (f"{said}; worse by {worse_by / abs(base['mean']):.1%}, within its "
                               f"band of {band:g} relative")
        else:
            comp.status, comp.reason = "regressed", f"worse by more than {tolerance:g} relative"
    elif -worse_by > allowed:
        comp.status = "improved"
    else:
        comp.status = "ok"


def _reproducible(base: dict[str, Any], cur: dict[str, Any]) -> bool:
    """Whether an entry's values are a function of the seeds: what either side records (False
    wins), else what the method's class says (entries from before they recorded it)."""
    said = [e.get("reproducible") for e in (base, cur)]
    if False in said:
        return False
    if True in said:
        return True
    return _method_reproducible(base.get("method") or cur.get("method") or "")


@functools.cache
def _method_reproducible(name: str) -> bool:
    from dparena.methods import methods

    try:
        return bool(getattr(methods.get(name), "reproducible", True))
    except Exception:  # noqa: BLE001 - unknown or unimportable: judged as seeded (the strict side)
        return True


def failures(comps: list[Comparison], allow_missing: bool = False) -> list[Comparison]:
    """The comparisons that fail the gate: regressions, and missing results unless allowed."""
    failing = ("regressed",) if allow_missing else ("regressed", "missing")
    return [c for c in comps if c.status in failing]


def format_comparisons(comps: list[Comparison], allow_missing: bool = False) -> str:
    """A plain-text table of what regressed, went missing or was skipped, a count line and the
    verdict."""
    from dparena.leaderboard.render import fmt_value

    shown = [c for c in comps if c.status in ("regressed", "missing", "noisy", "skipped")]
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
    counts = {s: sum(c.status == s for c in comps) for s in STATUSES}
    lines.append(", ".join(f"{v} {k}" for k, v in counts.items()))
    failing = failures(comps, allow_missing)
    if failing:
        why = [f"{counts['regressed']} regressed"] if counts["regressed"] else []
        if counts["missing"] and not allow_missing:
            why.append(f"{counts['missing']} missing (a baseline entry without a current value "
                       f"fails; --allow-missing only reports it)")
        lines.append(f"gate: FAILED ({', '.join(why)})")
    else:
        lines.append("gate: passed" + (f" ({counts['missing']} missing allowed)"
                                       if counts["missing"] else ""))
    return "\n".join(lines)


def check_database(db, baseline, tolerance: float = 0.05, allow_missing: bool = False,
                   unseeded_tolerance: float = UNSEEDED_TOLERANCE) -> list[Comparison]:
    """Compare a result database with a baseline file (what `dparena check` does)."""
    from dparena.harness.store import Store
    from dparena.leaderboard.aggregate import build_tables, current_entries

    check_tolerance(tolerance)
    check_tolerance(unseeded_tolerance, "--unseeded-tolerance")
    base = load_baseline(baseline)
    current = current_entries(build_tables(Store(db, mode="r").runs(), all_metrics=True))
    return compare(current, base, tolerance, allow_missing, unseeded_tolerance)
