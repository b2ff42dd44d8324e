"""Per-run leases: drivers sharing one store split its runs and never run one twice."""

import os
import socket
import sqlite3
import subprocess
import sys
import time
from collections import Counter

from dparena.harness.store import RunRecord, Store
from dparena.harness.suite import parse_suite
from tests.cli_helpers import store_rows
from tests.paths import ROOT

RAW = {"name": "lease", "seeds": [0, 1], "epsilons": [1.0], "delta": 1e-5,
       "section": [{"dataset": "adult", "dataset_params": {"n_private": 200, "n_eval": 200},
                    "n_samples": 100, "metrics": [],
                    "methods": [{"name": "independent-marginals"}]}]}
DONE = ("ok", "invalid", "failed")


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_lease_is_taken_once_renewed_released_and_taken_over_when_stale(tmp_path):
    store = Store(tmp_path / "runs.sqlite")
    spec, other = parse_suite(RAW).specs
    host = socket.gethostname()
    a, b = f"{host}:{os.getpid()}:a", f"{host}:{os.getpid()}:b"
    mark = store.recorded_mark()
    assert store.claim(spec.key, a, DONE, mark) == "claimed"
    assert store.claim(spec.key, a, DONE, mark) == "claimed"  # its own lease
    assert store.claim(spec.key, b, DONE, mark) == "busy"
    assert store.claim(other.key, b, DONE, mark) == "claimed"
    store.renew([spec.key], a, ttl=0.0)  # expires now: stale even though a is alive
    time.sleep(0.01)
    assert store.claim(spec.key, b, DONE, mark) == "claimed"
    store.release(spec.key, a)  # not a's any more: nothing happens
    assert store.claim(spec.key, a, DONE, mark) == "busy"
    store.release(spec.key, b)
    assert store.claim(spec.key, a, DONE, mark) == "claimed"
    # recording the run releases the recorder's lease; then it is done for everyone
    store.record(RunRecord(spec, "failed", error="boom", created_at="now"), lease=a)
    con = sqlite3.connect(store.path)
    assert con.execute("SELECT key FROM leases").fetchall() == [(other.key,)]
    con.close()
    assert store.claim(spec.key, b, DONE, mark) == "done"
    # with --retry-failed a failed run is claimable, unless it was recorded after the mark
    assert store.claim(spec.key, b, ("ok", "invalid"), mark) == "done"
    later = store.recorded_mark()
    assert store.claim(spec.key, b, ("ok", "invalid"), later) == "claimed"

    # a holder that died on this host, or whose lease expired on another host, is stale
    store.release_all(b)  # b held the other run
    dead = f"{host}:{_dead_pid()}:x"
    assert store.claim(other.key, dead, DONE, mark) == "claimed"  # then its driver died
    assert store.claim(other.key, a, DONE, mark) == "claimed"  # taken over at once
    store.release(other.key, a)
    far = "elsewhere.example:1:y"
    assert store.claim(other.key, far, DONE, mark, ttl=600) == "claimed"
    assert store.claim(other.key, a, DONE, mark) == "busy"  # another host's, not expired
    store.renew([other.key], far, ttl=-1.0)
    assert store.claim(other.key, a, DONE, mark) == "claimed"


SUITE = """
name = "two-drivers"
seeds = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]
epsilons = [1.0, 2.0]
delta = 1e-5

[[section]]
dataset = "adult"
dataset_params = { n_private = 200, n_eval = 200 }
n_samples = 100
metrics = ["histogram-intersection"]
methods = [{ name = "test-count", params = { seconds = 0.5 } }]
"""


def test_two_drivers_on_one_store_run_each_run_exactly_once(tmp_path):
    suite = tmp_path / "two.toml"
    suite.write_text(SUITE)
    db = tmp_path / "runs.sqlite"
    log = tmp_path / "executions.txt"
    env = {**os.environ, "DPARENA_PLUGINS": "tests.gate_plugins", "DPARENA_TEST_COUNT": str(log),
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "dparena", "run", str(suite), "--db", str(db), "--quiet"]
    first = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while store_rows(db) < 1 and time.monotonic() < deadline and first.poll() is None:
        time.sleep(0.05)
    assert first.poll() is None, "the first driver finished before the second could start"
    second = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    outs = [p.communicate(timeout=300) for p in (first, second)]
    assert first.returncode == 0 and second.returncode == 0, outs

    runs = [tuple(line.split()) for line in log.read_text().splitlines()]
    assert len(runs) == 24 and Counter((eps, seed) for eps, seed, _ in runs).most_common(1)[0][1] == 1
    drivers = Counter(pid for _, _, pid in runs)
    assert set(drivers) == {str(first.pid), str(second.pid)}, drivers  # the work was split
    con = sqlite3.connect(db)
    assert con.execute("SELECT COUNT(*), COUNT(DISTINCT key) FROM runs WHERE status = 'ok'"
                       ).fetchone() == (24, 24)
    assert con.execute("SELECT COUNT(*) FROM leases").fetchone() == (0,)
    keys = {k for (k,) in con.execute("SELECT key FROM runs")}
    con.close()
    assert {p.name for p in (tmp_path / "artifacts").iterdir()} == keys
    second_err = outs[1][1]
    assert f"{drivers[str(second.pid)]} ok" in second_err, second_err
