"""What the subprocess tests share: ``dparena`` run as a child process, and a store's row count
read while another process may be writing it."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

from tests.paths import ROOT


def dparena(*args, cwd: Path = ROOT, timeout: float = 300, env: dict | None = None):
    """``python -m dparena ARGS`` in ``cwd``, output captured as text."""
    return subprocess.run([sys.executable, "-m", "dparena", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def assert_user_error(result, *fragments):
    """A user mistake: exit 2 and one ``error:`` line on stderr holding every fragment."""
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for frag in fragments:
        assert frag in lines[0], lines[0]


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
