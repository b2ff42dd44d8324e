"""Image metrics: Fréchet distance, KID, precision/recall, Inception features, downstream accuracy."""

import os

import numpy as np
import pytest
import scipy.linalg

from dparena.errors import ConfigError, DparenaError
from dparena.metrics import metrics
from dparena.metrics.base import EvalData, MetricContext
from dparena.metrics.fid import (
    fid_from_features,
    frechet_distance,
    kid_unbiased,
    trace_sqrt_product,
    trace_sqrt_product_lowrank,
)
from dparena.metrics.precision_recall import precision_recall
from dparena.types import Synthetic

os.environ.setdefault("OMP_NUM_THREADS", "1")


# -- Fréchet distance ------------------------------------------------------------------------------
def test_frechet_distance_of_1d_gaussians_by_hand():
    # N(0, 1) vs N(1, 4): (0 - 1)^2 + 1 + 4 - 2 * sqrt(1 * 4) = 2
    assert frechet_distance([0.0], [[1.0]], [1.0], [[4.0]]) == pytest.approx(2.0, abs=1e-12)


def test_frechet_distance_of_diagonal_gaussians_is_mean_gap_plus_std_gap():
    mu1, mu2 = np.array([0.0, 1.0, -2.0]), np.array([0.5, 1.0, 0.0])
    s1, s2 = np.array([1.0, 2.0, 0.5]), np.array([3.0, 2.0, 1.5])  # standard deviations
    expected = ((mu1 - mu2) ** 2).sum() + ((s1 - s2) ** 2).sum()  # 0.25 + 4 + 4 + 0 + 1
    assert expected == pytest.approx(9.25)
    got = frechet_distance(mu1, np.diag(s1**2), mu2, np.diag(s2**2))
    assert got == pytest.approx(expected, abs=1e-10)


def test_trace_sqrt_matches_scipy_sqrtm_for_non_commuting_covariances():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((6, 6)), rng.standard_normal((6, 6))
    s1, s2 = a @ a.T + 0.1 * np.eye(6), b @ b.T + 0.1 * np.eye(6)
    reference = np.trace(scipy.linalg.sqrtm(s1 @ s2)).real
    assert trace_sqrt_product(s1, s2) == pytest.approx(reference, rel=1e-9)


def test_cholesky_route_matches_sqrtm_and_the_symmetric_route():
    """The cached-Cholesky route (Lᵀ Σ2 L), the symmetric route (a singular Σ1 has no Cholesky
    factor) and scipy's sqrtm agree on non-commuting covariances to 1e-9 relative."""
    from dparena.metrics.fid import cholesky_or_none

    rng = np.random.default_rng(3)
    d = 64
    a, b = rng.standard_normal((200, d)), rng.standard_normal((200, d)) @ rng.standard_normal((d, d))
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    reference = np.trace(scipy.linalg.sqrtm(s1 @ s2)).real
    chol = cholesky_or_none(s1)
    assert chol is not None
    assert trace_sqrt_product(s1, s2, chol) == pytest.approx(reference, rel=1e-9)
    singular = s1.copy()
    singular[:, 0] = singular[0, :] = 0.0  # PSD, not positive definite
    assert cholesky_or_none(singular) is None
    ref_singular = np.trace(scipy.linalg.sqrtm(singular @ s2)).real
    assert trace_sqrt_product(singular, s2) == pytest.approx(ref_singular, rel=1e-7)


@pytest.mark.parametrize("n", [8, 40])  # fewer and more samples than dimensions
def test_lowrank_route_equals_full_route(n):
    rng = np.random.default_rng(n)
    d = 20
    ref = rng.standard_normal((60, d)) @ rng.standard_normal((d, d))
    feats = rng.standard_normal((n, d)) * 2 + 1
    mu_ref, sigma_ref = ref.mean(0), np.cov(ref, rowvar=False)
    sigma = np.cov(feats, rowvar=False)
    assert trace_sqrt_product_lowrank(sigma_ref, feats) == pytest.approx(
        trace_sqrt_product(sigma_ref, sigma), rel=1e-6)
    assert fid_from_features(feats, mu_ref, sigma_ref) == pytest.approx(
        frechet_distance(feats.mean(0), sigma, mu_ref, sigma_ref), rel=1e-6)


def test_fid_of_a_set_with_itself_is_zero():
    x = np.random.default_rng(1).standard_normal((50, 10))
    assert fid_from_features(x, x.mean(0), np.cov(x, rowvar=False)) == pytest.approx(0, abs=1e-8)


# -- KID -------------------------------------------------------------------------------------------
def _kid_bruteforce(x, y):
    d = x.shape[1]

    def k(a, b):
        return (a @ b / d + 1.0) ** 3

    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return xx + yy - 2 * xy


def test_kid_equals_the_pairwise_u_statistic():
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((5, 3)), rng.standard_normal((7, 3)) + 0.3
    assert kid_unbiased(x, y) == pytest.approx(_kid_bruteforce(x, y), rel=1e-10)


def test_kid_matches_clean_fid_on_one_full_subset():
    from cleanfid.fid import kernel_distance

    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((30, 16)), rng.standard_normal((30, 16)) + 0.5
    # one subset of the full size is a permutation of all points: the same U-statistic
    assert kernel_distance(x, y, num_subsets=1, max_subset_size=30) == pytest.approx(
        kid_unbiased(x, y), rel=1e-9)


def test_kid_near_zero_for_same_distribution_and_positive_when_shifted():
    rng = np.random.default_rng(4)
    a, b = rng.standard_normal((400, 32)), rng.standard_normal((400, 32))
    same = kid_unbiased(a, b)
    shifted = kid_unbiased(a, b + 1.0)
    assert abs(same) < 0.02 * shifted
    assert shifted > 0.1


# -- precision / recall ----------------------------------------------------------------------------
def test_precision_recall_on_constructed_point_clouds():
    real = np.stack([np.arange(20.0), np.zeros(20)], axis=1)  # spacing 1: every k=1 radius is 1
    near = np.stack([np.arange(10.0) + 0.2, np.zeros(10)], axis=1)
    far = np.stack([np.arange(10.0) + 100, np.zeros(10)], axis=1)
    p, r = precision_recall(real, np.concatenate([near, far]), k=1)
    assert p == pytest.approx(0.5)  # the 10 near points lie in the real manifold, the far ones not
    # the near points' balls (radius 1) cover real points 0..10: 11 of 20
    assert r == pytest.approx(11 / 20)
    assert precision_recall(real, real, k=3) == (1.0, 1.0)


def test_precision_recall_rejects_too_large_k():
    with pytest.raises(DparenaError, match="lower k"):
        precision_recall(np.zeros((3, 2)), np.ones((3, 2)), k=3)
    with pytest.raises(ConfigError):
        metrics.create("precision-recall", k=0)


# -- Inception features and the eval cache (real network, a handful of images) ---------------------
@pytest.fixture(scope="module")
def digits(assets):
    from dparena.datasets import datasets

    return datasets.create("digits").load(assets)


def test_inception_features_grey_equals_repeated_rgb(digits):
    from dparena.embeddings.inception import inception_features

    grey = digits.eval[:3]
    f1 = inception_features(grey, batch_size=2)
    f3 = inception_features(np.repeat(grey, 3, axis=-1), batch_size=3)
    assert f1.shape == (3, 2048) and f1.dtype == np.float32
    np.testing.assert_allclose(f1, f3, rtol=1e-4, atol=1e-5)
    assert np.isfinite(f1).all() and (f1 >= 0).all()  # pool features follow a ReLU
    assert not np.allclose(f1[0], f1[1])


def test_resize_is_clean_fids_clean_resizer_bit_for_bit():
    """resize_nhwc (one PIL float resize per channel, a grey channel copied) gives exactly what
    clean-fid's build_resizer("clean") gives each RGB image (grey converted as PIL does)."""
    from cleanfid.resize import build_resizer

    from dparena.embeddings.inception import clean_resize, resize_nhwc

    rng = np.random.default_rng(7)
    resizer = build_resizer("clean")
    for shape in [(3, 28, 28, 1), (2, 32, 32, 3), (1, 40, 24, 3)]:
        images = rng.integers(0, 256, shape, dtype=np.uint8)
        expect = np.stack([resizer(np.repeat(x, 3, axis=-1) if x.shape[-1] == 1 else x)
                           for x in images])
        got = resize_nhwc(images)
        assert got.dtype == np.float32 and got.shape == (len(images), 299, 299, 3)
        np.testing.assert_array_equal(got, expect)
        np.testing.assert_array_equal(clean_resize(images), expect.transpose(0, 3, 1, 2))


def test_features_agree_with_clean_fids_pipeline_on_the_published_network(digits):
    """The tuned network (folded batch norm, channels-last, resizing in a second thread, a
    partial last batch) vs clean-fid's resizer, ToTensor batching and the published TorchScript
    module as clean-fid runs a custom extractor: equal to 1e-5 relative."""
    import torch
    from cleanfid.resize import build_resizer

    from dparena.embeddings import inception

    images = digits.eval[10:15]
    resizer = build_resizer("clean")
    batch = torch.stack([torch.from_numpy(resizer(np.repeat(x, 3, axis=-1))).permute(2, 0, 1)
                         for x in images])
    with torch.no_grad():
        expect = inception.load_inception()((batch - 128.0) / 128.0).reshape(-1, 2048).numpy()
    assert inception.fast_inception() is not inception.load_inception()  # the tuned copy runs
    for batch_size in (2, 5):
        got = inception.inception_features(images, batch_size=batch_size)
        rel = np.abs(got - expect).max() / np.abs(expect).max()
        assert rel <= 1e-5, f"batch {batch_size}: relative difference {rel:.2e}"
        assert not np.array_equal(got[0], got[1])


def test_eager_copy_refuses_a_network_of_another_shape():
    """Another export (other module names or blocks) is refused, never converted half-right;
    fast_inception then runs the published module with a warning."""
    import torch

    from dparena.embeddings.inception import eager_copy

    with pytest.raises(AttributeError):
        eager_copy(torch.jit.script(torch.nn.Linear(2, 2)))


def test_fid_kid_pr_share_cached_features_and_eval_stats(digits, tmp_path):
    from dparena.embeddings import inception

    real = EvalData(digits.eval[:8], digits.schema, digits.eval_labels[:8])
    syn = Synthetic(digits.private[:6], labels=digits.private_labels[:6])
    ctx = MetricContext(seed=0, dataset="digits", dataset_version="1", cache_dir=tmp_path)
    before = inception.images_embedded()
    first = {v.name: v.value for v in metrics.create("fid").compute(syn, real, ctx)}
    assert inception.images_embedded() - before == 14  # 8 eval + 6 synthetic, once each
    stats = list((tmp_path / "fid-stats").glob("digits-v1-*.npz"))
    assert len(stats) == 1
    mtime = stats[0].stat().st_mtime_ns
    kid = metrics.create("kid").compute(syn, real, ctx)[0].value
    pr = {v.name: v.value for v in metrics.create("precision-recall", k=2).compute(syn, real, ctx)}
    second = {v.name: v.value for v in metrics.create("fid").compute(syn, real, ctx)}
    assert inception.images_embedded() - before == 14  # everything after was a cache hit
    assert stats[0].stat().st_mtime_ns == mtime
    assert second == first and first["fid/n"] == 6 and first["fid/n_ref"] == 8
    assert first["fid"] > 0 and np.isfinite(kid)
    assert 0 <= pr["precision-recall/precision"] <= 1 and 0 <= pr["precision-recall/recall"] <= 1
    # another eval split of the same dataset gets its own statistics
    other = EvalData(digits.eval[8:16], digits.schema, digits.eval_labels[8:16])
    metrics.create("fid").compute(syn, other, ctx)
    assert len(list((tmp_path / "fid-stats").glob("digits-v1-*.npz"))) == 2


def test_image_metrics_reject_non_uint8_images(digits, tmp_path):
    real = EvalData(digits.eval[:4], digits.schema, digits.eval_labels[:4])
    bad = Synthetic(digits.private[:4].astype(np.float32) / 255, labels=digits.private_labels[:4])
    with pytest.raises(DparenaError, match="uint8"):
        metrics.create("kid").compute(bad, real, MetricContext(cache_dir=tmp_path))


# -- downstream accuracy ---------------------------------------------------------------------------
def _downstream(bundle, images, labels, seed=0, **params):
    real = EvalData(bundle.eval, bundle.schema, bundle.eval_labels)
    out = metrics.create("downstream-accuracy", **params).compute(
        Synthetic(images, labels=labels), real, MetricContext(seed=seed))
    return out[0].value


def test_downstream_accuracy_real_vs_shuffled_labels(digits):
    real_acc = _downstream(digits, digits.private, digits.private_labels)
    shuffled = np.random.default_rng(0).permutation(digits.private_labels)
    shuffled_acc = _downstream(digits, digits.private, shuffled)
    assert real_acc > 0.85
    assert shuffled_acc < 0.3
    again = _downstream(digits, digits.private, digits.private_labels)
    assert again == real_acc  # deterministic under the seed


def test_downstream_accuracy_of_a_single_class_set_is_that_class_share(digits):
    three = digits.private[digits.private_labels == 3][:40]
    acc = _downstream(digits, three, np.full(len(three), 3), epochs=2)
    assert acc == pytest.approx(np.mean(digits.eval_labels == 3))


def test_downstream_accuracy_input_errors(digits):
    real = EvalData(digits.eval, digits.schema, digits.eval_labels)
    with pytest.raises(DparenaError, match="labels"):
        metrics.create("downstream-accuracy").compute(Synthetic(digits.private[:5]), real,
                                                      MetricContext())
    with pytest.raises(ConfigError):
        metrics.create("downstream-accuracy", holdout=1.5)


# -- agreement with clean-fid (the reference implementation) ---------------------------------------
@pytest.mark.slow
def test_fid_agrees_with_clean_fid_on_two_image_folders(digits, tmp_path):
    """clean-fid's compute_fid(mode="clean") on PNG folders vs our fid on the same pixels.

    The asset's TorchScript module is the same TF-Inception network as clean-fid's
    ``inception-2015-12-05.pt`` but a different export (no ``.layers`` attribute, other bytes), so
    it cannot be dropped into clean-fid's tmp dir; it is passed as ``custom_feat_extractor``
    (clean-fid then does its own file reading, "clean" resizing, batching and Fréchet distance).
    """
    import torch
    from cleanfid import fid as cfid
    from PIL import Image

    from dparena.embeddings.inception import load_inception

    rng = np.random.default_rng(5)
    a = digits.private[rng.choice(len(digits.private), 24, replace=False)]
    b = digits.eval[rng.choice(len(digits.eval), 24, replace=False)]
    for name, arr in (("a", a), ("b", b)):
        (tmp_path / name).mkdir()
        for i, img in enumerate(arr):
            Image.fromarray(img[:, :, 0]).save(tmp_path / name / f"{i:03d}.png")
    net = load_inception()

    def extractor(x):  # x: [B, 3, 299, 299] float in [0, 255], resized by clean-fid
        return net((x - 128.0) / 128.0).reshape(len(x), 2048)

    reference = cfid.compute_fid(str(tmp_path / "a"), str(tmp_path / "b"), mode="clean",
                                 custom_feat_extractor=extractor, device=torch.device("cpu"),
                                 num_workers=0, use_dataparallel=False, batch_size=8,
                                 verbose=False)
    real = EvalData(b, digits.schema, None)
    ctx = MetricContext(dataset="digits", dataset_version="1", cache_dir=tmp_path / "cache")
    ours = metrics.create("fid").compute(Synthetic(a), real, ctx)[0].value
    print(f"\nFID of 24 vs 24 digits: clean-fid {reference:.6f}, dparena {ours:.6f}")
    assert ours == pytest.approx(reference, rel=1e-3)
