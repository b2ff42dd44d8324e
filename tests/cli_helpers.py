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


def store_rows(db: Path) -> int:
    """Runs recorded in the store ``db`` (0 while it does not exist or has no runs table yet),
    read without creating or locking it for long."""
    if not db.exists():
        return 0
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
        try:
            return con.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
        finally:
            con.close()
    except sqlite3.Error:
        return 0
