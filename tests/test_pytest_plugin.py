"""The pytest plugin as a user's CI would use it, in a real pytest subprocess (pytester)."""

import json
import sqlite3

from dparena.harness.runner import Runner
from dparena.harness.store import Store
from dparena.harness.suite import parse_suite
from dparena.leaderboard.aggregate import build_tables
from dparena.leaderboard.render import to_json
from tests.cli_helpers import dparena
from tests.paths import ROOT

pytest_plugins = ["pytester"]

RAW = {
    "name": "gate", "seeds": [0, 1], "epsilons": [5.0], "delta": 1e-5,
    "section": [{"dataset": "adult", "dataset_params": {"n_private": 400, "n_eval": 400},
                 "n_samples": 300, "metrics": ["histogram-intersection"],
                 "methods": [{"name": "independent-marginals"}]}],
}


def test_plugin_passes_then_fails_on_regression(pytester, tmp_path):
    db = tmp_path / "runs.sqlite"
    store = Store(db)
    Runner(store).run(parse_suite(RAW).specs)
    baseline = tmp_path / "baseline.json"
    baseline.write_text(to_json(build_tables(store.runs())))
    pytester.makepyfile(f"""
        def test_quality(dparena_check):
            comps = dparena_check(baseline={str(baseline)!r}, db={str(db)!r})
            assert comps
    """)
    pytester.runpytest_subprocess().assert_outcomes(passed=1)

    con = sqlite3.connect(db)
    with con:
        con.execute("UPDATE metric_values SET value = value * 0.5")
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*quality regressed*", "*regressed*independent-marginals*"])
    assert json.loads(baseline.read_text())["entries"]


SUITE_TOML = """
name = "ci"
seeds = [0, 1]
epsilons = [5.0]
delta = 1e-5

[[section]]
dataset = "adult"
dataset_params = { n_private = 400, n_eval = 400 }
n_samples = 300
metrics = ["histogram-intersection"]
methods = [{ name = "independent-marginals" }, { name = "test-breaks" }]
"""


def test_a_method_that_starts_crashing_fails_the_gate_on_the_first_run_and_on_a_retry(
        pytester, tmp_path, monkeypatch):
    """The baseline is made while test-breaks works; then it raises on every run. The fixture
    (which resumes the suite, so a retry skips the failed runs) and `dparena check` must both
    fail, every time, until the user opts out with allow_missing."""
    import os

    root = ROOT
    monkeypatch.setenv("DPARENA_PLUGINS", "tests.gate_plugins")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]))

    suite = tmp_path / "ci.toml"
    suite.write_text(SUITE_TOML)
    good = tmp_path / "good" / "runs.sqlite"
    baseline = tmp_path / "baseline.json"
    made = dparena("run", suite, "--db", good, "--quiet", "--strict")
    assert made.returncode == 0, made.stderr
    assert dparena("leaderboard", "--db", good, "--format", "json", "--out", baseline).returncode == 0
    assert {e["label"] for e in json.loads(baseline.read_text())["entries"]} == {
        "independent-marginals", "test-breaks"}

    monkeypatch.setenv("DPARENA_TEST_BROKEN", "1")
    db = tmp_path / "ci" / "runs.sqlite"
    pytester.makepyfile(f"""
        def test_quality(dparena_check):
            dparena_check(baseline={str(baseline)!r}, suite={str(suite)!r}, db={str(db)!r})
    """)
    first = pytester.runpytest_subprocess()
    first.assert_outcomes(failed=1)
    first.stdout.fnmatch_lines(["*2 runs of the suite failed*",
                                "*missing*test-breaks*failed: RuntimeError: deliberate regression*"])
    con = sqlite3.connect(db)
    assert con.execute("SELECT DISTINCT status FROM runs WHERE method = 'test-breaks'").fetchall() \
        == [("failed",)]
    con.close()

    retry = pytester.runpytest_subprocess()  # resumes: the failed runs are skipped
    retry.assert_outcomes(failed=1)
    retry.stdout.fnmatch_lines(["*missing*test-breaks*failed: RuntimeError: deliberate regression*"])

    check = dparena("check", "--db", db, "--baseline", baseline)
    assert check.returncode == 1, check.stdout + check.stderr
    assert "failed: RuntimeError: deliberate regression" in check.stdout

    pytester.makepyfile(f"""
        def test_quality(dparena_check):
            comps = dparena_check(baseline={str(baseline)!r}, suite={str(suite)!r},
                                  db={str(db)!r}, allow_missing=True)
            assert {{c.status for c in comps if c.label == "test-breaks"}} == {{"missing"}}
    """)
    pytester.runpytest_subprocess().assert_outcomes(passed=1)


def test_bad_arguments_fail_before_the_suite_runs(pytester, tmp_path, monkeypatch):
    import os

    root = ROOT
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]))
    suite = tmp_path / "ci.toml"
    suite.write_text(SUITE_TOML.replace('{ name = "test-breaks" }', '{ name = "uniform" }'))
    baseline = tmp_path / "baseline.json"
    baseline.write_text('{"format": "dparena-leaderboard", "entries": []}')
    db = tmp_path / "ci" / "runs.sqlite"
    pytester.makepyfile(f"""
        def test_empty_baseline(dparena_check):
            dparena_check(baseline={str(baseline)!r}, suite={str(suite)!r}, db={str(db)!r})

        def test_nan_tolerance(dparena_check):
            dparena_check(baseline={str(baseline)!r}, suite={str(suite)!r}, db={str(db)!r},
                          tolerance=float("nan"))
    """)
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(["*error: *baseline.json: the baseline has no entries*",
                                 "*error: --tolerance must be a finite number*"])
    assert not db.exists()
