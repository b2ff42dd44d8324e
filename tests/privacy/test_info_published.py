"""``Synthetic.info`` is published (stored in the run record and printed): every value in it must be
public or post-processing of a DP release.

Every registered DP method runs on a tiny private set and on its neighbour (one record replaced by
another), with the same seed and so the same noise draws. A value that is neither declared in the
method's ``released_info`` nor a wall time (a key ending in ``_s``) must come out the same: an
un-noised statistic of the private data (a raw training loss, a count, a mean) would differ.
"""

from __future__ import annotations

import numpy as np
import pytest

from dparena.methods import methods
from dparena.methods.base import Task
from dparena.privacy import Ledger
from dparena.types import Budget

LM = dict(model="tiny", epochs=1, batch_size=8, physical_batch_size=8, n_embd=32, n_layer=1,
          max_new_tokens=30, gen_batch_size=8, give_up_after=4)
#: a tiny configuration of every registered DP method, with the modality of its data
TINY = {
    "independent-marginals": ("tabular", {"given": "income"}),
    "aim": ("small-table", {"bins": 4, "iters": 20, "rounds": 2}),
    "mst": ("small-table", {"bins": 4, "iters": 20}),
    "dp2stage": ("tabular", dict(LM, stage1_rows=16, stage1_epochs=1.0, cache_stage1=False)),
    "dp-standard": ("tabular", LM),
    "pe-image": ("image", {"iterations": 2, "population_sizes": 6, "class_counts": "dp"}),
    "dp-merf": ("image", {"steps": 3}),
    "dp-ntk": ("image", {"steps": 3, "ntk_width": 32, "batch_size": 20}),
    "dp-ctgan": ("tabular", {"epochs": 1, "batch_size": 8, "embedding_dim": 8,
                             "generator_dim": [8], "discriminator_dim": [8], "pac": 2}),
    "pe-text": ("text", {"iterations": 1, "population_sizes": 6,
                         "api_params": {"llm": "tiny", "max_new_tokens": 8}}),
    "dp-finetune-lm": ("text", {"model": "tiny", "epochs": 1, "batch_size": 8,
                                "physical_batch_size": 8, "max_new_tokens": 8, "max_tokens": 32,
                                "class_counts": "dp"}),
}


def test_every_registered_dp_method_is_covered():
    dp = {n for n in methods.names()  # the built-in ones (tests register test-only methods too)
          if methods.get(n).is_dp and methods.get(n).__module__.startswith("dparena.")}
    assert dp == set(TINY), "give every new DP method a tiny configuration here"


@pytest.fixture(scope="module")
def data(assets):
    from dataclasses import replace

    from dparena.datasets import datasets
    from dparena.datasets.schema import TableSchema

    adult = datasets.create("adult", n_private=48, n_eval=2).load(assets)
    # AIM and MST on four columns: their JAX models compile in seconds instead of a minute
    names = ["age", "sex", "race", "income"]
    small = TableSchema(columns=tuple(adult.schema.column(n) for n in names), target="income")
    return {"tabular": adult,
            "small-table": replace(adult, private=adult.private[names], schema=small),
            "image": datasets.create("digits", n_private=60, n_eval=2).load(assets),
            "text": datasets.create("rotten-tomatoes", n_private=24, n_eval=2).load(assets)}


def _neighbour(bundle):
    """The private split with record 0 replaced by a copy of record 1 (same size N)."""
    if hasattr(bundle.private, "iloc"):
        other = bundle.private.copy()
        other.iloc[0] = other.iloc[1]
        return other, None
    labels = np.array(bundle.private_labels, copy=True)
    labels[0] = labels[1]
    if isinstance(bundle.private, np.ndarray):
        other = bundle.private.copy()
        other[0] = other[1]
        return other, labels
    return [bundle.private[1], *bundle.private[1:]], labels


def _flatten(value, path=""):
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _flatten(v, f"{path}.{k}" if path else str(k))
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            yield from _flatten(v, f"{path}[{i}]")
    else:
        yield path, value


def _info(name, params, bundle, private, labels):
    task = Task(private=private, schema=bundle.schema, budget=Budget(2.0, 1e-5), n_samples=6,
                seed=7, private_labels=labels, public_size=len(bundle.private))
    return methods.create(name, **params).generate(task, Ledger()).info


@pytest.mark.parametrize("name", sorted(TINY))
def test_info_holds_nothing_computed_from_private_data_without_noise(name, data):
    kind, params = TINY[name]
    bundle = data[kind]
    other, other_labels = _neighbour(bundle)
    a = _info(name, params, bundle, bundle.private, bundle.private_labels)
    b = _info(name, params, bundle, other,
              bundle.private_labels if other_labels is None else other_labels)
    released = methods.get(name).released_info
    kept = {k: v for k, v in a.items() if k not in released and not k.endswith("_s")}
    assert kept, f"{name} publishes no public info at all? (check the test)"
    moved = [path for path, value in _flatten(kept)
             if dict(_flatten({k: b.get(k) for k in kept})).get(path) != value]
    assert not moved, (f"{name}: info values changed with one private record but are not "
                       f"declared released: {moved}")

