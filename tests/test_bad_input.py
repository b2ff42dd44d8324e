"""Hostile input: every user mistake is ONE line starting with ``error:``, exit 2, and nothing is
written — no results folder, no database — and no existing file changes.

The table runs ``dparena.cli.main`` in this process (the same code path as the console script,
``sys.exit`` included) so that it stays fast; plugins, whose loading is cached per process, run in
a subprocess. Every case validates before any data is loaded.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dparena.cli import main

ROOT = Path(__file__).resolve().parent.parent

SUITE = """
name = "bad"
seeds = [0]
epsilons = [1.0]
delta = 1e-5

[[section]]
dataset = "adult"
dataset_params = { n_private = 200, n_eval = 200 }
n_samples = 100
metrics = ["histogram-intersection"]
methods = [{ name = "independent-marginals" }, { name = "uniform" }]
"""


def snapshot(folder: Path) -> dict[str, tuple]:
    """Every path under ``folder`` with its kind, and for files their bytes' hash and mtime."""
    out = {}
    for path in sorted(folder.rglob("*")):
        rel = str(path.relative_to(folder))
        if path.is_file():
            st = path.stat()
            out[rel] = ("file", hashlib.sha256(path.read_bytes()).hexdigest(), st.st_mtime_ns)
        else:
            out[rel] = ("dir",)
    return out


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A nested working folder (so ``../..`` stays inside tmp_path) with an existing database."""
    cwd = tmp_path / "a" / "b" / "c"
    cwd.mkdir(parents=True)
    (cwd / "existing.sqlite").write_bytes(b"SQLite format 3\x00" + b"\x00" * 100)
    monkeypatch.chdir(cwd)
    return cwd


def cli(capsys, monkeypatch, *args):
    monkeypatch.setattr(sys, "argv", ["dparena", *map(str, args)])
    with pytest.raises(SystemExit) as stop:
        main()
    out, err = capsys.readouterr()
    return stop.value.code, out, err


def assert_one_error_line(code, err, *fragments):
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for frag in fragments:
        assert frag in lines[0], lines[0]


def check_rejected(tmp_path, capsys, monkeypatch, args, fragments):
    before = snapshot(tmp_path)
    code, _, err = cli(capsys, monkeypatch, *args)
    assert_one_error_line(code, err, *fragments)
    assert snapshot(tmp_path) == before  # nothing written, nothing changed
    assert not (Path.cwd() / "results").exists()


# ------------------------------------------------------------------ suite files
# (id, replace this, with that, fragments of the error line)
SUITE_EDITS = [
    # A: the name becomes a folder under results/: only a safe slug
    ("name-parent", 'name = "bad"', 'name = "../../escaped"', ["name", "letters, digits"]),
    ("name-absolute", 'name = "bad"', 'name = "{tmp}/escaped"', ["name"]),
    ("name-hidden", 'name = "bad"', 'name = ".hidden"', ["name"]),
    ("name-slash", 'name = "bad"', 'name = "a/b"', ["name"]),
    ("name-empty", 'name = "bad"', 'name = ""', ["name"]),
    ("name-number", 'name = "bad"', "name = 5", ["name"]),
]


@pytest.mark.parametrize("old,new,fragments", [e[1:] for e in SUITE_EDITS],
                         ids=[e[0] for e in SUITE_EDITS])
def test_bad_suite_is_one_error_line_and_writes_nothing(workdir, tmp_path, capsys, monkeypatch,
                                                        old, new, fragments):
    assert old in SUITE
    (workdir / "s.toml").write_text(SUITE.replace(old, new.replace("{tmp}", str(tmp_path))))
    check_rejected(tmp_path, capsys, monkeypatch, ["run", "s.toml"], fragments)
    assert not (tmp_path / "escaped").exists() and not (tmp_path / "a" / "escaped").exists()


def test_the_table_suite_is_valid(workdir):
    """The unedited suite parses, so each edit above is what the error is about."""
    from dparena.harness.suite import load_suite

    (workdir / "s.toml").write_text(SUITE)
    assert len(load_suite(workdir / "s.toml").specs) == 2
