"""Files that are not what a command expects: reading never changes them, writing refuses them
with one error line, before anything runs."""

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from dparena.errors import ConfigError
from dparena.harness.store import SCHEMA, RunRecord, Store
from dparena.harness.suite import parse_suite
from dparena.leaderboard.aggregate import build_tables
from dparena.leaderboard.render import to_json
from tests.cli_helpers import leave_hot_journal
from tests.paths import ROOT

RAW = {"name": "files", "seeds": [0, 1], "epsilons": [2.0], "delta": 1e-5,
       "section": [{"dataset": "adult", "dataset_params": {"n_private": 400, "n_eval": 400},
                    "n_samples": 300, "metrics": ["histogram-intersection"],
                    "methods": [{"name": "independent-marginals"}, {"name": "uniform"}]}]}
SUITE = """
name = "files"
seeds = [0]
epsilons = [2.0]
delta = 1e-5

[[section]]
dataset = "adult"
dataset_params = { n_private = 400, n_eval = 400 }
n_samples = 300
metrics = ["histogram-intersection"]
methods = [{ name = "independent-marginals" }]
"""


def _fill(store: Store, info_size: int = 0) -> Store:
    for spec in parse_suite(RAW).specs:
        store.record(RunRecord(spec, "ok", spent_epsilon=spec.epsilon, metrics=[
            {"metric": "histogram-intersection", "name": "histogram-intersection",
             "value": 0.8 + 0.01 * spec.seed, "direction": "maximize", "version": "1",
             "headline": True}], info={"pad": "x" * info_size},
            created_at="2026-01-01T00:00:00+00:00"))
    return store


def cli(monkeypatch, capsys, *args):
    """`dparena ARGS` in this process: (exit code, stdout, stderr)."""
    from dparena.cli import main

    monkeypatch.setattr(sys, "argv", ["dparena", *map(str, args)])
    with pytest.raises(SystemExit) as info:
        main()
    out = capsys.readouterr()
    return info.value.code, out.out, out.err


def assert_one_error(code, err, *fragments):
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), (code, err)
    for frag in fragments:
        assert frag in lines[0], lines[0]


def _snapshot(folder: Path) -> dict:
    """Every file under ``folder`` with its bytes and mtime (ns)."""
    return {p.relative_to(folder): (p.read_bytes(), p.stat().st_mtime_ns) for p in
            sorted(folder.rglob("*")) if p.is_file()}


def _bad_files(folder: Path) -> dict[str, Path]:
    folder.mkdir()
    foreign = folder / "foreign.sqlite"
    con = sqlite3.connect(foreign)
    con.execute("CREATE TABLE people (name TEXT, age INTEGER)")
    con.execute("INSERT INTO people VALUES ('ada', 36)")
    con.commit()
    con.close()
    empty = folder / "empty.sqlite"
    empty.write_bytes(b"")
    noise = folder / "noise.sqlite"
    noise.write_bytes(os.urandom(8192))
    real = _fill(Store(folder / "real" / "runs.sqlite"), info_size=6000)
    data = real.path.read_bytes()
    assert len(data) > 8 * 4096
    truncated = folder / "truncated.sqlite"
    truncated.write_bytes(data[:len(data) // 2])
    shutil.rmtree(folder / "real")
    directory = folder / "folder.sqlite"
    directory.mkdir()
    return {"foreign": foreign, "empty": empty, "noise": noise, "truncated": truncated,
            "directory": directory}


def test_read_only_commands_never_change_what_they_read(tmp_path, monkeypatch, capsys):
    good = _fill(Store(tmp_path / "good" / "runs.sqlite"))
    baseline = tmp_path / "baseline.json"
    baseline.write_text(to_json(build_tables(good.runs())))
    files = _bad_files(tmp_path / "bad")
    before = _snapshot(tmp_path / "bad")
    out = tmp_path / "out.json"
    for name, path in files.items():
        for args in (("leaderboard", "--db", path), ("check", "--db", path, "--baseline", baseline),
                     ("leaderboard", "--db", path, "--format", "json", "--out", out)):
            code, _, err = cli(monkeypatch, capsys, *args)
            assert_one_error(code, err, str(path))
            assert "not a dparena result database" in err or "damaged" in err, (name, err)
    assert _snapshot(tmp_path / "bad") == before
    assert sorted(p.name for p in (tmp_path / "bad").iterdir()) == sorted(
        p.name for p in files.values())  # no journal, no artifacts/, no leaderboard
    assert not out.exists()
    code, _, err = cli(monkeypatch, capsys, "leaderboard", "--db", tmp_path / "none.sqlite")
    assert_one_error(code, err, "no result database")
    assert not (tmp_path / "none.sqlite").exists()


def test_an_older_store_is_read_without_being_migrated(tmp_path, monkeypatch, capsys):
    """A store written before runs kept info, accountant, reproducibility or non-finite kinds
    (and before leases) is read as it is: its bytes and mtime stay the same."""
    path = tmp_path / "old.sqlite"
    con = sqlite3.connect(path)
    old = SCHEMA
    for column in (",\n    info TEXT NOT NULL DEFAULT '{}'",
                   ",\n    accountant TEXT NOT NULL DEFAULT ''", ",\n    reproducible INTEGER",
                   "\n    nonfinite TEXT NOT NULL DEFAULT '',"):
        assert column in old
        old = old.replace(column, "")
    old = old[:old.index("CREATE TABLE IF NOT EXISTS leases")] if "leases" in old else old
    con.executescript(old)
    for seed in (0, 1):
        con.execute("INSERT INTO runs (key, name, dataset, dataset_params, method, label, private, "
                    "epsilon, delta, seed, status, spec, created_at) VALUES (?, ?, 'adult', '{}', "
                    "'independent-marginals', 'independent-marginals', 1, 1.0, 1e-5, ?, 'ok', "
                    "'{\"metrics\": [\"histogram-intersection\"]}', '2025-01-01')",
                    (f"k{seed}", f"n{seed}", seed))
        con.execute("INSERT INTO metric_values VALUES (?, 'histogram-intersection', "
                    "'histogram-intersection', 0.8, 'maximize', '1', 1)", (f"k{seed}",))
    con.commit()
    con.close()
    before = _snapshot(tmp_path)
    code, md, err = cli(monkeypatch, capsys, "leaderboard", "--db", path)
    assert code == 0 and "independent-marginals" in md and "0.800" in md, err
    baseline = tmp_path / "b.json"
    code, _, err = cli(monkeypatch, capsys, "leaderboard", "--db", path, "--format", "json",
                       "--out", baseline)
    assert code == 0, err
    code, report, err = cli(monkeypatch, capsys, "check", "--db", path, "--baseline", baseline)
    assert code == 0 and "gate: passed" in report, (report, err)
    after = _snapshot(tmp_path)
    del after[Path("b.json")]
    assert after == before
    # writing migrates it
    Store(path)
    con = sqlite3.connect(path)
    assert "accountant" in {r[1] for r in con.execute("PRAGMA table_info(runs)")}
    con.close()


def test_run_refuses_a_file_that_is_not_a_store_before_running(tmp_path, monkeypatch, capsys):
    suite = tmp_path / "s.toml"
    suite.write_text(SUITE)
    files = _bad_files(tmp_path / "bad")
    before = _snapshot(tmp_path / "bad")
    for name, path in files.items():
        if name == "empty":
            continue  # an empty file is an empty database: `run` may create its tables
        code, _, err = cli(monkeypatch, capsys, "run", suite, "--db", path, "--quiet")
        assert_one_error(code, err, str(path))
    assert _snapshot(tmp_path / "bad") == before
    assert not (tmp_path / "bad" / "artifacts").exists()


def _make_read_only(path: Path) -> None:
    """chmod for a normal user; root ignores modes, so the immutable attribute there."""
    if os.geteuid() != 0:
        path.chmod(0o555 if path.is_dir() else 0o444)
        return
    if shutil.which("chattr") is None or subprocess.run(
            ["chattr", "+i", str(path)], capture_output=True).returncode != 0:
        pytest.skip("cannot make a file read-only for root here (no chattr +i)")


def _make_writable(path: Path) -> None:
    if os.geteuid() != 0:
        path.chmod(0o755 if path.is_dir() else 0o644)
    else:
        subprocess.run(["chattr", "-i", str(path)], capture_output=True)


@pytest.mark.parametrize("what", ["file", "folder"])
def test_run_detects_a_read_only_store_before_any_run_starts(tmp_path, what):
    folder = tmp_path / "store"
    store = _fill(Store(folder / "runs.sqlite"))
    suite = tmp_path / "s.toml"
    suite.write_text(SUITE)
    target = store.path if what == "file" else folder
    before = _snapshot(folder)
    _make_read_only(target)
    try:
        out = subprocess.run([sys.executable, "-m", "dparena", "run", str(suite), "--db",
                              str(store.path), "--quiet"], cwd=ROOT, capture_output=True,
                             text=True, timeout=300)
    finally:
        _make_writable(target)
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert out.returncode == 2 and len(lines) == 1, out.stderr
    assert lines[0].startswith("error: ") and "cannot write" in lines[0], lines[0]
    assert _snapshot(folder) == before and not (folder / "artifacts").exists()


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_files_written_through_a_temporary_name_honour_the_umask(tmp_path, umask):
    import numpy as np
    import pandas as pd

    from dparena.harness.store import write_synthetic
    from dparena.io import write_text_atomic

    old = os.umask(umask)
    try:
        write_text_atomic(tmp_path / "leaderboard.md", "# board\n")
        table = write_synthetic(pd.DataFrame({"a": [1, 2]}), None, tmp_path / "t")
        images = write_synthetic(np.zeros((2, 4, 4), np.uint8), np.array([0, 1]), tmp_path / "i")
        texts = write_synthetic(["a", "b"], None, tmp_path / "x")
    finally:
        os.umask(old)
    for path in (tmp_path / "leaderboard.md", table, images, texts):
        assert path.stat().st_mode & 0o777 == 0o666 & ~umask, path


def test_info_is_stored_as_valid_json(tmp_path):
    """NaN and infinities in a method's info are stored as the strings "nan", "inf", "-inf"
    (JSON has no such numbers; SQLite's JSON functions reject NaN)."""
    import math

    import numpy as np

    from dparena.harness.store import json_safe_info

    info = {"sigma": math.nan, "trace": np.array([1.0, np.inf]), "nested": {"x": -math.inf},
            "ok": 1.5}
    assert json_safe_info(info) == {"sigma": "nan", "trace": [1.0, "inf"],
                                    "nested": {"x": "-inf"}, "ok": 1.5}
    store = Store(tmp_path / "runs.sqlite")
    spec = parse_suite(RAW).specs[0]
    store.record(RunRecord(spec, "ok", spent_epsilon=2.0, created_at="now",
                           info=json_safe_info(info)))
    con = sqlite3.connect(store.path)
    assert con.execute("SELECT json_valid(info), json_extract(info, '$.sigma'), "
                       "json_extract(info, '$.trace[1]') FROM runs").fetchone() == (1, "nan", "inf")
    con.close()
    # a record built by hand with a raw NaN is stored valid too
    store.record(RunRecord(spec, "ok", spent_epsilon=2.0, created_at="now",
                           info={"sigma": math.nan}))
    con = sqlite3.connect(store.path)
    assert con.execute("SELECT json_extract(info, '$.sigma') FROM runs").fetchone() == ("nan",)
    con.close()
    assert store.runs()[0].info == {"sigma": "nan"}


def test_a_store_a_killed_writer_left_mid_transaction(tmp_path, monkeypatch, capsys):
    """A `dparena run` killed (SIGKILL, the OOM killer) inside a write leaves a hot journal beside
    the store. Reading commands cannot roll it back without writing, so they say what to do in
    one line and change nothing; the next `dparena run` rolls it back and every run is there."""
    store = _fill(Store(tmp_path / "runs.sqlite"))
    baseline = tmp_path / "baseline.json"
    baseline.write_text(to_json(build_tables(store.runs())))
    journal = leave_hot_journal(store.path)
    before = _snapshot(tmp_path)
    for args in (("leaderboard", "--db", store.path),
                 ("check", "--db", store.path, "--baseline", baseline)):
        code, _, err = cli(monkeypatch, capsys, *args)
        assert_one_error(code, err, str(store.path), "killed", "dparena run")
    assert _snapshot(tmp_path) == before
    Store(store.path)  # what `dparena run` does first: the journal is rolled back
    assert not journal.exists()
    code, md, err = cli(monkeypatch, capsys, "check", "--db", store.path, "--baseline", baseline)
    assert code == 0 and "gate: passed" in md, (md, err)
    # a writer killed after the store was opened for reading: its reads say the same
    reader = Store(store.path, mode="r")
    leave_hot_journal(store.path)
    with pytest.raises(ConfigError, match="a killed dparena run left an unfinished write") as got:
        reader.runs()
    assert "\n" not in str(got.value)
    assert len(Store(store.path).runs()) == len(parse_suite(RAW).specs)  # a writer recovers it
