"""Public means public: the dataset size N and the schema's bounds come from documentation or the
suite, never from the private split."""

from __future__ import annotations

import ast
import inspect

import pytest

from dparena.datasets import datasets
from dparena.datasets.schema import Numeric
from dparena.errors import ConfigError

#: the documented size of each built-in dataset's private split
DOCUMENTED = {"adult": 32_561, "mnist": 50_000, "digits": 1_297, "cifar10": 50_000,
              "rotten-tomatoes": 10_752, "news": 2_988, "yelp": 650_000, "pubmed": 119_924}


@pytest.mark.parametrize("name", sorted(DOCUMENTED))
def test_public_size_is_declared_without_reading_data(name, monkeypatch, assets):
    dataset = datasets.create(name)
    monkeypatch.setattr(type(dataset), "load", lambda *a, **k: pytest.fail("read the data"))
    assert dataset.private_size(assets) == DOCUMENTED[name]
    assert datasets.create(name, n_private=100).private_size(assets) == 100


#: datasets read from the user's files: N is declared in the suite or schema file
#: (tests/datasets/test_your_data.py)
USER_FILES = {"csv", "image-folder", "text-file"}


def test_every_built_in_dataset_is_covered():
    assert set(datasets.names()) == set(DOCUMENTED) | USER_FILES


def test_a_hub_dataset_under_another_id_needs_a_declared_size(assets):
    with pytest.raises(ConfigError, match="n_private"):
        datasets.create("yelp", hub_id="someone/other-reviews").private_size(assets)
    assert datasets.create("yelp", hub_id="someone/other", n_private=500).private_size(assets) == 500


def test_the_runner_gives_methods_the_public_size(assets):
    from dparena.harness.runner import execute, load_bundle
    from dparena.harness.suite import parse_suite

    raw = {"name": "t", "seeds": [0], "epsilons": [1.0], "delta": 1e-5,
           "section": [{"dataset": "adult", "dataset_params": {"n_private": 200, "n_eval": 50},
                        "n_samples": 20, "metrics": [],
                        "methods": [{"name": "independent-marginals"}]}]}
    spec = parse_suite(raw).specs[0]
    bundle = load_bundle(spec, assets)
    assert bundle.public_size == 200  # the suite's subsample size, declared
    bundle.private = bundle.private.iloc[:150]  # whatever the split holds, N stays declared
    seen = {}
    from dparena.methods.baselines import marginals

    original = marginals.IndependentMarginals.generate

    def spy(self, task, ledger):
        seen["n"] = task.public_size
        return original(self, task, ledger)

    marginals.IndependentMarginals.generate = spy
    try:
        import tempfile
        from pathlib import Path

        with tempfile.TemporaryDirectory() as tmp:
            rec = execute(spec, bundle, Path(tmp) / "a", Path(tmp) / "c", Path(tmp) / "w")
    finally:
        marginals.IndependentMarginals.generate = original
    assert rec.status == "ok" and seen["n"] == 200


def _adult_numeric_lines():
    from dparena.datasets import adult

    tree = ast.parse(inspect.getsource(adult))
    lines = inspect.getsource(adult).splitlines()
    return [lines[node.lineno - 1] for node in ast.walk(tree)
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "Numeric"]


def test_every_adult_bound_names_its_source():
    lines = _adult_numeric_lines()
    assert len(lines) == 6 and all("#" in line for line in lines), lines


def test_no_adult_bound_sits_just_above_the_private_maximum(adult_full):
    """A bound a little above the private maximum (max < hi < 1.2·max) was read off the data; a
    documented top-code equals the maximum the data reach, or lies far above."""
    for col in adult_full.schema.columns:
        if isinstance(col, Numeric):
            top = float(adult_full.private[col.name].max())
            assert not top < col.upper < 1.2 * top, (col.name, top, col.upper)
