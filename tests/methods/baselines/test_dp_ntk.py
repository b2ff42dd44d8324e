"""DP-NTK baseline: the NTK features against autograd, one booked release, seeds, utility."""

import math

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
TINY = dict(ntk_width=64, steps=3, batch_size=50)


@pytest.fixture(scope="module")
def digits(assets):
    from dparena.datasets import datasets

    return datasets.create("digits").load(assets)


def _run(bundle, eps, seed=0, n=100, private=None, labels=None, public_size=None, delta=DELTA,
         **params):
    private = bundle.private if private is None else private
    task = Task(private=private, schema=bundle.schema, budget=Budget(eps, delta), n_samples=n,
                seed=seed, private_labels=bundle.private_labels if labels is None else labels,
                public_size=len(private) if public_size is None else public_size)
    ledger = Ledger()
    syn = methods.create("dp-ntk", **{**TINY, **params}).generate(task, ledger)
    return syn, ledger


def test_closed_form_features_are_the_normalised_ntk_gradient():
    """ψ(x) against autograd on the reference network (Linear, ReLU, LayerNorm without affine,
    Linear; φ = ∇θ Σ_k f_k(x) / ‖·‖), the duplicated W₂ / b₂ blocks kept once × √K."""
    import torch

    from dparena.methods.baselines.dp_ntk import ntk_features

    torch.manual_seed(0)
    d, m, k = 20, 16, 4
    fc1, fc2 = torch.nn.Linear(d, m), torch.nn.Linear(m, k)
    norm = torch.nn.LayerNorm(m, elementwise_affine=False)
    x = torch.rand(6, d)
    factor, rest = ntk_features(torch, x, fc1.weight.detach(), fc1.bias.detach(),
                                fc2.weight.detach())
    for i in range(len(x)):
        out = fc2(norm(torch.relu(fc1(x[i])))).sum()
        grads = torch.autograd.grad(out, [fc1.weight, fc1.bias, fc2.weight, fc2.bias])
        scale = torch.cat([g.flatten() for g in grads]).norm()
        gw1, gb1, gw2, gb2 = (g / scale for g in grads)
        torch.testing.assert_close(torch.outer(factor[i], x[i]), gw1, atol=1e-6, rtol=1e-4)
        torch.testing.assert_close(rest[i, :m], gb1, atol=1e-6, rtol=1e-4)
        torch.testing.assert_close(rest[i, m:2 * m], gw2[0] * math.sqrt(k), atol=1e-6, rtol=1e-4)
        torch.testing.assert_close(rest[i, -1], gb2[0] * math.sqrt(k), atol=1e-6, rtol=1e-4)
        assert (torch.outer(factor[i], x[i]) ** 2).sum() + (rest[i] ** 2).sum() == \
            pytest.approx(1.0, abs=1e-5)


def test_fast_matching_loss_equals_the_direct_embedding_distance():
    import torch

    from dparena.methods.baselines.dp_ntk import matching_loss, ntk_embedding

    torch.manual_seed(1)
    d, m, k = 12, 10, 3
    w1, b1, w2 = torch.randn(m, d) / 4, torch.randn(m), torch.randn(k, m)
    x, y = torch.rand(7, d), torch.tensor([0, 2, 2, 1, 0, 0, 2])
    big, rest = ntk_embedding(torch, x, y, k, w1, b1, w2, chunk=3)
    e_big, e_rest = torch.randn_like(big) / 10, torch.randn_like(rest) / 10
    direct = ((e_big - big / 7) ** 2).sum() + ((e_rest - rest / 7) ** 2).sum()
    fast = matching_loss(torch, e_big, e_rest, (e_big ** 2).sum(), x, y, k, w1, b1, w2)
    assert float(fast) == pytest.approx(float(direct), rel=1e-5)


@pytest.mark.parametrize("eps,delta", [(1.0, 1e-5), (4.0, 1e-6), (10.0, 1e-3)])
def test_one_gaussian_release_booked_within_budget(digits, eps, delta):
    syn, ledger = _run(digits, eps, n=30, delta=delta)
    [entry] = ledger.entries
    n = len(digits.private)
    assert entry.params["sensitivity"] == pytest.approx(1.0 / n)  # add/remove, public N
    assert entry.params["sigma"] == pytest.approx(gaussian_sigma(eps, delta, 1.0 / n))
    spent, spent_delta = ledger.spent(delta)
    assert spent <= eps + 1e-9 and spent_delta <= delta
    assert ledger.accountant() == "GDP (exact)"
    assert entry.params["feature_dim"] == 64 * 64 + 2 * 64 + 1  # W₁ block, b₁, W₂ once, b₂ once


def test_output_images_have_the_schema_shape_range_and_balanced_labels(digits):
    syn, _ = _run(digits, 4.0, n=50)
    assert syn.data.shape == (50, 8, 8, 1) and syn.data.dtype == np.uint8
    digits.schema.conform(syn.data, syn.labels, "synthetic")
    assert np.bincount(syn.labels, minlength=10).tolist() == [5] * 10


def test_noise_scale_does_not_depend_on_the_private_rows(digits):
    _, full = _run(digits, 1.0, n=10, public_size=1297)
    _, minus = _run(digits, 1.0, n=10, private=digits.private[1:],
                    labels=digits.private_labels[1:], public_size=1297)
    assert full.entries[0].params["sigma"] == minus.entries[0].params["sigma"]


def test_without_a_public_size_it_refuses_to_run(digits):
    task = Task(private=digits.private, schema=digits.schema, budget=Budget(1.0, DELTA),
                n_samples=10, seed=0, private_labels=digits.private_labels)
    with pytest.raises(ConfigError, match="public dataset size"):
        methods.create("dp-ntk", **TINY).generate(task, Ledger())


def test_same_seed_same_images_other_seed_other_images(digits):
    a, _ = _run(digits, 4.0, seed=3, n=40)
    b, _ = _run(digits, 4.0, seed=3, n=40)
    c, _ = _run(digits, 4.0, seed=4, n=40)
    np.testing.assert_array_equal(a.data, b.data)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert not np.array_equal(a.data, c.data)


def test_beats_random_noise_on_downstream_accuracy_at_eps_10(digits):
    syn, _ = _run(digits, 10.0, n=500, ntk_width=400, steps=150, batch_size=200)
    rng = np.random.default_rng(0)
    noise = Synthetic(rng.integers(0, 256, syn.data.shape, dtype=np.uint8),
                      labels=rng.integers(0, 10, len(syn.labels)))
    real = EvalData(digits.eval, digits.schema, digits.eval_labels)

    def accuracy(s):
        return metrics.create("downstream-accuracy").compute(s, real, MetricContext(seed=0))[0].value

    ntk_acc, noise_acc = accuracy(syn), accuracy(noise)
    assert noise_acc < 0.25
    assert ntk_acc > 0.6 and ntk_acc > noise_acc + 0.4


@pytest.mark.parametrize("bad", [{"ntk_width": 0}, {"steps": 0}, {"batch_size": 1},
                                 {"channels": [16]}, {"kernel_sizes": [4, 5]}, {"lr": 0.0},
                                 {"lr_decay": 1.5}, {"code_dim": 2.5}])
def test_bad_parameters_are_one_line_config_errors(bad):
    with pytest.raises(ConfigError, match="dp-ntk"):
        methods.create("dp-ntk", **bad)
