import json
import math

import numpy as np
import pytest

from dparena.leaderboard.aggregate import Stat, baseline_entries, build_tables
from dparena.leaderboard.gate import compare
from dparena.leaderboard.render import latex_escape, render, to_html, to_markdown


def _run(label, eps, seed, values, status="ok", method=None, direction="maximize", error=""):
    spec = {"metrics": ["m"]}
    return {
        "key": f"{label}-{eps}-{seed}", "dataset": "toy", "dataset_params": {},
        "dataset_version": "1", "method": method or label, "label": label, "epsilon": eps,
        "delta": 1e-5, "seed": seed, "status": status, "error": error,
        "spent_epsilon": math.inf if eps is None else eps, "metric_errors": {},
        "spec": json.dumps(spec), "created_at": "2026-01-01T00:00:00+00:00",
        "metrics": {name: {"value": v, "direction": direction, "metric": "m", "version": "1",
                           "headline": 1} for name, v in values.items()},
    }


def test_stat_bootstrap_ci_brackets_the_mean():
    s = Stat.of([0.5, 0.6, 0.7, 0.8])
    assert s.mean == pytest.approx(0.65) and s.n == 4
    assert s.std == pytest.approx(np.std([0.5, 0.6, 0.7, 0.8], ddof=1))
    assert 0.5 <= s.ci_low < s.mean < s.ci_high <= 0.8
    assert Stat.of([0.3]).ci_low is None


def test_tables_rank_by_direction_and_keep_references_unranked():
    runs = [
        *[_run("a", 1.0, s, {"m": 0.9 + 0.01 * s}) for s in range(3)],
        *[_run("b", 1.0, s, {"m": 0.5}) for s in range(3)],
        *[_run("bad", 1.0, s, {"m": 0.99}, status="invalid", error="spent too much") for s in range(2)],
        _run("real", None, 0, {"m": 1.0}),
        _run("a", 4.0, 0, {"m": 0.95}),
    ]
    tables = build_tables(runs)
    assert [t.epsilon for t in tables] == [1.0, 4.0]
    t1 = tables[0]
    rows = {r.label: r for r in t1.rows}
    assert rows["a"].cells["m"].rank == 1 and rows["b"].cells["m"].rank == 2
    assert rows["bad"].cells["m"].rank is None and rows["bad"].display_label == "bad [INVALID]"
    assert rows["real"].cells["m"].rank is None and "non-private reference" in rows["real"].display_label
    assert [r.label for r in t1.rows][:2] == ["a", "b"]
    # the reference appears in the ε=4 table too
    assert any(r.label == "real" for r in tables[1].rows)

    # minimise metrics rank the other way
    runs_min = [_run("a", 1.0, 0, {"m": 3.0}, direction="minimize"),
                _run("b", 1.0, 0, {"m": 2.0}, direction="minimize")]
    rows = {r.label: r for r in build_tables(runs_min)[0].rows}
    assert rows["b"].cells["m"].rank == 1


def test_empty_cells_say_why():
    failed = _run("f", 1.0, 0, {}, status="failed", error="boom")
    na = _run("n", 1.0, 0, {})
    merr = _run("e", 1.0, 0, {})
    merr["metric_errors"] = {"m": "ValueError: bad"}
    ok = _run("ok", 1.0, 0, {"m": 0.5})
    rows = {r.label: r for r in build_tables([failed, na, merr, ok])[0].rows}
    assert rows["f"].cells["m"].empty == "failed" and "boom" in rows["f"].note
    assert rows["n"].cells["m"].empty == "n/a"
    assert rows["e"].cells["m"].empty == "failed"


def test_html_escapes_everything_and_is_self_contained():
    evil = "<script>alert(1)</script>"
    html = to_html(build_tables([_run(evil, 1.0, 0, {"m": 0.5})]))
    assert evil not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<link" not in html and "src=" not in html
    md = to_markdown(build_tables([_run("x|y", 1.0, 0, {"m": 0.5})]))
    assert "x\\|y" in md and "ε=1" in md


def test_latex_escaping():
    assert latex_escape("a_b & 50% #1 {x}") == r"a\_b \& 50\% \#1 \{x\}"
    tex = render(build_tables([_run("dp_sgd", 1.0, 0, {"m": 0.5})]), "latex")
    assert r"dp\_sgd" in tex and r"\begin{tabular}" in tex


def test_csv_and_json_formats():
    runs = [_run("a", 1.0, s, {"m": 0.5 + s / 10}) for s in range(2)]
    tables = build_tables(runs)
    csv_text = render(tables, "csv")
    header, first = csv_text.splitlines()[:2]
    assert header.startswith("dataset,epsilon,delta,label")
    assert first.startswith("toy,1.0,")
    doc = json.loads(render(tables, "json"))
    assert doc["format"] == "dparena-leaderboard"
    assert doc["entries"][0]["mean"] == pytest.approx(0.55) and doc["entries"][0]["n"] == 2


def test_gate_detects_regressions_with_tolerance_and_ci():
    base_runs = [_run("a", 1.0, s, {"m": 0.80 + 0.001 * s}) for s in range(3)]
    base = baseline_entries(build_tables(base_runs))
    same = compare(base, base, tolerance=0.05)
    assert {c.status for c in same} == {"ok"}

    worse = baseline_entries(build_tables([_run("a", 1.0, s, {"m": 0.60 + 0.001 * s}) for s in range(3)]))
    result = compare(worse, base, tolerance=0.05)
    assert [c.status for c in result] == ["regressed"]

    slightly = baseline_entries(build_tables([_run("a", 1.0, s, {"m": 0.78}) for s in range(3)]))
    assert compare(slightly, base, tolerance=0.05)[0].status == "ok"  # within 5%

    # noisy seeds: beyond tolerance but the CIs overlap -> not a regression
    noisy_base = baseline_entries(build_tables([_run("a", 1.0, s, {"m": v}) for s, v in enumerate([0.5, 0.9, 0.7])]))
    noisy_now = baseline_entries(build_tables([_run("a", 1.0, s, {"m": v}) for s, v in enumerate([0.4, 0.8, 0.6])]))
    assert compare(noisy_now, noisy_base, tolerance=0.01)[0].status == "ok"

    assert compare([], base)[0].status == "missing"
    changed = [dict(e, metric_version="2") for e in base]
    assert compare(changed, base)[0].status == "skipped"


def test_superseded_runs_are_left_out_of_the_tables():
    """A changed config records new runs beside the old ones: only the newest of each
    (dataset, label, ε, seed) may count, or old and new results would be averaged."""
    old = [_run("a", 1.0, s, {"m": 0.1}) for s in range(2)]
    new = [dict(_run("a", 1.0, s, {"m": 0.9}), key=f"a-new-{s}",
                created_at="2026-02-01T00:00:00+00:00") for s in range(2)]
    table = build_tables(old + new)[0]
    row = next(r for r in table.rows if r.label == "a")
    assert row.n_runs == 2 and row.cells["m"].stat.mean == pytest.approx(0.9)
