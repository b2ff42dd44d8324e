"""Image metrics: Inception feature throughput and the FID caches, as ratios measured in one run.

0. ``inception_features`` vs clean-fid's own pipeline on the same TF-Inception network, 64 MNIST
   images: clean-fid's ``get_files_features`` (its ResizeDataset with ``build_resizer("clean")``,
   ToTensor, a DataLoader of batch 32, ``num_workers=0``) with the published TorchScript module as
   its ``custom_feat_extractor``. Throughput ratio, target >= 1.3x; features equal to 1e-5
   relative. The two pipelines alternate round by round, so a load change hits both.
1. ``inception_features`` (clean-fid resize + network) vs a bare forward pass of the same tuned
   network on already-resized batches: throughput ratio, target >= 0.9.
2. FID scoring of the same synthetic set against the same eval split with a cold cache (eval and
   synthetic features computed) vs a warm one (eval statistics and synthetic features read from
   disk): speed-up, target >= 5x. Also reported: a warm eval cache with a NEW synthetic set (the
   next run of a suite), whose speed-up is bounded by (n_eval + n_syn) / n_syn.
3. The Fréchet distance of two full-rank 2048-d Gaussians: dparena's Cholesky route vs clean-fid's
   ``frechet_distance`` (scipy ``sqrtm``): speed-up, target >= 10x, value equal to 1e-9 relative.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest  # noqa: E402

from dparena.assets import AssetStore  # noqa: E402
from dparena.datasets import datasets  # noqa: E402
from dparena.embeddings import inception  # noqa: E402
from dparena.metrics import metrics  # noqa: E402
from dparena.metrics.base import EvalData, MetricContext  # noqa: E402
from dparena.types import Synthetic  # noqa: E402

RESULTS: dict[str, float] = {}
N = 16
N_CLEANFID = int(os.environ.get("DPARENA_BENCH_INCEPTION_N", "64"))


@pytest.fixture(scope="module")
def mnist():
    return datasets.create("mnist", n_private=200, n_eval=200).load(AssetStore())


def test_inception_vs_cleanfid_pipeline(benchmark, mnist, tmp_path):
    import time

    import numpy as np
    import torch
    from cleanfid.fid import get_files_features

    images = mnist.eval[:N_CLEANFID]
    files = []
    for i, img in enumerate(images):  # clean-fid reads files; .npy keeps the pixels exact
        files.append(str(tmp_path / f"{i:04d}.npy"))
        np.save(files[-1], np.repeat(img, 3, axis=-1))  # PIL's convert("RGB") of a grey image
    net = inception.load_inception()

    def extractor(x):  # as test_image_metrics' agreement test passes it to clean-fid
        return net((x - 128.0) / 128.0).reshape(len(x), 2048)

    def cleanfid():
        return get_files_features(files, model=extractor, num_workers=0, batch_size=32,
                                  device=torch.device("cpu"), mode="clean", verbose=False)

    inception.inception_features(images[:4])  # warm-up: the tuned network is built once
    extractor(torch.zeros(1, 3, 299, 299))
    ref_times: list[float] = []
    ref: list[np.ndarray] = []

    def reference_round():  # untimed by pytest-benchmark: runs before each of its rounds
        t0 = time.perf_counter()
        ref.append(cleanfid())
        ref_times.append(time.perf_counter() - t0)

    ours = benchmark.pedantic(inception.inception_features, args=(images,), setup=reference_round,
                              rounds=2, iterations=1)
    rel = float(np.abs(ours - ref[0]).max() / np.abs(ref[0]).max())
    ratio = min(ref_times) / benchmark.stats.stats.min
    benchmark.extra_info.update(images_per_s=N_CLEANFID / benchmark.stats.stats.min,
                                cleanfid_images_per_s=N_CLEANFID / min(ref_times),
                                speedup_vs_cleanfid=ratio, relative_difference=rel)
    print(f"\nInception features, {N_CLEANFID} MNIST images: dparena "
          f"{N_CLEANFID / benchmark.stats.stats.min:.2f} img/s, clean-fid's pipeline "
          f"{N_CLEANFID / min(ref_times):.2f} img/s -> {ratio:.2f}x (target >= 1.3x); features "
          f"equal to {rel:.1e} relative (target <= 1e-5)")
    assert rel <= 1e-5


def test_bare_forward(benchmark, mnist):
    net = inception.fast_inception()
    batches = [inception.clean_resize(mnist.eval[i:i + 8]) for i in range(0, N, 8)]
    inception.forward(net, batches[0])  # warm-up

    def run():
        return [inception.forward(net, b) for b in batches]

    benchmark.pedantic(run, rounds=3, iterations=1)
    RESULTS["bare"] = benchmark.stats.stats.median
    benchmark.extra_info["images_per_s"] = N / RESULTS["bare"]


def test_inception_features(benchmark, mnist):
    feats = benchmark.pedantic(inception.inception_features, args=(mnist.eval[:N],),
                               kwargs={"batch_size": 8}, rounds=3, iterations=1)  # as the bare run
    assert feats.shape == (N, 2048)
    RESULTS["features"] = benchmark.stats.stats.median
    benchmark.extra_info["images_per_s"] = N / RESULTS["features"]
    if "bare" in RESULTS:
        ratio = RESULTS["bare"] / RESULTS["features"]
        benchmark.extra_info["throughput_ratio_vs_bare"] = ratio
        print(f"\ninception_features / bare forward throughput: {ratio:.3f} (target >= 0.9)")


def _score(syn, real, cache_dir):
    ctx = MetricContext(dataset="mnist", dataset_version="1", cache_dir=cache_dir)
    return metrics.create("fid").compute(syn, real, ctx)[0].value


def test_fid_uncached(benchmark, mnist, tmp_path):
    real = EvalData(mnist.eval[:N], mnist.schema, mnist.eval_labels[:N])
    syn = Synthetic(mnist.private[:N], labels=mnist.private_labels[:N])
    counter = iter(range(100))
    benchmark.pedantic(lambda: _score(syn, real, tmp_path / f"c{next(counter)}"), rounds=3,
                       iterations=1)
    RESULTS["uncached"] = benchmark.stats.stats.median


def test_fid_cached(benchmark, mnist, tmp_path):
    real = EvalData(mnist.eval[:N], mnist.schema, mnist.eval_labels[:N])
    syn = Synthetic(mnist.private[:N], labels=mnist.private_labels[:N])
    first = _score(syn, real, tmp_path)  # fills the caches
    before = inception.images_embedded()
    value = benchmark.pedantic(lambda: _score(syn, real, tmp_path), rounds=5, iterations=1)
    assert value == first and inception.images_embedded() == before
    RESULTS["cached"] = benchmark.stats.stats.median
    if "uncached" in RESULTS:
        ratio = RESULTS["uncached"] / RESULTS["cached"]
        benchmark.extra_info["speedup_vs_uncached"] = ratio
        print(f"\nFID scoring, uncached / cached time: {ratio:.1f}x (target >= 5x)")


def test_fid_eval_cached_new_synthetic(benchmark, mnist, tmp_path):
    real = EvalData(mnist.eval[:N], mnist.schema, mnist.eval_labels[:N])
    _score(Synthetic(mnist.private[:N]), real, tmp_path)  # eval statistics cached
    starts = iter(range(N, 200, N))

    def fresh():
        s = next(starts)
        return _score(Synthetic(mnist.private[s:s + N]), real, tmp_path)

    benchmark.pedantic(fresh, rounds=3, iterations=1)
    if "uncached" in RESULTS:
        ratio = RESULTS["uncached"] / benchmark.stats.stats.median
        benchmark.extra_info["speedup_vs_uncached"] = ratio
        print(f"\nFID scoring with cached eval stats, new synthetic set: {ratio:.2f}x "
              f"(bound (n_eval + n_syn) / n_syn = {(2 * N) / N:.1f}x)")


@pytest.fixture(scope="module")
def full_rank_statistics():
    """Two non-commuting, full-rank 2048-d covariances (n = 3,000 > d), as FID sees at scale."""
    import numpy as np

    rng = np.random.default_rng(0)
    d = inception.DIM
    a = rng.standard_normal((3000, d))
    b = rng.standard_normal((3000, d)) @ (np.eye(d) + 0.1 * rng.standard_normal((d, d)))
    return a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False)


def test_frechet_reference_cleanfid_sqrtm(benchmark, full_rank_statistics):
    """The reference: clean-fid's frechet_distance (scipy sqrtm of Σ1Σ2)."""
    from cleanfid.fid import frechet_distance as cleanfid_frechet

    mu1, s1, mu2, s2 = full_rank_statistics
    RESULTS["frechet_ref_value"] = benchmark.pedantic(cleanfid_frechet, args=(mu1, s1, mu2, s2),
                                                      rounds=1, iterations=1)
    RESULTS["frechet_ref"] = benchmark.stats.stats.median


def test_frechet_dparena(benchmark, full_rank_statistics):
    """dparena's Cholesky route (Lᵀ Σ2 L, eigenvalues only): target >= 10x clean-fid, same value
    to 1e-9 relative."""
    from dparena.metrics.fid import frechet_distance

    mu1, s1, mu2, s2 = full_rank_statistics
    value = benchmark.pedantic(frechet_distance, args=(mu1, s1, mu2, s2), rounds=3, iterations=1)
    if "frechet_ref" in RESULTS:
        ratio = RESULTS["frechet_ref"] / benchmark.stats.stats.median
        rel = abs(value - RESULTS["frechet_ref_value"]) / abs(RESULTS["frechet_ref_value"])
        benchmark.extra_info.update(speedup_vs_cleanfid=ratio, relative_difference=rel)
        print(f"\nFrechet distance, 2048-d full rank: {ratio:.1f}x clean-fid's sqrtm route "
              f"(target >= 10x), relative difference {rel:.1e} (target <= 1e-9)")
        assert rel <= 1e-9
