import csv
import io
import json
import math
from dataclasses import replace

import numpy as np
import pytest

from dparena.harness.store import StoredRun, StoredValue
from dparena.leaderboard.aggregate import Stat, baseline_entries, build_tables, current_entries
from dparena.leaderboard.gate import compare
from dparena.leaderboard.render import latex_escape, render, to_html, to_markdown


def _run(label, eps, seed, values, status="ok", method=None, direction="maximize", error="",
         **fields):
    fields = {"spec": {"metrics": ["m"]}, **fields}
    return StoredRun(
        key=f"{label}-{eps}-{seed}", dataset="toy", dataset_version="1", method=method or label,
        label=label, epsilon=eps, delta=1e-5, seed=seed, status=status, error=error,
        spent_epsilon=math.inf if eps is None else eps, created_at="2026-01-01T00:00:00+00:00",
        metrics={name: StoredValue("m", name, v, direction) for name, v in values.items()},
        **fields)


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
    merr = _run("e", 1.0, 0, {}, metric_errors={"m": "ValueError: bad"})
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


def test_every_table_names_its_suite_n_seeds_and_samples():
    runs = [replace(_run(label, eps, seed, {"m": 0.5}), suite="quick", n_samples=300,
                    dataset_params={"n_private": 4000})
            for label, eps, seeds in (("a", 1.0, (0, 1)), ("b", 1.0, (0,)), ("real", None, (0, 1)))
            for seed in seeds]
    table = build_tables(runs)[0]
    assert table.about == ("suite quick · N = 4,000 private records (n_private) · seeds 0, 1 "
                           "(b: 0) · 300 samples per run")
    assert f"### {table.title}\n\n{table.about}\n" in to_markdown([table])
    assert f"<p class='about'>{table.about}</p>" in to_html([table])


def test_a_table_names_the_documented_n_of_its_dataset():
    """N is the dataset's public size under the section's parameters (its documentation, never a
    count of the private rows), also when no n_private subsample is given."""
    def about(dataset, params):
        runs = [replace(_run("a", 1.0, 0, {"m": 0.5}), dataset=dataset, dataset_params=params,
                        suite="s", n_samples=10)]
        return build_tables(runs)[0].about

    assert about("adult", {"split": "dp2stage"}) == (
        "suite s · N = 30,932 private records · seed 0 · 10 samples per run")
    assert about("mnist", {"n_eval": 2000}).startswith("suite s · N = 50,000 private records · ")
    assert about("adult", {"n_private": 500}).startswith("suite s · N = 500 private records "
                                                         "(n_private) · ")
    # a dataset this process does not register, with no subsample size: N is not claimed
    assert about("toy", {}) == "suite s · seed 0 · 10 samples per run"
    # several sample counts in one table: in numeric order
    runs = [replace(_run(label, 1.0, 0, {"m": 0.5}), n_samples=n)
            for label, n in (("a", 10_000), ("b", 500))]
    assert build_tables(runs)[0].about.endswith("seed 0 · 500, 10,000 samples per run")
    # the N a run recorded wins over today's documentation of its dataset
    recorded = replace(_run("a", 1.0, 0, {"m": 0.5}), dataset="toy", info={"public_size": 1234})
    assert build_tables([recorded])[0].about.startswith("N = 1,234 private records · ")


def test_ties_share_a_rank_in_either_direction():
    for direction, values, ranks in (("maximize", [0.9, 0.5, 0.5, 0.1], [1, 2, 2, 4]),
                                     ("minimize", [0.9, 0.5, 0.5, 0.1], [4, 2, 2, 1])):
        runs = [_run(label, 1.0, 0, {"m": v}, direction=direction)
                for label, v in zip("abcd", values, strict=True)]
        rows = {r.label: r for r in build_tables(runs)[0].rows}
        assert [rows[label].cells["m"].rank for label in "abcd"] == ranks, direction
        assert build_tables(runs)[0].rows[0].label == ("a" if direction == "maximize" else "d")


def test_the_gate_judges_a_minimised_metric_the_other_way():
    def entries(values):
        return baseline_entries(build_tables(
            [_run("a", 1.0, s, {"m": v}, direction="minimize") for s, v in enumerate(values)]))

    base = entries([10.0, 10.1, 10.2])
    assert [c.status for c in compare(entries([14.0, 14.1, 14.2]), base)] == ["regressed"]
    assert [c.status for c in compare(entries([6.0, 6.1, 6.2]), base)] == ["improved"]
    # beyond tolerance but the CIs overlap: seed noise, not a regression
    wide = entries([9.0, 11.0, 13.0])
    assert [c.status for c in compare(entries([10.0, 12.0, 14.0]), wide, tolerance=0.01)] == ["ok"]


def test_superseded_runs_are_left_out_of_the_tables():
    """A changed config records new runs beside the old ones: only the newest of each
    (dataset, label, ε, seed) may count, or old and new results would be averaged."""
    old = [_run("a", 1.0, s, {"m": 0.1}) for s in range(2)]
    new = [replace(_run("a", 1.0, s, {"m": 0.9}), key=f"a-new-{s}",
                   created_at="2026-02-01T00:00:00+00:00") for s in range(2)]
    table = build_tables(old + new)[0]
    row = next(r for r in table.rows if r.label == "a")
    assert row.n_runs == 2 and row.cells["m"].stat.mean == pytest.approx(0.9)


def _audited(label, eps, seed, p_value, lower_bound=1.1, created_at=None, **audit):
    """A DP run with a stored canary audit of p-value ``p_value`` (None: an older record)."""
    run = _run(label, eps, seed, {"m": 0.5})
    stored = {"claimed_epsilon": eps, "delta": 1e-5, "lower_bound": lower_bound,
              "confidence": 0.95, "analysis": "one-run", "attack": "rare-value canaries",
              "canaries": 100, "guesses": 100, "correct": 60, "runs": 1,
              "failed": lower_bound > eps, **audit}
    if p_value is not None:
        stored["p_value"] = p_value
    bound = StoredValue("audit", "audit/eps-lower-bound", lower_bound, "minimize")
    return replace(run, spec={"metrics": ["m", "audit"]}, audit=stored,
                   metrics={**run.metrics, bound.name: bound},
                   created_at=created_at or run.created_at)


def _all_formats(tables):
    return {fmt: render(tables, fmt) for fmt in ("md", "html", "latex", "csv", "json")}


def test_audit_flags_are_holm_corrected_over_the_store():
    """40 audits at p ≈ 0.03 (each flagged alone at 95%) flag nothing together; p = 1e-6 still is."""
    runs = [_audited(f"m{i:02d}", 1.0 if i % 2 else 2.0, s, 0.03 + 0.0001 * i)
            for i in range(20) for s in range(2)]
    runs.append(_audited("leaky", 1.0, 0, 1e-6, lower_bound=3.0))
    # a superseded audit of the same slot is not one of the store's current audits
    runs.append(_audited("leaky", 1.0, 0, 1e-9, lower_bound=5.0, created_at="2025-01-01T00:00:00"))
    tables = build_tables(runs)
    rows = [r for t in tables for r in t.rows]
    flagged = {r.label for r in rows if r.audit_failed}
    assert flagged == {"leaky"}
    assert all(r.rankable for r in rows if r.label != "leaky")
    leaky = next(r for r in rows if r.label == "leaky")
    assert not leaky.rankable and leaky.display_label == "leaky [AUDIT-FAILED]"
    assert "exceeds the claimed ε at 95% confidence (Holm–Bonferroni over 41 audits)" in leaky.note
    assert "p = 1e-06" in leaky.note
    # an unflagged row whose bound alone exceeds ε says why it is not flagged
    other = next(r for r in rows if r.label == "m01")
    assert "not significant" in other.note and "41 audits" in other.note
    # the audit column is kept as it is
    assert other.cells["audit/eps-lower-bound"].stat.mean == pytest.approx(1.1)
    out = _all_formats(tables)
    for fmt, text in out.items():
        assert "proof" not in text.lower(), fmt
        assert "AUDIT-FAILED" in text or "audit-failed" in text, fmt
    wording = "exceeds the claimed ε at 95% confidence (Holm–Bonferroni over 41 audits)"
    for fmt in ("md", "html", "csv"):
        assert wording in out[fmt], fmt
    assert latex_escape(wording) in out["latex"]
    entries = json.loads(out["json"])["entries"]
    assert {e["label"] for e in entries if e["status"] == "audit-failed"} == {"leaky"}
    assert all(wording in e["note"] for e in entries if e["label"] == "leaky")

    # alone, one audit at p = 0.03 is flagged (K = 1)
    [alone] = [r for r in build_tables([_audited("a", 1.0, 0, 0.03)])[0].rows]
    assert alone.audit_failed and "(Holm–Bonferroni over 1 audit)" in alone.note


def test_older_audits_without_a_p_value():
    """One-run records are recomputed from their guesses; multi-run ones are left unflagged."""
    runs = [_audited("one", 1.0, 0, None, lower_bound=2.5, correct=100),
            _audited("multi", 1.0, 0, None, lower_bound=2.5, analysis="multi-run", runs=100),
            _audited("chance", 1.0, 0, None, lower_bound=0.0, correct=55)]
    rows = {r.label: r for r in build_tables(runs)[0].rows}
    assert rows["one"].audit_failed and "over 2 audits" in rows["one"].note
    assert not rows["multi"].audit_failed and rows["multi"].rankable
    assert "without a p-value" in rows["multi"].note
    assert not rows["chance"].audit_failed and rows["chance"].note == ""


def test_audit_error_is_shown_and_never_ranked():
    err = "ConfigError: no public category is absent from the private data"
    broken = _run("broken", 1.0, 0, {"m": 0.99}, metric_errors={"audit": err},
                  spec={"metrics": ["m", "audit"]})
    runs = [broken, _run("fine", 1.0, 0, {"m": 0.5}), _run("real", None, 0, {"m": 1.0})]
    tables = build_tables(runs)
    rows = {r.label: r for r in tables[0].rows}
    row = rows["broken"]
    assert row.audit_error == err and not row.rankable and not row.audit_failed
    assert row.display_label == "broken [AUDIT-ERROR]" and err in row.note
    assert row.cells["m"].rank is None and rows["fine"].cells["m"].rank == 1
    out = _all_formats(tables)
    for fmt, text in out.items():
        assert "AUDIT-ERROR" in text or "audit-error" in text, fmt
    assert err in out["md"] and err in out["csv"]
    [entry] = [e for e in json.loads(out["json"])["entries"] if e["label"] == "broken"]
    assert entry["status"] == "audit-error" and err in entry["note"]
    csv_rows = list(csv.DictReader(io.StringIO(out["csv"])))
    assert {r["status"] for r in csv_rows if r["label"] == "broken"} == {"audit-error"}
    # the gate does not let an unaudited run pass as ok
    base = baseline_entries(build_tables([_run("broken", 1.0, 0, {"m": 0.99})]))
    [comp] = compare(baseline_entries(tables), base)
    assert comp.status == "regressed" and "audit" in comp.reason


def _with_accountant(run, accountant):
    return replace(run, accountant=accountant)


def _accountant_tables():
    runs = [_with_accountant(_run("gauss", 1.0, 0, {"m": 0.6}), "GDP (exact)"),
            _with_accountant(_run("gauss", 1.0, 1, {"m": 0.7}), "PRV + basic"),
            _with_accountant(_run("gauss", 1.0, 2, {"m": 0.7}), "GDP (exact)"),
            _with_accountant(_run("sgd_lm", 1.0, 0, {"m": 0.5}), "RDP"),
            _run("old", 1.0, 0, {"m": 0.4}),  # recorded before runs kept their accountant
            _with_accountant(_run("real", None, 0, {"m": 1.0}), "none")]
    return build_tables(runs)


def test_rows_carry_the_accountant():
    rows = {r.label: r for r in _accountant_tables()[0].rows}
    assert rows["gauss"].accountant == "GDP (exact) / PRV + basic"
    assert rows["sgd_lm"].accountant == "RDP"
    assert rows["old"].accountant == "?"
    assert rows["real"].accountant == ""


def test_every_format_shows_the_accountant():
    tables = _accountant_tables()
    md = render(tables, "md")
    table_lines = [ln for ln in md.splitlines() if ln.startswith("|")]
    header = table_lines[0]
    assert "| accountant |" in header
    # valid Markdown: every line of the table has as many cells as the header
    n_cells = header.count(" | ")
    assert all(ln.replace("\\|", "").count("|") == header.count("|") for ln in table_lines)
    assert n_cells >= 2
    gauss = next(ln for ln in table_lines if ln.startswith("| gauss"))
    assert gauss.rstrip(" |").endswith("GDP (exact) / PRV + basic")
    assert next(ln for ln in table_lines if ln.startswith("| old")).rstrip(" |").endswith("?")

    csv_rows = list(csv.DictReader(io.StringIO(render(tables, "csv"))))
    assert {r["label"]: r["accountant"] for r in csv_rows} == {
        "gauss": "GDP (exact) / PRV + basic", "sgd_lm": "RDP", "old": "?", "real": ""}

    entries = json.loads(render(tables, "json"))["entries"]
    assert {e["label"]: e["accountant"] for e in entries} == {
        "gauss": "GDP (exact) / PRV + basic", "sgd_lm": "RDP", "old": "?", "real": ""}

    page = render(tables, "html")
    assert "<th onclick='sortBy(this)'>accountant</th>" in page
    assert ">GDP (exact) / PRV + basic</td>" in page and ">RDP</td>" in page

    tex = render(tables, "latex")
    assert "Accountant" in tex and "GDP (exact) / PRV + basic" in tex
    gauss_tex = next(ln for ln in tex.splitlines() if ln.startswith("gauss"))
    assert gauss_tex.count("&") == len(tables[0].columns) + 1 and "RDP" in tex
    assert "sgd\\_lm" in tex


# -- non-finite metric values ------------------------------------------------------------------

def _nonfinite_store(tmp_path, values):
    """A store with one run of independent-marginals per value of ``values`` (seeds 0, 1, ...)
    and one finite uniform run, as `dparena run` would record them."""
    from dparena.harness.store import RunRecord, Store
    from dparena.harness.suite import parse_suite

    raw = {"name": "nf", "seeds": list(range(len(values))), "epsilons": [1.0], "delta": 1e-5,
           "section": [{"dataset": "adult", "dataset_params": {"n_private": 400, "n_eval": 400},
                        "n_samples": 300, "metrics": ["histogram-intersection"],
                        "methods": [{"name": "independent-marginals"}, {"name": "uniform"}]}]}
    store = Store(tmp_path / "runs.sqlite")
    for spec in parse_suite(raw).specs:
        value = values[spec.seed] if spec.method == "independent-marginals" else 0.5
        store.record(RunRecord(spec, "ok", spent_epsilon=spec.epsilon, metrics=[
            {"metric": "histogram-intersection", "name": "histogram-intersection",
             "value": value, "direction": "maximize", "version": "1", "headline": True}],
            created_at="2026-01-01T00:00:00+00:00"))
    return store


def test_nonfinite_values_are_stored_as_null_with_their_kind(tmp_path):
    import sqlite3

    store = _nonfinite_store(tmp_path, [math.inf, -math.inf, math.nan, "not a number", 0.25])
    con = sqlite3.connect(store.path)
    got = sorted(con.execute("SELECT r.seed, m.value, m.nonfinite FROM metric_values m JOIN runs r "
                             "USING (key) WHERE r.method = 'independent-marginals'"))
    assert got == [(0, None, "inf"), (1, None, "-inf"), (2, None, "nan"), (3, None, "nan"),
                   (4, 0.25, "")]


def test_plots_are_the_same_bytes_when_written_again(tmp_path):
    """Publishing again must not rewrite committed plots: no date in the SVG, no random ids."""
    import time

    from dparena.leaderboard.plots import plot_tables

    tables = build_tables([_run("a", eps, seed, {"m": 0.1 * eps + 0.01 * seed})
                           for eps in (1.0, 4.0) for seed in (0, 1)])
    plot_tables(tables, tmp_path / "one")
    time.sleep(1.1)
    plot_tables(tables, tmp_path / "two")
    for name in ("toy--m.png", "toy--m.svg"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()


def test_a_nonfinite_value_is_shown_never_ranked_and_never_plotted(tmp_path):
    from dparena.leaderboard.plots import plot_tables

    runs = [_run("inf", 1.0, 0, {"m": math.inf}), _run("inf", 1.0, 1, {"m": 0.9}),
            _run("nan", 1.0, 0, {"m": math.nan}), _run("fine", 1.0, 0, {"m": 0.5}),
            _run("fine", 4.0, 0, {"m": 0.6}), _run("inf", 4.0, 0, {"m": math.inf})]
    # what the store returns for a run recorded by this version: NULL with its kind
    stored = StoredValue.from_row({"metric": "m", "name": "m", "value": None, "nonfinite": "-inf",
                                   "direction": "maximize", "version": "1", "headline": 1})
    runs.append(replace(_run("stored", 1.0, 0, {}), key="stored", metrics={"m": stored}))
    tables = build_tables(runs)
    rows = {r.label: r for r in tables[0].rows}
    assert rows["fine"].cells["m"].rank == 1
    for label, token in (("inf", "inf"), ("nan", "nan"), ("stored", "-inf")):
        cell = rows[label].cells["m"]
        assert cell.stat is None and cell.rank is None and cell.empty == token
        assert "non-finite" in cell.note
    assert "1/2 runs" in rows["inf"].cells["m"].note
    out = _all_formats(tables)
    assert "| inf |" in out["md"].replace(" (1)", "") and ">inf</td>" in out["html"]
    assert [e["label"] for e in json.loads(out["json"])["entries"]] == ["fine", "fine"]
    assert [p.name for p in plot_tables(tables, tmp_path / "plots")] == ["toy--m.png"]
    [comp] = [c for c in compare(current_entries(tables), baseline_entries(
        build_tables([_run("inf", 1.0, s, {"m": 0.9}) for s in range(2)]))) if c.epsilon == 1.0]
    assert comp.status == "missing" and comp.reason.startswith("non-finite (inf)")


def test_one_inf_does_not_stop_the_leaderboards(tmp_path, monkeypatch):
    """A metric that returns inf once must not break every later leaderboard of the database,
    and plots that fail must not cost the Markdown and HTML."""
    import sqlite3

    from dparena.leaderboard.publish import write_leaderboards

    store = _nonfinite_store(tmp_path, [math.inf, 0.8])
    write_leaderboards(store, tmp_path)
    md = (tmp_path / "leaderboard.md").read_text()
    assert "inf" in md and (tmp_path / "leaderboard.html").exists()
    # a database written by an older version holds inf as a REAL
    con = sqlite3.connect(store.path)
    with con:
        con.execute("UPDATE metric_values SET value = 9e999, nonfinite = '' WHERE value IS NULL")
    con.close()
    (tmp_path / "leaderboard.md").unlink()
    write_leaderboards(store, tmp_path)
    assert "inf" in (tmp_path / "leaderboard.md").read_text()

    def broken(*args, **kwargs):
        raise ValueError("Axis limits cannot be NaN or Inf")

    import dparena.leaderboard.plots

    monkeypatch.setattr(dparena.leaderboard.plots, "plot_tables", broken)
    for name in ("leaderboard.md", "leaderboard.html"):
        (tmp_path / name).unlink()
    write_leaderboards(store, tmp_path)
    assert (tmp_path / "leaderboard.md").exists() and (tmp_path / "leaderboard.html").exists()


def test_markdown_escapes_headers_labels_and_newlines():
    run = _run("two\nlines|x", 1.0, 0, {"a|b\nc": 0.5}, error="")
    tables = build_tables([run, _run("plain", 1.0, 0, {"a|b\nc": 0.4})])
    tables[0].rows[0].note = "first\nsecond | third"
    md = to_markdown(tables)
    table = [ln for ln in md.splitlines() if ln.startswith("|")]
    assert len(table) == 4  # header, rule, two rows: no newline broke a row
    pipes = {ln.replace("\\|", "").count("|") for ln in table}
    assert pipes == {table[1].count("|")}
    assert "a\\|b c ↑" in table[0] and "two lines\\|x" in md
    assert "first second \\| third" in md


def test_csv_cells_cannot_be_formulas():
    """OWASP CSV injection: text cells starting with = + - @ tab or CR get a leading quote;
    numbers stay numbers."""
    evil = '=HYPERLINK("http://evil.example","x")'
    runs = [_run(evil, 1.0, 0, {"@SUM(A1)": -0.5}), _run("+cmd", 1.0, 0, {"@SUM(A1)": 0.2}),
            _run("-x", 1.0, 0, {"@SUM(A1)": 0.1}), _run("\tt", 1.0, 0, {"@SUM(A1)": 0.3})]
    rows = list(csv.DictReader(io.StringIO(render(build_tables(runs), "csv"))))
    labels = {r["label"] for r in rows}
    assert labels == {"'" + evil, "'+cmd", "'-x", "'\tt"}
    assert {r["metric"] for r in rows} == {"'@SUM(A1)"}
    assert {r["mean"] for r in rows if r["label"] == "'" + evil} == {"-0.5"}
