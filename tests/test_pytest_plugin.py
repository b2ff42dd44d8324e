"""The pytest plugin as a user's CI would use it, in a real pytest subprocess (pytester)."""

import json
import sqlite3

from dparena.harness.runner import Runner
from dparena.harness.store import Store
from dparena.harness.suite import parse_suite
from dparena.leaderboard.aggregate import build_tables
from dparena.leaderboard.render import to_json

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
