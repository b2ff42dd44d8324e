"""Suite and run progress: bounded output off a terminal, ETA from stored timings, timing tables."""

from __future__ import annotations

import io
from dataclasses import replace

import pytest
from rich.console import Console

from dparena.harness.progress import (
    Eta,
    ProgressFile,
    SuiteProgress,
    estimate_seconds,
    format_seconds,
    read_progress,
    timings_table,
)
from dparena.harness.store import RunRecord, Store
from dparena.harness.suite import parse_suite

RAW = {"name": "p", "seeds": [0], "epsilons": [1.0], "delta": 1e-5,
       "section": [{"dataset": "adult", "n_samples": 100, "metrics": ["histogram-intersection"],
                    "methods": [{"name": "independent-marginals"}, {"name": "uniform"},
                                {"name": "real"}]}]}


@pytest.fixture(scope="module")
def specs():
    return {s.method: s for s in parse_suite(RAW).specs}


def _console():
    return Console(file=io.StringIO(), force_terminal=False, width=200)


def _lines(console) -> list[str]:
    return [ln for ln in console.file.getvalue().splitlines() if ln.strip()]


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_suite_lines_off_a_terminal_are_one_per_tenth(specs):
    """1,000 runs print 10 lines (one per 10%), the last one at 100%."""
    runs = [replace(specs["uniform"], seed=i) for i in range(1000)]
    console, clock = _console(), Clock()
    unknown = {s.key: None for s in runs}  # nothing stored: the ETA comes from this session
    with SuiteProgress(console, len(runs), unknown, title="big", poll_s=None,
                       clock=clock) as prog:
        assert not prog.terminal
        for spec in runs:
            prog.started(spec)
            clock.now += 1.0
            prog.finished(spec)
    lines = _lines(console)
    assert len(lines) == 10
    assert lines[0] == "big: 100/1000 runs (10%), elapsed 1m40s, ETA 15m00s"  # 900 x 1 s
    assert lines[-1] == "big: 1000/1000 runs (100%), elapsed 16m40s, ETA 0s"


def test_run_lines_off_a_terminal_are_bounded_whatever_the_step_count(specs, tmp_path):
    """A run reporting 200 steps through its progress file prints 10 lines, the last its end;
    quiet prints nothing."""
    spec = specs["independent-marginals"]
    for quiet in (False, True):
        console, clock = _console(), Clock()
        work = tmp_path / f"w{quiet}"
        report = ProgressFile(work, every_s=0.0, clock=clock)
        with SuiteProgress(console, 1, {}, work_dir=lambda s, w=work: w, poll_s=None,
                           quiet=quiet) as prog:
            prog.started(spec)
            for k in range(1, 201):
                report("DP-SGD step", k, 200)
                prog.poll()
        lines = _lines(console)
        if quiet:
            assert lines == []
        else:
            assert len(lines) == 10
            assert lines[0] == "  adult independent-marginals eps=1 seed=0: DP-SGD step 20/200"
            assert lines[-1].endswith("DP-SGD step 200/200")
    assert read_progress(tmp_path / "wFalse") == ("DP-SGD step", 200, 200)


def test_progress_file_is_throttled_but_keeps_the_last_step(tmp_path):
    clock = Clock()
    report = ProgressFile(tmp_path, every_s=1.0, clock=clock)
    report("PE iteration", 1, 20)
    clock.now = 0.5
    report("PE iteration", 2, 20)  # within a second of the last write: skipped
    assert read_progress(tmp_path) == ("PE iteration", 1, 20)
    report("PE iteration", 20, 20)  # the last step is always written
    assert read_progress(tmp_path) == ("PE iteration", 20, 20)
    assert read_progress(tmp_path / "nowhere") is None


def _record(store, spec, seconds, status="ok"):
    store.record(RunRecord(spec, status, timings={"generate_s": seconds - 1.0, "write_s": 0.25,
                                                  "metric:histogram-intersection_s": 0.75},
                           created_at="2026-01-01T00:00:00+00:00"))


def test_eta_from_stored_timings_of_earlier_runs(specs, tmp_path):
    store = Store(tmp_path / "runs.sqlite")
    marg, unif, real = specs["independent-marginals"], specs["uniform"], specs["real"]
    _record(store, replace(marg, seed=10), 10.0)
    _record(store, replace(marg, seed=11), 12.0)
    _record(store, replace(marg, seed=12), 500.0, status="failed")  # a crash says nothing
    _record(store, replace(unif, epsilon=4.0), 100.0)
    _record(store, replace(unif, package_version="0.0.1"), 40.0)  # this very run, older version
    pending = [marg, unif, real]
    est = estimate_seconds(pending, store.runs())
    assert est[marg.key] == pytest.approx(11.0)  # median of the same configuration's runs
    assert est[unif.key] == pytest.approx(40.0)  # the same run name beats other epsilons
    assert est[real.key] is None  # never run: unknown

    eta = Eta(est, jobs=2)
    # real counts as the median of the known estimates, (11 + 40) / 2
    assert eta.seconds_left(0.0) == pytest.approx((11.0 + 40.0 + 25.5) / 2)
    eta.start(marg.key, 0.0)
    assert eta.seconds_left(4.0) == pytest.approx((7.0 + 40.0 + 25.5) / 2)  # 4 s of marg spent
    eta.finish(marg.key, 22.0)  # twice its estimate: this session runs at half the speed
    assert eta.seconds_left(22.0) == pytest.approx((80.0 + 22.0) / 2)  # real: this session's
    eta.start(unif.key, 22.0)
    eta.finish(unif.key, 102.0)
    assert eta.seconds_left(102.0) == pytest.approx(51.0)  # one run left: one worker
    assert format_seconds(3725) == "1h02m" and format_seconds(125) == "2m05s"
    assert format_seconds(None) == "?"


def test_timings_table_orders_stages_and_totals_runs():
    rows = [{"timings": {"generate_s": 2.0, "write_s": 0.5, "metric:fid_s": 3.0,
                         "metric:kid_s": 1.0}},
            {"timings": {"generate_s": 4.0, "write_s": 0.5, "metric:fid_s": 1.0}},
            {"timings": {}}]
    table = timings_table(rows, {"mnist": 1.5})
    assert [r[0] for r in table] == ["load", "generate", "write", "metric:fid", "metric:kid",
                                     "run"]
    as_dict = {r[0]: r[1:] for r in table}
    assert as_dict["generate"] == (2, 6.0, 3.0, 4.0)
    assert as_dict["metric:fid"] == (2, 4.0, 2.0, 3.0)
    assert as_dict["run"] == (2, 12.0, 6.0, 6.5)
    assert as_dict["load"] == (1, 1.5, 1.5, 1.5)
