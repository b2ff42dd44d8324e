"""What the command-line tests share: ``dparena`` run as a child process or in this process, the
check that a user mistake is one ``error:`` line with exit 2, and a store's row count read while
another process may be writing it."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from tests.paths import ROOT


def dparena(*args, cwd: Path = ROOT, timeout: float = 300, env: dict | None = None):
    """``python -m dparena ARGS`` in ``cwd``, output captured as text."""
    return subprocess.run([sys.executable, "-m", "dparena", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def run_in_process(capsys, monkeypatch, *args) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of ``dparena ARGS`` run in this process; Python warnings count
    as stderr lines, as they would in a terminal."""
    from dparena.cli import main

    monkeypatch.setattr(sys, "argv", ["dparena", *map(str, args)])
    with warnings.catch_warnings(record=True) as caught, pytest.raises(SystemExit) as stop:
        warnings.simplefilter("always")
        main()
    out, err = capsys.readouterr()
    err += "".join(f"{w.category.__name__}: {w.message}\n" for w in caught)
    return stop.value.code, out, err


def assert_one_error_line(code: int, err: str, *fragments) -> None:
    """Exit 2 and exactly one ``error:`` line on stderr holding every fragment."""
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for frag in fragments:
        assert frag in lines[0], lines[0]


def assert_user_error(result, *fragments):
    """A child process's user mistake: exit 2 and one ``error:`` line holding every fragment."""
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert_one_error_line(result.returncode, result.stderr, *fragments)


KILLED_WRITER = """
import os, signal, sqlite3, sys
con = sqlite3.connect(sys.argv[1], isolation_level=None)
con.execute("PRAGMA cache_size = 4")  # spill changed pages into the file before any commit
con.execute("BEGIN IMMEDIATE")
con.execute("CREATE TABLE scratch (x TEXT)")
for _ in range(400):
    con.execute("INSERT INTO scratch VALUES (?)", ("x" * 1000,))
con.execute("DELETE FROM runs")
os.kill(os.getpid(), signal.SIGKILL)
"""


def leave_hot_journal(db: Path) -> Path:
    """Leave ``db`` as a writer SIGKILLed inside a transaction does: changed pages already in the
    file and a hot journal beside it (the uncommitted change deletes every run). Returns the
    journal's path."""
    out = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(db)], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == -9, out.stderr
    journal = db.with_name(db.name + "-journal")
    assert journal.exists() and journal.stat().st_size > 0
    return journal


def store_rows(db: Path) -> int:
    """Runs recorded in the store ``db`` (0 while it does not exist or has no runs table yet),
    read without creating, changing or locking it for long. A store a killed writer left
    mid-transaction (a hot journal, which a read-only connection cannot roll back) is counted on
    a rolled-back copy: what the next ``dparena run`` will see, while that run still has to
    recover the original itself. Any other SQLite error is raised, not read as 0."""
    import shutil
    import tempfile

    if not db.exists():
        return 0
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return con.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return 0
        if getattr(exc, "sqlite_errorname", "") != "SQLITE_READONLY_ROLLBACK":
            raise
    finally:
        con.close()
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / db.name
        shutil.copyfile(db, copy)
        shutil.copyfile(db.with_name(db.name + "-journal"), Path(tmp) / (db.name + "-journal"))
        con = sqlite3.connect(copy)  # a writer: rolls the copied journal back
        try:
            return con.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
        finally:
            con.close()
