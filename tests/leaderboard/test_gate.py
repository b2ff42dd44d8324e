"""The regression gate: results that disappear fail it, bad inputs are one-line errors, noise of
unseeded methods is not a regression."""

import json
import math
import subprocess
import sys
from dataclasses import replace

import pytest

from dparena.errors import ConfigError
from dparena.harness.store import RunRecord, Store, StoredRun, StoredValue
from dparena.harness.suite import parse_suite
from dparena.leaderboard.aggregate import baseline_entries, build_tables, current_entries
from dparena.leaderboard.gate import compare, failures, format_comparisons, load_baseline
from dparena.leaderboard.render import to_json
from tests.cli_helpers import assert_user_error, dparena
from tests.paths import ROOT


def _run(label, eps, seed, values, status="ok", method=None, error="", metric_errors=None,
         reproducible=None):
    return StoredRun(
        key=f"{label}-{eps}-{seed}", dataset="toy", dataset_version="1", method=method or label,
        label=label, epsilon=eps, delta=1e-5, seed=seed, status=status, error=error,
        spent_epsilon=math.inf if eps is None else eps, metric_errors=metric_errors or {},
        spec={"metrics": ["m"]}, created_at="2026-01-01T00:00:00+00:00",
        metrics={name: StoredValue("m", name, v) for name, v in values.items()},
        reproducible=reproducible)


def _entries(runs):
    return baseline_entries(build_tables(runs, all_metrics=True))


def _now(runs):
    return current_entries(build_tables(runs, all_metrics=True))


BASE = [_run("a", 1.0, s, {"m": 0.80 + 0.01 * s}) for s in range(2)] + [
    _run("b", 1.0, s, {"m": 0.50 + 0.01 * s}) for s in range(2)]


def _by_label(comps):
    return {c.label: c for c in comps}


# -- item 1: results that disappear fail the gate ----------------------------------------------

def test_a_method_failing_on_every_seed_fails_the_gate_and_says_why():
    base = _entries(BASE)
    now = [r for r in BASE if r.label == "a"] + [
        _run("b", 1.0, s, {}, status="failed",
             error="RuntimeError: deliberate failure\nTraceback (most recent call last): ...")
        for s in range(2)]
    comps = compare(_now(now), base)
    b = _by_label(comps)["b"]
    assert b.status == "missing" and b.current is None
    assert b.reason == "failed: RuntimeError: deliberate failure (2/2 runs)"
    assert failures(comps) == [b]
    # the explicit opt-out reports it but does not fail
    allowed = compare(_now(now), base, allow_missing=True)
    assert _by_label(allowed)["b"].status == "missing"
    assert failures(allowed, allow_missing=True) == []
    table = format_comparisons(comps)
    assert "failed: RuntimeError: deliberate failure" in table and "gate: FAILED" in table
    assert "gate: passed" in format_comparisons(compare(_now(now), base, allow_missing=True),
                                                 allow_missing=True)


def test_absent_results_fail_the_gate():
    base = _entries(BASE)
    # an empty database
    comps = compare(_now([]), base)
    assert {c.status for c in comps} == {"missing"} and {c.reason for c in comps} == {"no run"}
    assert len(failures(comps)) == 2
    # a metric that errors on every run, and one that returns nothing
    now = [_run("a", 1.0, s, {}, metric_errors={"m": "ValueError: bad input"}) for s in range(2)]
    now += [_run("b", 1.0, s, {}) for s in range(2)]
    comps = _by_label(compare(_now(now), base))
    assert comps["a"].status == "missing" and comps["a"].reason.startswith("failed: ValueError: bad")
    assert comps["b"].status == "missing" and comps["b"].reason.startswith("n/a")
    # the row is there but no longer computes the metric
    other = [replace(r, metrics={"other": replace(r.metrics["m"], name="other")}) for r in BASE]
    comps = compare(_now(other), base)
    assert {c.status for c in comps} == {"missing"}
    assert all("do not compute this metric" in c.reason for c in comps)


def test_runs_lost_since_the_baseline_fail_the_gate():
    """One of two seeds now fails: the mean over the other is not the baseline's mean."""
    base = _entries(BASE)
    now = BASE[:1] + [_run("a", 1.0, 1, {}, status="failed", error="MemoryError: boom")] + BASE[2:]
    a = _by_label(compare(_now(now), base))["a"]
    assert a.status == "missing" and a.reason == "1/2 runs failed: MemoryError: boom"
    # opted out, the remaining value is compared as usual
    a = _by_label(compare(_now(now), base, allow_missing=True))["a"]
    assert a.status == "ok" and "1/2 runs failed" in a.reason and a.current == 0.8
    # a baseline made with the same failure does not count it again
    assert failures(compare(_now(now), _entries(now))) == []


def test_privacy_failures_fail_even_when_missing_results_are_allowed():
    base = _entries(BASE)
    now = [replace(r, status="invalid", error="spent (ε=2, δ=1e-05) exceeds the budget") if
           r.label == "b" else r for r in BASE]
    comps = compare(_now(now), base, allow_missing=True)
    b = _by_label(comps)["b"]
    assert b.status == "regressed" and b.reason.startswith("invalid: spent (ε=2")
    assert failures(comps, allow_missing=True) == [b]


def test_baseline_rows_that_were_not_ok_are_reported_as_skipped():
    base = _entries(BASE)
    base[0]["status"] = "invalid"
    comps = compare(_now(BASE), base)
    assert comps[0].status == "skipped" and "invalid" in comps[0].reason
    assert failures(comps) == []


@pytest.mark.parametrize("tolerance", [math.nan, math.inf, -0.01])
def test_tolerance_must_be_finite_and_non_negative(tolerance):
    with pytest.raises(ConfigError, match="tolerance"):
        compare(_now(BASE), _entries(BASE), tolerance=tolerance)


def _doc(entries):
    return {"format": "dparena-leaderboard", "format_version": 1, "entries": entries}


GOOD = _entries(BASE)[0]


@pytest.mark.parametrize("text,fragment", [
    ("{", "not valid JSON"),
    ('{"format": "dparena-leaderboard", "entries": [{"mean": NaN}]}', "not valid JSON"),
    ("[]", "not a dparena leaderboard JSON"),
    (json.dumps({"format": "dparena-leaderboard"}), "'entries' list"),
    (json.dumps(_doc({"a": 1})), "'entries' list"),
    (json.dumps(_doc([])), "no entries"),
    (json.dumps(_doc([3])), "entry 1 is not an object"),
    (json.dumps(_doc([{k: v for k, v in GOOD.items() if k != "mean"}])), "'mean'"),
    (json.dumps(_doc([dict(GOOD, mean=None)])), "'mean' must be a finite number"),
    (json.dumps(_doc([dict(GOOD, mean="0.8")])), "'mean' must be a finite number"),
    (json.dumps(_doc([dict(GOOD, mean=True)])), "'mean' must be a finite number"),
    (json.dumps(_doc([dict(GOOD, mean=1e999)])), "not valid JSON"),
    (json.dumps(_doc([dict(GOOD, n=0)])), "'n' must be a positive integer"),
    (json.dumps(_doc([dict(GOOD, direction="up")])), "'direction'"),
    (json.dumps(_doc([dict(GOOD, epsilon="1")])), "'epsilon'"),
    (json.dumps(_doc([dict(GOOD, label=None)])), "'label'"),
    (json.dumps(_doc([dict(GOOD, ci_low="x")])), "'ci_low'"),
    (json.dumps(_doc([GOOD, GOOD])), "twice"),
])
def test_bad_baselines_are_one_line_config_errors(tmp_path, text, fragment):
    path = tmp_path / "baseline.json"
    path.write_text(text)
    with pytest.raises(ConfigError, match="baseline.json") as info:
        load_baseline(path)
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_a_real_baseline_loads(tmp_path):
    path = tmp_path / "baseline.json"
    path.write_text(to_json(build_tables(BASE)))
    assert load_baseline(path) == json.loads(path.read_text())["entries"]
    assert (tmp_path / "nope.json").exists() is False
    with pytest.raises(ConfigError, match="not found"):
        load_baseline(tmp_path / "nope.json")
    with pytest.raises(ConfigError, match="could not read"):
        load_baseline(tmp_path)


# -- the command line --------------------------------------------------------------------------

RAW = {"name": "gate", "seeds": [0, 1], "epsilons": [2.0], "delta": 1e-5,
       "section": [{"dataset": "adult", "dataset_params": {"n_private": 400, "n_eval": 400},
                    "n_samples": 300, "metrics": ["histogram-intersection"],
                    "methods": [{"name": "independent-marginals"}, {"name": "uniform"}]}]}


def _record(store, spec, status="ok", value=0.8, error=""):
    metrics = [] if status == "failed" else [
        {"metric": "histogram-intersection", "name": "histogram-intersection", "value": value,
         "direction": "maximize", "version": "1", "headline": True}]
    store.record(RunRecord(spec, status, spent_epsilon=spec.epsilon, metrics=metrics, error=error,
                           created_at="2026-01-01T00:00:00+00:00"))


def test_check_fails_on_lost_results_unless_allowed_and_rejects_bad_options(tmp_path):
    specs = parse_suite(RAW).specs
    good, broken = Store(tmp_path / "good.sqlite"), Store(tmp_path / "broken.sqlite")
    for spec in specs:
        _record(good, spec, value=0.8 + 0.01 * spec.seed)
        if spec.method == "uniform":
            _record(broken, spec, value=0.8 + 0.01 * spec.seed)
        else:
            _record(broken, spec, "failed", error="RuntimeError: deliberate failure\nTraceback")
    baseline = tmp_path / "baseline.json"
    baseline.write_text(to_json(build_tables(good.runs())))
    empty = Store(tmp_path / "empty.sqlite")
    del empty

    ok = dparena("check", "--db", good.path, "--baseline", baseline)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "gate: passed" in ok.stdout
    bad = dparena("check", "--db", broken.path, "--baseline", baseline)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    line = next(ln for ln in bad.stdout.splitlines() if ln.startswith("missing"))
    assert "independent-marginals" in line and "failed: RuntimeError: deliberate failure" in line
    allowed = dparena("check", "--db", broken.path, "--baseline", baseline, "--allow-missing")
    assert allowed.returncode == 0 and "missing" in allowed.stdout, allowed.stdout
    nothing = dparena("check", "--db", tmp_path / "empty.sqlite", "--baseline", baseline)
    assert nothing.returncode == 1 and "no run" in nothing.stdout

    assert_user_error(dparena("check", "--db", good.path, "--baseline", baseline,
                              "--tolerance", "nan"), "--tolerance")
    assert_user_error(dparena("check", "--db", good.path, "--baseline", baseline,
                              "--tolerance", "-1"), "--tolerance")
    junk = tmp_path / "junk.json"
    junk.write_text(json.dumps(_doc([dict(GOOD, mean=None)])))
    assert_user_error(dparena("check", "--db", good.path, "--baseline", junk), "'mean'")


# -- item 2: run-to-run noise of unseeded methods is not a regression --------------------------

def _single(label, value, reproducible, method=None):
    return _entries([_run(label, 1.0, 0, {"m": value}, method=method,
                          reproducible=reproducible)])


def test_a_single_unseeded_run_is_gated_by_the_wide_band():
    """MST at ε = 1: dcr 0.775 -> 0.720 on a fresh `make demo` is OpenDP's unseeded noise."""
    base, fresh = _single("mst", 0.775, False), _single("mst", 0.720, False)
    assert base[0]["reproducible"] is False
    [c] = compare(fresh, base)
    assert c.status == "noisy" and failures([c]) == []
    assert c.reason.startswith("not reproducible: method noise is not seeded (n = 1)")
    assert "noisy" in format_comparisons([c]) and "gate: passed" in format_comparisons([c])
    # a halved value is beyond the band: a regression
    [c] = compare(_single("mst", 0.775 / 2, False), base)
    assert c.status == "regressed" and "not seeded" in c.reason
    # a seeded method reproduces its value: the plain tolerance applies
    [c] = compare(_single("marg", 0.720, True), _single("marg", 0.775, True))
    assert c.status == "regressed"
    # the band is an option, checked like the tolerance
    [c] = compare(fresh, base, unseeded_tolerance=0.05)
    assert c.status == "regressed"
    with pytest.raises(ConfigError, match="--unseeded-tolerance"):
        compare(fresh, base, unseeded_tolerance=math.nan)


def test_older_baselines_learn_reproducibility_from_the_method_class():
    """A baseline written before entries said whether they reproduce: the registry decides."""
    base, fresh = _single("mst", 0.775, None), _single("mst", 0.720, None)
    assert base[0]["reproducible"] is None
    for entries in (base, fresh):
        for e in entries:
            e["method"] = "mst"
    assert compare(fresh, base)[0].status == "noisy"
    for e in base + fresh:
        e["method"] = "independent-marginals"
    assert compare(fresh, base)[0].status == "regressed"


def test_runs_record_whether_they_reproduce(tmp_path):
    from dparena.methods.baselines.aim_mst import AIM, MST
    from dparena.methods.baselines.marginals import IndependentMarginals

    assert not AIM.reproducible and not MST.reproducible and IndependentMarginals.reproducible
    raw = {"name": "r", "seeds": [0], "epsilons": [1.0], "delta": 1e-5,
           "section": [{"dataset": "adult", "dataset_params": {"n_private": 400, "n_eval": 400},
                        "n_samples": 300, "metrics": ["histogram-intersection"],
                        "methods": [{"name": "independent-marginals"}, {"name": "mst"}]}]}
    store = Store(tmp_path / "runs.sqlite")
    for spec in parse_suite(raw).specs + parse_suite(raw, secure_noise=True).specs:
        _record(store, spec)
    got = {(r.method, r.secure_noise): r.reproducible for r in store.runs()}
    assert got == {("independent-marginals", False): True, ("mst", False): False,
                   ("independent-marginals", True): False, ("mst", True): False}


MST_SECTION = {  # the quick suite's adult-opendp section, shrunk: 4 Adult columns, 200 samples
    "name": "opendp", "seeds": [0], "epsilons": [0.3], "delta": 1e-5,
    "section": [{"dataset": "test-adult4", "dataset_params": {"n_private": 1000, "n_eval": 1000},
                 "n_samples": 200,
                 "metrics": ["histogram-intersection", "pair-histogram-intersection"],
                 "methods": [{"name": "mst", "params": {"bins": 8, "iters": 100}},
                             {"name": "independent-marginals"}]}],
}


def test_two_fresh_runs_of_an_unseeded_section_pass_each_others_baseline(tmp_path):
    """A small quick-suite AIM/MST section: two fresh runs (MST's noise differs between them)
    pass each other's baseline in both directions; halving the values still fails the gate."""
    import os
    import sqlite3

    from dparena.leaderboard.gate import check_database

    # each run is a fresh `dparena run` process, as in CI: a driver that has itself used polars
    # (OpenDP's engine; earlier tests in this process did) cannot fork workers that use it again
    suite = tmp_path / "opendp.toml"
    sec = MST_SECTION["section"][0]
    suite.write_text(
        'name = "opendp"\nseeds = [0]\nepsilons = [0.3]\ndelta = 1e-5\n[[section]]\n'
        f'dataset = "{sec["dataset"]}"\n'
        'dataset_params = { n_private = 1000, n_eval = 1000 }\nn_samples = 200\n'
        'metrics = ["histogram-intersection", "pair-histogram-intersection"]\n'
        'methods = [{ name = "mst", params = { bins = 8, iters = 100 } }, '
        '{ name = "independent-marginals" }]\n')
    dbs = [tmp_path / f"{i}" / "runs.sqlite" for i in range(2)]
    env = {**os.environ, "DPARENA_PLUGINS": "tests.gate_plugins", "PYTHONPATH": str(ROOT)}
    for db in dbs:
        out = subprocess.run([sys.executable, "-m", "dparena", "run", str(suite), "--db", str(db),
                              "--quiet"], cwd=ROOT, env=env, capture_output=True, text=True,
                             timeout=600)
        assert out.returncode == 0, out.stderr
        assert all(r.status == "ok" for r in Store(db, mode="r").runs())
    values = [{(r.label, n): m.value for r in Store(db).runs()
               for n, m in r.metrics.items()} for db in dbs]
    assert values[0] != values[1]  # MST's noise takes no seed
    assert all(values[0][k] == values[1][k] for k in values[0] if k[0] == "independent-marginals")
    for mine, other in ((0, 1), (1, 0)):
        baseline = tmp_path / f"baseline{other}.json"
        baseline.write_text(to_json(build_tables(Store(dbs[other]).runs())))
        comps = check_database(dbs[mine], baseline)
        assert failures(comps) == [], format_comparisons(comps)
    entries = json.loads(baseline.read_text())["entries"]
    assert {e["reproducible"] for e in entries if e["label"] == "mst"} == {False}

    con = sqlite3.connect(dbs[0])
    with con:
        con.execute("UPDATE metric_values SET value = value * 0.5")
    con.close()
    comps = check_database(dbs[0], tmp_path / "baseline1.json")
    bad = failures(comps)
    assert {c.label for c in bad} == {"mst", "independent-marginals"}
    assert all(c.status == "regressed" for c in bad)
