"""DP-MERF baseline: one booked Gaussian release, determinism, utility on real digits."""

import numpy as np
import pytest

from dparena.errors import ConfigError
from dparena.methods import methods
from dparena.methods.base import Task
from dparena.metrics import metrics
from dparena.metrics.base import EvalData, MetricContext
from dparena.privacy import Ledger, gaussian_sigma
from dparena.types import Budget, Synthetic

DELTA = 1e-5


@pytest.fixture(scope="module")
def digits(assets):
    from dparena.datasets import datasets

    return datasets.create("digits").load(assets)


def _run(bundle, eps, seed=0, n=500, private=None, labels=None, public_size=None, **params):
    private = bundle.private if private is None else private
    # the test declares N: the size of the set it built (a dataset declares it from documentation)
    task = Task(private=private, schema=bundle.schema,
                budget=Budget(eps, DELTA), n_samples=n, seed=seed,
                private_labels=bundle.private_labels if labels is None else labels,
                public_size=len(private) if public_size is None else public_size)
    ledger = Ledger()
    syn = methods.create("dp-merf", **params).generate(task, ledger)
    return syn, ledger


def _accuracy(bundle, syn):
    real = EvalData(bundle.eval, bundle.schema, bundle.eval_labels)
    return metrics.create("downstream-accuracy").compute(syn, real, MetricContext(seed=0))[0].value


@pytest.fixture(scope="module")
def eps10(digits):
    return _run(digits, 10.0)


def test_one_gaussian_release_booked_within_budget(digits, eps10):
    syn, ledger = eps10
    assert len(ledger) == 1
    entry = ledger.entries[0]
    n = len(digits.private)
    assert entry.params["sensitivity"] == pytest.approx(1.0 / n)  # add/remove, public N
    assert entry.params["sigma"] == pytest.approx(gaussian_sigma(10.0, DELTA, 1.0 / n))
    eps, delta = ledger.spent(DELTA)
    assert eps <= 10.0 + 1e-9 and delta <= DELTA
    assert syn.data.shape == (500, 8, 8, 1) and syn.data.dtype == np.uint8
    assert syn.labels.shape == (500,) and set(np.unique(syn.labels)) <= set(range(10))


def test_noise_scale_does_not_depend_on_the_private_rows(digits):
    """Removing one private record must not move σ: the divisor is the public N (Digits: 1,297),
    not len(private); the sensitivity is the add/remove bound 1/N."""
    _, full = _run(digits, 1.0, n=20, steps=2, public_size=1297)
    _, minus = _run(digits, 1.0, n=20, steps=2, private=digits.private[1:],
                    labels=digits.private_labels[1:], public_size=1297)
    assert full.entries[0].params["sigma"] == minus.entries[0].params["sigma"]
    assert full.entries[0].params["sensitivity"] == pytest.approx(1.0 / 1297)


def test_without_a_public_size_it_refuses_to_run(digits):
    task = Task(private=digits.private, schema=digits.schema, budget=Budget(1.0, DELTA),
                n_samples=10, seed=0, private_labels=digits.private_labels)
    with pytest.raises(ConfigError, match="public dataset size"):
        methods.create("dp-merf", steps=1).generate(task, Ledger())


def test_canary_audit_at_300_rows_stays_below_the_claim(digits):
    from dparena.harness.audit import audit_run

    result = audit_run(methods.create("dp-merf", steps=30), digits.private, digits.schema,
                       Budget(1.0, DELTA), 0, {"n_private": 300, "canaries": 100},
                       private_labels=digits.private_labels)
    assert result.lower_bound <= 1.0


def test_beats_random_noise_on_downstream_accuracy_at_eps_10(digits, eps10):
    syn, _ = eps10
    rng = np.random.default_rng(0)
    noise = Synthetic(rng.integers(0, 256, syn.data.shape, dtype=np.uint8),
                      labels=rng.integers(0, 10, len(syn.labels)))
    merf_acc, noise_acc = _accuracy(digits, syn), _accuracy(digits, noise)
    assert noise_acc < 0.25
    assert merf_acc > 0.6 and merf_acc > noise_acc + 0.4


def test_same_seed_same_images_other_seed_other_images(digits):
    a, _ = _run(digits, 4.0, seed=3, n=50, steps=20)
    b, _ = _run(digits, 4.0, seed=3, n=50, steps=20)
    c, _ = _run(digits, 4.0, seed=4, n=50, steps=20)
    np.testing.assert_array_equal(a.data, b.data)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert not np.array_equal(a.data, c.data)


def test_class_proportions_come_from_the_released_embedding(digits):
    keep = np.isin(digits.private_labels, [0, 1])
    x, y = digits.private[keep], digits.private_labels[keep]
    # make class 0 three times as frequent as class 1 by dropping most of class 1
    ones = np.flatnonzero(y == 1)
    drop = ones[: len(ones) - (y == 0).sum() // 3]
    x, y = np.delete(x, drop, axis=0), np.delete(y, drop)
    syn, _ = _run(digits, 50.0, n=2000, private=x, labels=y, steps=5)
    share = np.bincount(syn.labels, minlength=10) / len(syn.labels)
    truth = np.bincount(y, minlength=10) / len(y)
    assert np.abs(share - truth).max() < 0.06
    uniform, _ = _run(digits, 50.0, n=2000, private=x, labels=y, steps=5, const_weight=0.0)
    assert (np.bincount(uniform.labels, minlength=10) > 0).sum() == 10  # uniform over classes


def test_bad_parameters_are_one_line_config_errors():
    for bad in ({"n_features": 7}, {"const_weight": 1.0}, {"length_scale2": -1.0}, {"steps": 0}):
        with pytest.raises(ConfigError, match="dp-merf"):
            methods.create("dp-merf", **bad)
