"""Fréchet Inception Distance and Kernel Inception Distance of synthetic images vs the eval split.

Both use the Inception-v3 pool features of :mod:`dparena.embeddings.inception` (clean-fid's "clean"
preprocessing). The eval split's features and FID statistics are computed once and cached on disk
under ``ctx.cache_dir`` keyed by dataset name, dataset version and a hash of the eval array.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dparena.embeddings import inception
from dparena.errors import ConfigError, DparenaError
from dparena.metrics.base import EvalData, Metric, MetricContext
from dparena.types import Direction, MetricValue, Modality, Synthetic


def _sqrt_psd(sigma: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric PSD matrix (negative round-off eigenvalues -> 0)."""
    w, v = np.linalg.eigh((sigma + sigma.T) / 2.0)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def cholesky_or_none(sigma: np.ndarray) -> np.ndarray | None:
    """The lower Cholesky factor of a covariance, or None when it is not positive definite."""
    try:
        return np.linalg.cholesky(np.asarray(sigma, dtype=np.float64))
    except np.linalg.LinAlgError:
        return None


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray,
                       chol1: np.ndarray | None = None) -> float:
    """tr √(Σ1 Σ2) = Σ √λ over the eigenvalues λ of Σ1 Σ2.

    With Σ1 = L Lᵀ (``chol1``, e.g. cached with the eval statistics) those are the eigenvalues of
    the symmetric PSD Lᵀ Σ2 L: two matrix products and eigenvalues only (no eigenvectors), about
    10x faster than scipy's ``sqrtm`` at 2,048 dimensions. A Σ1 that is not positive definite falls
    back to the symmetric square root √Σ1 Σ2 √Σ1 (same eigenvalues).
    """
    s2 = np.asarray(sigma2, dtype=np.float64)
    factor = chol1 if chol1 is not None else cholesky_or_none(sigma1)
    if factor is None:
        factor = _sqrt_psd(np.asarray(sigma1, dtype=np.float64))
        m = factor @ s2 @ factor
    else:
        m = factor.T @ s2 @ factor
    lam = np.linalg.eigvalsh((m + m.T) / 2.0)
    return float(np.sqrt(np.clip(lam, 0.0, None)).sum())


def trace_sqrt_product_lowrank(sigma1: np.ndarray, feats2: np.ndarray) -> float:
    """tr √(Σ1 Σ2) where Σ2 is the sample covariance of ``feats2`` (n rows, any n ≥ 2).

    With A = (X2 − mean) / √(n−1), Σ2 = AᵀA and the non-zero eigenvalues of Σ1 Σ2 are those of
    the n×n symmetric PSD matrix A Σ1 Aᵀ, so the trace costs O(n d²) instead of O(d³).
    """
    x = np.asarray(feats2, dtype=np.float64)
    a = (x - x.mean(axis=0)) / np.sqrt(len(x) - 1)
    m = a @ np.asarray(sigma1, dtype=np.float64) @ a.T
    lam = np.linalg.eigvalsh((m + m.T) / 2.0)
    return float(np.sqrt(np.clip(lam, 0.0, None)).sum())


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """Fréchet distance between N(μ1, Σ1) and N(μ2, Σ2): ‖μ1−μ2‖² + tr Σ1 + tr Σ2 − 2 tr √(Σ1Σ2).

    Dowson & Landau (1982); as FID in Heusel et al., "GANs Trained by a Two Time-Scale Update
    Rule Converge to a Local Nash Equilibrium", NeurIPS 2017, eq. (6). The trace of the matrix
    square root is taken through a symmetric eigendecomposition instead of scipy's ``sqrtm``.
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(sigma1), np.atleast_2d(sigma2)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != mu1.shape * 2:
        raise ValueError("means and covariances must have matching dimensions")
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2)
                 - 2.0 * trace_sqrt_product(sigma1, sigma2))


def fid_from_features(feats: np.ndarray, mu_ref: np.ndarray, sigma_ref: np.ndarray,
                      chol_ref: np.ndarray | None = None) -> float:
    """FID of a feature set against reference statistics (low-rank route when n ≤ d; otherwise
    the Cholesky route, with ``chol_ref`` the reference covariance's factor when cached)."""
    x = np.asarray(feats, dtype=np.float64)
    if len(x) < 2:
        raise DparenaError("fid needs at least 2 synthetic images; raise n_samples")
    mu = x.mean(axis=0)
    if len(x) <= x.shape[1]:
        tr_cross = trace_sqrt_product_lowrank(sigma_ref, x)
        tr_syn = float(((x - mu) ** 2).sum() / (len(x) - 1))
    else:
        sigma = np.cov(x, rowvar=False)
        tr_cross = trace_sqrt_product(sigma_ref, sigma, chol_ref)
        tr_syn = float(np.trace(sigma))
    diff = mu - mu_ref
    return float(diff @ diff + np.trace(sigma_ref) + tr_syn - 2.0 * tr_cross)


def kid_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD² with the cubic polynomial kernel k(a, b) = (aᵀb / d + 1)³ over all pairs.

    Bińkowski, Sutherland, Arbel & Gretton, "Demystifying MMD GANs", ICLR 2018, eq. (3) with
    the KID kernel of section 4; the full U-statistic over both sets (sizes m and n may differ),
    not clean-fid's average over random subsets of equal size. Can be slightly negative.
    """
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    m, n, d = len(x), len(y), x.shape[1]
    if m < 2 or n < 2:
        raise DparenaError("kid needs at least 2 images in each set; raise n_samples")
    kxx = (x @ x.T / d + 1.0) ** 3
    kyy = (y @ y.T / d + 1.0) ** 3
    kxy = (x @ y.T / d + 1.0) ** 3
    return float((kxx.sum() - np.trace(kxx)) / (m * (m - 1))
                 + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
                 - 2.0 * kxy.mean())


def eval_features(real: EvalData, ctx: MetricContext) -> np.ndarray:
    """Inception features of the eval split, cached per dataset name, version and eval array."""
    prefix = f"eval-{ctx.dataset or 'data'}-v{ctx.dataset_version or '0'}"
    return inception.cached_features(real.data, ctx.cache_dir, prefix=prefix)


def eval_statistics(real: EvalData, ctx: MetricContext) -> tuple[np.ndarray, np.ndarray, int]:
    """(μ, Σ, N) of the eval split's features, cached as ``<cache_dir>/fid-stats/*.npz``.

    The file name holds the dataset name and version, a hash of the eval array and the feature
    pipeline (``inception.PIPELINE``); a second call with the same eval split reads it and runs no
    network.
    """
    from dparena.io import cached_arrays

    path = None
    if ctx.cache_dir is not None:
        arr = inception.check_images(real.data, "eval images")
        path = (Path(ctx.cache_dir) / "fid-stats"
                / f"{ctx.dataset or 'data'}-v{ctx.dataset_version or '0'}-"
                  f"{inception.array_key(arr)}-{inception.PIPELINE}.npz")

    def compute() -> dict[str, np.ndarray]:
        mu, sigma, n = feature_statistics(eval_features(real, ctx))
        return {"mu": mu, "sigma": sigma, "n": np.asarray(n)}

    stats = cached_arrays(path, compute, check=lambda f: {"mu", "sigma", "n"} <= set(f))
    return stats["mu"], stats["sigma"], int(stats["n"])


def synthetic_features(synthetic: Synthetic, ctx: MetricContext,
                       resolution: int | None = None) -> np.ndarray:
    """Inception features of the synthetic images (first resized to ``resolution`` when given),
    cached by a hash of the array."""
    images = inception.check_images(synthetic.data, "synthetic images")
    if resolution is not None:
        images = pre_resize(images, resolution)
    return inception.cached_features(images, ctx.cache_dir, prefix="syn")


def pre_resize(images: np.ndarray, resolution: int) -> np.ndarray:
    """DPSDA's ``Inception(res=...)`` preprocessing before clean-fid's resize: each channel resized
    to ``resolution``² by PIL's bicubic filter in float, clipped to [0, 255] and rounded to uint8.
    Images already at that size pass through unchanged."""
    arr = inception.check_images(images)
    if arr.shape[1:3] == (resolution, resolution):
        return arr
    out = np.empty((len(arr), resolution, resolution, arr.shape[-1]), dtype=np.uint8)
    for i, img in enumerate(arr):
        for c in range(arr.shape[-1]):
            out[i, :, :, c] = np.around(inception.bicubic_channel(img[:, :, c], resolution))
    return out


def feature_statistics(feats: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """(μ, Σ, N) of a feature set, in float64."""
    x = np.asarray(feats, dtype=np.float64)
    return x.mean(axis=0), np.cov(x, rowvar=False), len(x)


def private_statistics(real: EvalData, resolution: int | None) -> tuple[np.ndarray, np.ndarray, int]:
    """(μ, Σ, N) of the private split's features. Never cached on disk: statistics of the private
    split are private data, and the store's cache folder is not a place for them."""
    if real.private is None:
        raise DparenaError("fid with reference = 'private' needs the private split (the harness "
                           "passes it to metrics that declare needs_private)")
    images = inception.check_images(real.private, "private images")
    if resolution is not None:
        images = pre_resize(images, resolution)
    return feature_statistics(inception.inception_features(images))


class FID(Metric):
    """Fréchet Inception Distance of the synthetic images to real images (lower is better).

    Heusel et al., NeurIPS 2017, eq. (6), with clean-fid's "clean" preprocessing (Parmar et al.,
    CVPR 2022) and the TF Inception 2015-12-05 network; agrees with
    ``cleanfid.fid.compute_fid(mode="clean")`` on the same images. FID is biased upwards at small
    N, so the number of synthetic images is reported beside it (``/n``, the reference size as
    ``/n_ref``).

    ``reference = "eval"`` (the default, for leaderboards): against the eval split; its statistics
    (μ, Σ) are computed once and cached under ``ctx.cache_dir/fid-stats`` keyed by dataset name,
    dataset version and a hash of the eval array. Values ``fid``, ``fid/n``, ``fid/n_ref``.

    ``reference = "private"`` (the PE paper's protocol, microsoft/DPSDA ``ComputeFID(priv_data)``):
    against the PRIVATE split — this metric then declares ``needs_private`` and the harness passes
    it; the private statistics are never cached on disk. Values ``fid-private``, ``fid-private/n``,
    ``fid-private/n_ref``, so a column always says which reference it used. ``resolution = 32``
    adds DPSDA's ``Inception(res=32)`` step (both sets resized to 32² by PIL bicubic in float,
    rounded to uint8) before clean-fid's resize.
    """

    name = "fid"
    modality = Modality.IMAGE
    description = "Frechet Inception Distance to the eval split (clean-fid preprocessing), with N"
    extra = "image"
    direction = Direction.MINIMIZE

    def __init__(self, reference: str = "eval", resolution: int | None = None):
        if reference not in ("eval", "private"):
            raise ConfigError(f"fid: reference must be 'eval' or 'private' (got {reference!r})")
        if resolution is not None and (isinstance(resolution, bool) or not isinstance(resolution, int)
                                       or resolution < 8):
            raise ConfigError(f"fid: resolution must be an integer >= 8 (got {resolution!r})")
        self.reference = reference
        self.resolution = resolution
        self.needs_private = reference == "private"
        self.label = "fid" if reference == "eval" else "fid-private"

    def headline(self) -> list[str]:
        return [self.label]

    def compute(self, synthetic: Synthetic, real: EvalData, ctx: MetricContext) -> list[MetricValue]:
        if self.reference == "private":
            mu_ref, sigma_ref, n_ref = private_statistics(real, self.resolution)
        elif self.resolution is None:
            mu_ref, sigma_ref, n_ref = eval_statistics(real, ctx)
        else:
            mu_ref, sigma_ref, n_ref = feature_statistics(inception.cached_features(
                pre_resize(real.data, self.resolution), ctx.cache_dir, prefix="eval-res"))
        feats = synthetic_features(synthetic, ctx, self.resolution)
        score = max(fid_from_features(feats, mu_ref, sigma_ref), 0.0)
        return [self.value(self.label, score), self.value(f"{self.label}/n", len(feats)),
                self.value(f"{self.label}/n_ref", n_ref)]


class KID(Metric):
    """Kernel Inception Distance: unbiased MMD² of Inception features, cubic polynomial kernel.

    Bińkowski et al., "Demystifying MMD GANs", ICLR 2018: k(x, y) = (xᵀy / 2048 + 1)³, the full
    unbiased estimator over all synthetic and eval images (no random subsets, so no RNG). Same
    features and eval cache as ``fid``. Lower is better; unbiased, so usable at small N.
    """

    name = "kid"
    modality = Modality.IMAGE
    description = "Kernel Inception Distance (unbiased MMD^2, cubic polynomial kernel) to the eval split"
    extra = "image"
    direction = Direction.MINIMIZE

    def compute(self, synthetic: Synthetic, real: EvalData, ctx: MetricContext) -> list[MetricValue]:
        return [self.value("kid", kid_unbiased(synthetic_features(synthetic, ctx),
                                               eval_features(real, ctx)))]
