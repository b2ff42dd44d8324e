"""A pytest plugin (entry point ``pytest11``) for gating a project's CI on synthetic-data quality.

    def test_synthetic_quality(dparena_check):
        dparena_check(baseline="results/baseline.json", db="results/quick/runs.sqlite")
        # or run (resume) a suite first:
        dparena_check(baseline="results/baseline.json", suite="benchmarks/suites/quick.toml")

The test fails, printing the same table as ``dparena check``, when any (dataset, method, ε,
metric) mean regressed against the baseline beyond the tolerance, or has no current value (its
runs failed, or there is none), or — with ``suite=`` — when a run of the suite is recorded as
failed, on the first attempt and on every resumed one. ``allow_missing=True`` is the explicit
opt-out: missing values and failed runs are then reported, not failing. ``unseeded_tolerance`` is
``dparena check --unseeded-tolerance`` (single runs of methods whose noise takes no seed). Plugins named in
$DPARENA_PLUGINS (or the ``dparena.plugins`` entry points) are loaded as by the command line.
"""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def dparena_check():
    def check(baseline: str | Path, db: str | Path | None = None, suite: str | Path | None = None,
              tolerance: float = 0.05, allow_missing: bool = False,
              unseeded_tolerance: float = 0.4):
        from dparena.errors import DparenaError

        try:
            return _check(baseline, db, suite, tolerance, allow_missing, unseeded_tolerance)
        except DparenaError as exc:
            pytest.fail(f"error: {exc}", pytrace=False)

    return check


def _check(baseline, db, suite, tolerance: float, allow_missing: bool,
           unseeded_tolerance: float):
    from dparena.leaderboard import gate
    from dparena.plugins import load_plugins

    load_plugins()
    gate.check_tolerance(tolerance)
    gate.check_tolerance(unseeded_tolerance, "unseeded_tolerance")
    gate.load_baseline(baseline)  # a bad baseline is reported before the suite runs
    failed_runs: list[str] = []
    if suite is not None:
        from dparena.harness.runner import Runner
        from dparena.harness.store import Store
        from dparena.harness.suite import load_suite

        loaded = load_suite(suite)
        db = Path(db) if db else Path("results") / loaded.name / "runs.sqlite"
        store = Store(db)
        Runner(store).run(loaded.specs)
        # failed runs stay failed in the store (a resume skips them): judge the store, not this
        # invocation's summary, so a retry fails like the first attempt
        failed = store.finished_keys(("failed",))
        errors = {r.key: r.error for r in store.runs() if r.key in failed}
        failed_runs = [f"{s.name}: {(errors.get(s.key) or '').partition(chr(10))[0]}"
                       for s in loaded.specs if s.key in failed]
    if db is None:
        raise ValueError("dparena_check needs db= or suite=")
    comps = gate.check_database(db, baseline, tolerance, allow_missing, unseeded_tolerance)
    bad = gate.failures(comps, allow_missing)
    if bad or (failed_runs and not allow_missing):
        head = "synthetic-data quality regressed against the baseline"
        if failed_runs:
            head = (f"{len(failed_runs)} runs of the suite failed (a resume skips them; fix them "
                    f"or pass allow_missing=True):\n  " + "\n  ".join(failed_runs[:10])
                    + ("\n  ..." if len(failed_runs) > 10 else "") + f"\n{head}")
        pytest.fail(f"{head}:\n{gate.format_comparisons(comps, allow_missing)}", pytrace=False)
    return comps
