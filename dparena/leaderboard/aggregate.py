"""Aggregate stored runs into tables: mean, std, n and a 95% bootstrap CI per cell, ranks per metric.

Tables are data before they are text: one :class:`Table` per (dataset, ε) holds the DP methods run
at that ε plus every non-private reference (shown as labelled anchors, never ranked). A row whose
runs overspent their budget is INVALID: shown, never ranked. An empty cell says why it is empty.

Canary audits are judged together: Holm–Bonferroni at family-wise level AUDIT_LEVEL over the
audits of every current audited DP run in the store (across datasets and ε) decides which claims
are rejected; a row with a rejected claim is AUDIT-FAILED, one whose audit raised is AUDIT-ERROR,
and neither is ranked.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from dparena.types import Direction

if TYPE_CHECKING:
    from dparena.harness.store import StoredRun
    from dparena.harness.suite import RunSpec

BOOTSTRAP_RESAMPLES = 2000
CI_LEVEL = 0.95
AUDIT_LEVEL = 0.05  # family-wise error rate of the AUDIT-FAILED flags (Holm–Bonferroni)


@dataclass(frozen=True)
class Stat:
    mean: float
    std: float
    n: int
    ci_low: float | None
    ci_high: float | None

    @classmethod
    def of(cls, values: list[float], seed: int = 0) -> Stat:
        x = np.asarray(values, dtype=float)
        n = len(x)
        mean = float(x.mean())
        std = float(x.std(ddof=1)) if n > 1 else 0.0
        if n < 2:
            return cls(mean, std, n, None, None)
        rng = np.random.default_rng(seed)
        means = x[rng.integers(0, n, size=(BOOTSTRAP_RESAMPLES, n))].mean(axis=1)
        alpha = (1 - CI_LEVEL) / 2
        lo, hi = np.quantile(means, [alpha, 1 - alpha])
        return cls(mean, std, n, float(lo), float(hi))


@dataclass
class Cell:
    """One table cell: a statistic, or ``None`` with ``empty`` saying why ("no run", "failed", "n/a").

    ``lost`` counts the row's runs that have no value here because the run or the metric failed;
    ``note`` says why (the first error), for empty cells and for cells that lost runs.
    """

    stat: Stat | None
    empty: str = ""
    rank: int | None = None
    run_keys: tuple[str, ...] = ()
    note: str = ""
    lost: int = 0


@dataclass(frozen=True)
class ColumnSpec:
    name: str
    metric: str
    direction: Direction
    version: str


@dataclass
class Row:
    label: str
    method: str
    kind: str  # "dp" or "reference"
    status: str  # "ok", "invalid", "failed"
    spent_epsilon: float | None
    n_runs: int
    cells: dict[str, Cell] = field(default_factory=dict)
    note: str = ""
    audit_failed: bool = False
    audit_error: str = ""  # the error of an audit that raised
    accountant: str = ""  # how the runs' ε was composed ("?" if not recorded; "" for references)
    n_failed: int = 0  # runs of the row recorded as failed
    first_error: str = ""  # the first line of the first failed run's error
    # the runs' output is a function of their seed (False: unseeded noise; None: not recorded)
    reproducible: bool | None = None

    @property
    def rankable(self) -> bool:
        return (self.kind == "dp" and self.status == "ok" and not self.audit_failed
                and not self.audit_error)

    @property
    def display_status(self) -> str:
        """The status every format shows: "ok", "invalid", "failed", "audit-failed", "audit-error"."""
        if self.status != "ok":
            return self.status
        if self.audit_failed:
            return "audit-failed"
        if self.audit_error:
            return "audit-error"
        return "ok"

    @property
    def display_label(self) -> str:
        if self.kind == "reference":
            eps = self.spent_epsilon
            tag = "ε=∞" if eps is None or math.isinf(eps) else f"ε={eps:g}"
            return f"{self.label} (non-private reference, {tag})"
        if self.status == "invalid":
            return f"{self.label} [INVALID]"
        if self.status == "failed":
            return f"{self.label} [failed]"
        if self.audit_failed:
            return f"{self.label} [AUDIT-FAILED]"
        if self.audit_error:
            return f"{self.label} [AUDIT-ERROR]"
        return self.label


@dataclass
class Table:
    dataset: str
    dataset_version: str
    epsilon: float
    delta: float | None
    columns: list[ColumnSpec]
    rows: list[Row]
    about: str = ""  # where the numbers come from: suite, N, seeds, samples per run

    @property
    def title(self) -> str:
        delta = f", δ={self.delta:.3g}" if self.delta is not None else ""
        return f"{self.dataset} — ε={self.epsilon:g}{delta}"


def dataset_key(run: StoredRun | RunSpec) -> str:
    """The table a run lands in: "adult(split=dp2stage)" (a stored run or the spec it came from)."""
    extra = ",".join(f"{k}={v}" for k, v in sorted((run.dataset_params or {}).items()))
    return f"{run.dataset}({extra})" if extra else run.dataset


def latest_runs(runs: list[StoredRun]) -> list[StoredRun]:
    """The newest run of each (dataset, label, ε, seed).

    A store keeps every run it ever recorded; when a suite's parameters (or a method's defaults)
    change, the new runs get new keys beside the old ones. Only the latest of each slot describes
    the suite as it is now, so older ones must not be averaged into its cells.
    """
    newest: dict[tuple, StoredRun] = {}
    for run in runs:
        slot = (dataset_key(run), run.label, run.epsilon, run.seed)
        best = newest.get(slot)
        if best is None or (run.created_at, run.key) > (best.created_at, best.key):
            newest[slot] = run
    return [r for r in runs if newest[(dataset_key(r), r.label, r.epsilon, r.seed)] is r]


def build_tables(runs: list[StoredRun], all_metrics: bool = False) -> list[Table]:
    """Group runs by dataset and ε into tables (references repeated in every ε of their dataset).

    Superseded runs (an older run of the same dataset, label, ε and seed) are left out.
    """
    by_dataset: dict[str, list[StoredRun]] = defaultdict(list)
    current = latest_runs(runs)
    for run in current:
        by_dataset[dataset_key(run)].append(run)
    audits = judge_audits(current)
    tables = []
    for ds, ds_runs in sorted(by_dataset.items()):
        columns = _columns(ds_runs, all_metrics)
        refs = [r for r in ds_runs if r.epsilon is None]
        epsilons = sorted({r.epsilon for r in ds_runs if r.epsilon is not None})
        if not epsilons:
            epsilons = [math.inf]
        for eps in epsilons:
            at_eps = [r for r in ds_runs if r.epsilon is not None and r.epsilon == eps]
            rows = _rows(at_eps, columns, "dp", audits) + _rows(refs, columns, "reference", audits)
            _rank(rows, columns)
            rows.sort(key=lambda r: (r.kind != "dp", not r.rankable, _sort_key(r, columns)))
            deltas = {r.delta for r in at_eps}
            tables.append(Table(
                dataset=ds, dataset_version=ds_runs[0].dataset_version, epsilon=eps,
                delta=deltas.pop() if len(deltas) == 1 else None, columns=columns, rows=rows,
                about=about(at_eps + refs),
            ))
    return tables


def _public_size(run: StoredRun) -> int | None:
    """The public N a run recorded (``info["public_size"]``), or for a run recorded before runs
    kept it, the dataset's documented size under its parameters (``datasets.public_size``)."""
    recorded = (run.info or {}).get("public_size")
    if isinstance(recorded, int) and not isinstance(recorded, bool):
        return recorded
    from dparena.datasets import public_size

    return public_size(run.dataset, run.dataset_params or {})


def about(runs: list[StoredRun], suite: bool = True) -> str:
    """One line naming what a table's numbers come from: "suite quick · N = 400 private records
    (n_private) · seeds 0, 1 (aim, mst: 0) · 300 samples per run"; N is the public size the runs
    recorded (or their dataset documents); parts that are not known are left out, and the suite
    when ``suite`` is false (a page about one suite)."""
    def listed(values) -> str:
        return ", ".join(str(v) for v in sorted(values))

    parts = []
    suites = {r.suite for r in runs} - {None, ""}
    if suites and suite:
        parts.append(f"suite {listed(suites)}")
    sizes = {_public_size(r) for r in runs}
    if len(sizes) == 1 and None not in sizes:
        n = sizes.pop()
        subsample = {(r.dataset_params or {}).get("n_private") for r in runs} == {n}
        parts.append(f"N = {n:,} private records{' (n_private)' if subsample else ''}")
    seeds = sorted({r.seed for r in runs})
    if seeds:
        by_label: dict[str, set[int]] = defaultdict(set)
        for r in runs:
            by_label[r.label].add(r.seed)
        fewer = defaultdict(list)
        for label, got in sorted(by_label.items()):
            if got != set(seeds):
                fewer[listed(got)].append(label)
        extra = "; ".join(f"{', '.join(labels)}: {got}" for got, labels in fewer.items())
        parts.append(f"seed{'s' if len(seeds) > 1 else ''} {listed(seeds)}"
                     + (f" ({extra})" if extra else ""))
    samples = {r.n_samples for r in runs} - {None}
    if samples:
        parts.append(f"{', '.join(f'{n:,}' for n in sorted(samples))} samples per run")
    return " · ".join(parts)


@dataclass(frozen=True)
class AuditVerdict:
    """One stored audit judged among the store's: its p-value (None if unknown) and Holm's call."""

    p_value: float | None
    rejected: bool
    family: int  # K, the audits Holm–Bonferroni ran over


def judge_audits(runs: list[StoredRun], level: float = AUDIT_LEVEL
                 ) -> dict[str, AuditVerdict]:
    """Holm–Bonferroni over the audits of ``runs`` (DP runs with a stored audit), by run key.

    Each audit tests the null "the method is (claimed ε, δ)-DP"; an audit without a p-value
    (a multi-run record from before dparena stored it) is not tested and not counted in K.
    """
    from dparena.privacy.audit import holm_bonferroni, stored_p_value

    audited = [r for r in runs if r.epsilon is not None and r.audit]
    p_values = {r.key: stored_p_value(r.audit) for r in audited}
    tested = [k for k, p in p_values.items() if p is not None]
    rejected = dict(zip(tested, holm_bonferroni([p_values[k] for k in tested], level),
                        strict=True))
    return {k: AuditVerdict(p, rejected.get(k, False), len(tested)) for k, p in p_values.items()}


def _audit_note(audit: dict[str, Any], verdict: AuditVerdict) -> str:
    over = f"(Holm–Bonferroni over {verdict.family} audit{'s' if verdict.family != 1 else ''})"
    if verdict.p_value is None:
        return (f"privacy audit ({audit['analysis']}): stored by an older dparena without a "
                f"p-value, so not tested and never flagged; rerun the audit to test the claim")
    said = (f"privacy audit ({audit['analysis']}): p = {verdict.p_value:.2g} for the claimed "
            f"ε = {audit['claimed_epsilon']:g}, single-audit lower bound ε ≥ "
            f"{audit['lower_bound']:.3g}")
    if verdict.rejected:
        return f"{said}; exceeds the claimed ε at {1 - AUDIT_LEVEL:.0%} confidence {over}"
    return f"{said}; not significant at family-wise level {AUDIT_LEVEL:g} {over}"


def _columns(runs: list[StoredRun], all_metrics: bool) -> list[ColumnSpec]:
    order: dict[str, ColumnSpec] = {}
    metric_order: list[str] = []
    for run in runs:
        for m in run.requested_metrics:
            if m not in metric_order:
                metric_order.append(m)
    for run in runs:
        for name, v in run.metrics.items():
            if (v.headline or all_metrics) and name not in order:
                order[name] = ColumnSpec(name, v.metric, Direction(v.direction), v.version)
    # metrics requested but never produced by any run still get a column (cells say why)
    for m in metric_order:
        if not any(c.metric == m for c in order.values()):
            order[m] = ColumnSpec(m, m, Direction.MAXIMIZE, "")

    def position(c: ColumnSpec) -> tuple[int, str]:
        idx = metric_order.index(c.metric) if c.metric in metric_order else len(metric_order)
        return idx, c.name

    return sorted(order.values(), key=position)


def _rows(runs: list[StoredRun], columns: list[ColumnSpec], kind: str,
          audits: dict[str, AuditVerdict]) -> list[Row]:
    groups: dict[str, list[StoredRun]] = defaultdict(list)
    for run in runs:
        groups[run.label].append(run)
    rows = []
    for label, group in sorted(groups.items()):
        statuses = {r.status for r in group}
        status = "invalid" if "invalid" in statuses else ("ok" if "ok" in statuses else "failed")
        scored = [r for r in group if r.status == status] if status != "failed" else []
        spent = [r.spent_epsilon for r in group if r.spent_epsilon is not None]
        row = Row(label=label, method=group[0].method, kind=kind, status=status,
                  spent_epsilon=max(spent) if spent else None, n_runs=len(group))
        failed = [r for r in group if r.status == "failed"]
        if failed:
            first = failed[0].error
            row.n_failed = len(failed)
            row.first_error = first.splitlines()[0] if first else ""
            row.note = f"{len(failed)}/{len(group)} runs failed: {row.first_error}"
        if status == "invalid":
            row.note = next(r.error for r in group if r.status == "invalid")
        if kind == "dp":
            row.accountant = " / ".join(sorted({r.accountant or "?"
                                                for r in (scored or group)}))
            _judge_row(row, scored, audits)
        row.reproducible = _reproducible(scored or group)
        for col in columns:
            row.cells[col.name] = _cell(row, col, scored)
        rows.append(row)
    return rows


def _reproducible(runs: list[StoredRun]) -> bool | None:
    """False if any run's noise is not seeded, True if every run says it is, else None."""
    said = [r.reproducible for r in runs]
    if any(v is False for v in said) or any(r.secure_noise for r in runs):
        return False
    return True if said and all(v is True for v in said) else None


def _cell(row: Row, col: ColumnSpec, scored: list[StoredRun]) -> Cell:
    values = [v for r in scored if col.name in r.metrics
              if (v := r.metrics[col.name].value) is not None]
    keys = tuple(r.key for r in scored if col.name in r.metrics)
    errors = [r.metric_errors[col.metric] for r in scored
              if col.metric in r.metric_errors and col.name not in r.metrics]
    lost, why = _lost(row, errors)
    if values:
        stat = Stat.of(values) if all(math.isfinite(v) for v in values) else None
        if stat is not None and math.isfinite(stat.mean):
            return Cell(stat, run_keys=keys, note=why, lost=lost)
        # a non-finite value: shown as what the mean is (inf, -inf, nan), never ranked or plotted
        with np.errstate(all="ignore"):
            token = _nonfinite_token(float(np.mean(values)))
        bad = sum(not math.isfinite(v) for v in values)
        note = f"non-finite ({token}) on {bad}/{len(values)} runs: not ranked or plotted"
        return Cell(None, token, run_keys=keys, note="; ".join(filter(None, [note, why])),
                    lost=lost)
    if row.status == "failed":
        return Cell(None, "failed", note=row.first_error, lost=lost)
    if errors:
        errored = [r for r in scored if col.metric in r.metric_errors]
        if errored and all(records_returned(r) == 0 for r in errored):
            # the method ran but produced nothing to score (an LM with no parseable row)
            return Cell(None, "0 valid rows", note=errors[0], lost=lost)
        return Cell(None, "failed", note=errors[0], lost=lost)
    if col.metric == "audit" or any(col.metric in r.requested_metrics for r in scored):
        return Cell(None, "n/a", note=why, lost=lost)
    return Cell(None, "no run", note=why, lost=lost)


def records_returned(run: StoredRun) -> int | None:
    """How many records a run's method returned, from its stored info (the harness' shortfall, or
    an LM's valid_rows); None when the info does not say."""
    info = run.info or {}
    if isinstance(info.get("shortfall"), int) and run.n_samples is not None:
        return int(run.n_samples) - int(info["shortfall"])
    if isinstance(info.get("valid_rows"), int):
        return int(info["valid_rows"])
    return None


NONFINITE = ("inf", "-inf", "nan")


def _nonfinite_token(value: float) -> str:
    """"inf", "-inf" or "nan" for a non-finite value (a mean of finite values that overflows is
    inf too)."""
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return "nan"


def _lost(row: Row, errors: list[str]) -> tuple[int, str]:
    """How many of the row's runs have no value in a cell because they or its metric failed, and
    why (the first error of each kind)."""
    parts, lost = [], 0
    if row.n_failed and row.status != "failed":
        lost += row.n_failed
        parts.append(f"{row.n_failed}/{row.n_runs} runs failed: {row.first_error}")
    elif row.status == "failed":
        lost += row.n_failed
    if errors:
        lost += len(errors)
        parts.append(f"the metric failed on {len(errors)}/{row.n_runs} runs: {errors[0]}")
    return lost, "; ".join(parts)


def _judge_row(row: Row, scored: list[StoredRun], audits: dict[str, AuditVerdict]) -> None:
    """Flag the row AUDIT-FAILED (Holm rejects one of its audits) or AUDIT-ERROR (one raised)."""
    judged = [(r.audit, audits[r.key]) for r in scored if r.key in audits]
    rejected = [(a, v) for a, v in judged if v.rejected]
    errors = [r.metric_errors["audit"] for r in scored if "audit" in r.metric_errors]
    if rejected:
        row.audit_failed = True
        row.note = _audit_note(*min(rejected, key=lambda av: av[1].p_value))
        return
    if errors:
        row.audit_error = errors[0] or "the audit raised"
        row.note = f"privacy audit raised ({len(errors)}/{row.n_runs} runs): {row.audit_error}"
        return
    if row.note:
        return
    # a bound above the claim that Holm does not reject, or an audit that cannot be tested
    untested = [(a, v) for a, v in judged if v.p_value is None]
    alone = [(a, v) for a, v in judged
             if v.p_value is not None and v.p_value < 1 - float(a.get("confidence") or 0.95)]
    if alone:
        row.note = _audit_note(*min(alone, key=lambda av: av[1].p_value))
    elif untested:
        row.note = _audit_note(*untested[0])


def _rank(rows: list[Row], columns: list[ColumnSpec]) -> None:
    """Competition ranking (1, 2, 2, 4) among valid DP rows, per quality column (not the audit)."""
    for col in columns:
        if col.metric == "audit":
            continue
        ranked = [(r.cells[col.name].stat.mean, r) for r in rows
                  if r.rankable and r.cells[col.name].stat is not None]
        ranked.sort(key=lambda t: col.direction.best_first(t[0]))
        for value, row in ranked:
            row.cells[col.name].rank = 1 + sum(1 for v, _ in ranked
                                               if col.direction.better(v, value))


def _sort_key(row: Row, columns: list[ColumnSpec]) -> tuple:
    for col in columns:
        cell = row.cells.get(col.name)
        if cell and cell.stat is not None:
            return (0, col.direction.best_first(cell.stat.mean), row.label)
    return (1, 0.0, row.label)


def baseline_entries(tables: list[Table]) -> list[dict[str, Any]]:
    """Flat records (one per dataset, row, ε, metric value) used by the JSON format and the gate."""
    return _entries(tables, empty=False)


def current_entries(tables: list[Table]) -> list[dict[str, Any]]:
    """What the gate compares a baseline with: the baseline records of ``tables`` plus one record
    (``mean`` None) per empty cell, each record with ``why`` its value is missing or incomplete
    (e.g. "failed: <first error line> (2/2 runs)"; "" when nothing is)."""
    return _entries(tables, empty=True)


def _entries(tables: list[Table], empty: bool) -> list[dict[str, Any]]:
    out = []
    seen = set()
    for table in tables:
        for row in table.rows:
            eps = None if row.kind == "reference" else table.epsilon
            for col in table.columns:
                cell = row.cells.get(col.name)
                if cell is None or (cell.stat is None and not empty):
                    continue
                key = (table.dataset, row.label, eps, col.name)
                if key in seen:  # references repeat in every ε table
                    continue
                seen.add(key)
                s = cell.stat
                entry = {
                    "dataset": table.dataset, "dataset_version": table.dataset_version,
                    "label": row.label, "method": row.method, "kind": row.kind,
                    "status": row.display_status, "epsilon": eps, "metric": col.name,
                    "metric_version": col.version, "direction": col.direction.value,
                    "mean": s.mean if s else None, "std": s.std if s else None,
                    "n": s.n if s else 0, "ci_low": s.ci_low if s else None,
                    "ci_high": s.ci_high if s else None, "lost": cell.lost,
                    "reproducible": row.reproducible, "accountant": row.accountant,
                    "note": row.note,
                }
                if empty:
                    entry["why"] = cell.note if s else _why_empty(row, cell)
                out.append(entry)
    return out


def _why_empty(row: Row, cell: Cell) -> str:
    """Why a cell has no value, in the gate's words."""
    if cell.empty == "failed" and row.status == "failed":
        return f"failed: {cell.note} ({row.n_failed}/{row.n_runs} runs)"
    if cell.empty == "failed":
        return f"failed: {cell.note}"
    if cell.empty == "n/a":
        return "n/a: the metric returned no value"
    if cell.empty in NONFINITE:
        return cell.note
    return cell.empty + (f" ({cell.note})" if cell.note else "")
