"""A pytest plugin (entry point ``pytest11``) for gating a project's CI on synthetic-data quality.

    def test_synthetic_quality(dparena_check):
        dparena_check(baseline="results/baseline.json", db="results/quick/runs.sqlite")
        # or run (resume) a suite first:
        dparena_check(baseline="results/baseline.json", suite="benchmarks/suites/quick.toml")

The test fails, printing the same table as ``dparena check``, when any (dataset, method, ε,
metric) mean regressed against the baseline beyond the tolerance.
"""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def dparena_check():
    def check(baseline: str | Path, db: str | Path | None = None, suite: str | Path | None = None,
              tolerance: float = 0.05):
        from dparena.leaderboard.gate import check_database, format_comparisons

        if suite is not None:
            from dparena.harness.runner import Runner
            from dparena.harness.store import Store
            from dparena.harness.suite import load_suite

            loaded = load_suite(suite)
            db = Path(db) if db else Path("results") / loaded.name / "runs.sqlite"
            summary = Runner(Store(db)).run(loaded.specs)
            if summary.failed:
                pytest.fail(f"{len(summary.failed)} runs failed: {summary.failed[0]}")
        if db is None:
            raise ValueError("dparena_check needs db= or suite=")
        comps = check_database(db, baseline, tolerance)
        regressed = [c for c in comps if c.status == "regressed"]
        if regressed:
            pytest.fail("synthetic-data quality regressed against the baseline:\n"
                        + format_comparisons(comps), pytrace=False)
        return comps

    return check
