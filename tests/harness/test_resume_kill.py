"""Kill a real `dparena run` with SIGKILL part-way, resume it, and check every run exists once."""

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from tests.cli_helpers import leave_hot_journal, store_rows
from tests.paths import ROOT

SUITE = """
name = "killme"
seeds = [0, 1, 2, 3]
epsilons = [1.0, 2.0]
delta = 1e-5

[[section]]
dataset = "adult"
dataset_params = { n_private = 200, n_eval = 200 }
n_samples = 100
metrics = ["histogram-intersection"]
methods = [{ name = "test-sleep", params = { seconds = 0.4 } }]
"""


def _cli(suite: Path, db: Path) -> list[str]:
    return [sys.executable, "-m", "dparena", "run", str(suite), "--db", str(db), "--quiet"]


def test_sigkill_then_resume_records_every_run_exactly_once(tmp_path):
    suite = tmp_path / "killme.toml"
    suite.write_text(SUITE)
    db = tmp_path / "runs.sqlite"
    env = {**os.environ, "DPARENA_PLUGINS": "tests.plugins", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(_cli(suite, db), cwd=ROOT, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while store_rows(db) < 3 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, "the suite finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and its workers, mid-run
    proc.wait()
    before = store_rows(db)
    assert 3 <= before < 8

    out = subprocess.run(_cli(suite, db), cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    assert f"{8 - before} ok" in out.stderr and f"{before} already done" in out.stderr
    con = sqlite3.connect(db)
    assert con.execute("SELECT COUNT(*), COUNT(DISTINCT name) FROM runs").fetchone() == (8, 8)
    assert con.execute("SELECT COUNT(*) FROM runs WHERE status != 'ok'").fetchone()[0] == 0
    keys = {k for (k,) in con.execute("SELECT key FROM runs")}
    artifacts = {p.name for p in (tmp_path / "artifacts").iterdir()}
    assert artifacts == keys  # no orphaned artifact folder
    for key in keys:
        files = [p.name for p in (tmp_path / "artifacts" / key).iterdir()]
        assert files.count("synthetic.parquet") == 1
        assert not [f for f in files if f.startswith(".tmp-")]


def test_a_kill_inside_a_transaction_is_counted_as_the_next_run_sees_it(tmp_path):
    """A driver killed inside a write transaction leaves a hot journal; the store then still
    holds what was committed before, and the count must say so (a read that gives up would read
    as 0 runs and make a resumed suite look as if it had lost them). The count leaves the
    journal for the next run to roll back."""
    from dparena.harness.store import RunRecord, Store
    from dparena.harness.suite import load_suite
    from tests import plugins  # noqa: F401  (registers test-sleep)

    suite = tmp_path / "killme.toml"
    suite.write_text(SUITE)
    store = Store(tmp_path / "runs.sqlite")
    for spec in load_suite(suite).specs[:3]:
        store.record(RunRecord(spec, "ok", spent_epsilon=spec.epsilon, created_at="now"))
    journal = leave_hot_journal(store.path)
    before = (store.path.read_bytes(), journal.read_bytes())
    assert store_rows(store.path) == 3
    assert (store.path.read_bytes(), journal.read_bytes()) == before
    assert len(Store(store.path).runs()) == 3 and not journal.exists()


def test_twenty_random_kills_converge(tmp_path):
    """SIGKILL the driver alone at 20 seeded random points, resuming each time: every run ends up
    recorded exactly once, no worker outlives its driver, no orphaned or half-written artifact."""
    import random

    rnd = random.Random(20261122)
    suite = tmp_path / "killme.toml"
    suite.write_text(SUITE.replace("seconds = 0.4", "seconds = 0.15").replace(
        "seeds = [0, 1, 2, 3]", "seeds = [0, 1, 2, 3, 4, 5]"))
    db = tmp_path / "runs.sqlite"
    env = {**os.environ, "DPARENA_PLUGINS": "tests.plugins", "PYTHONPATH": str(ROOT)}
    progress = []
    for _ in range(20):
        proc = subprocess.Popen(_cli(suite, db), cwd=ROOT, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rnd.uniform(0.2, 2.0))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)  # the driver only; its workers must die with it
        proc.wait()
        progress.append(store_rows(db))
    assert progress == sorted(progress)  # kills never lose a recorded run
    out = subprocess.run(_cli(suite, db), cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    con = sqlite3.connect(db)
    assert con.execute("SELECT COUNT(*), COUNT(DISTINCT key) FROM runs").fetchone() == (12, 12)
    keys = {k for (k,) in con.execute("SELECT key FROM runs")}
    assert {p.name for p in (tmp_path / "artifacts").iterdir()} == keys
    assert not list((tmp_path / "artifacts").rglob(".tmp-*"))
