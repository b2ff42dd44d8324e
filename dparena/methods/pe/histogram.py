"""The DP nearest-neighbour histogram of Private Evolution and the selection it drives.

Each private sample votes for its ``k`` nearest synthetic samples; its vote vector has L2 norm 1
(each of the k neighbours gets 1/√k), so adding or removing one private sample moves the histogram
by at most 1 in L2 and the Gaussian mechanism with noise σ is (1/σ)-GDP
(Lin et al., "Differentially Private Synthetic Data via Foundation Model APIs 1: Images",
ICLR 2024, Alg. 1-2; the 1/√k weighting is their Appendix D's k-NN variant with unit sensitivity).
"""

from __future__ import annotations

import math

import numpy as np

from dparena.errors import ConfigError

METRICS = ("l2", "cosine")
SELECTIONS = ("sample", "rank")


def nearest_neighbors(queries: np.ndarray, keys: np.ndarray, k: int = 1, metric: str = "l2",
                      batch_size: int = 1024) -> np.ndarray:
    """Indices ``[n_queries, k]`` of each query's ``k`` nearest keys, nearest first.

    Exact search, batched over the queries: peak memory is O(batch_size × n_keys), never
    O(n_queries × n_keys). Distances are squared L2 (or 1 − cosine similarity), computed with one
    float32 matrix product per batch (numpy's BLAS); for k = 1 ties go to the lower key index.
    """
    if metric not in METRICS:
        raise ConfigError(f"unknown distance {metric!r}; use one of {list(METRICS)}")
    n_keys = len(keys)
    if not 1 <= k <= n_keys:
        raise ConfigError(f"num_nearest_neighbors must be in 1..{n_keys} (got {k})")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError("batch_size must be an integer >= 1")
    x = np.ascontiguousarray(keys, dtype=np.float32)
    q_all = np.ascontiguousarray(queries, dtype=np.float32)
    if metric == "cosine":
        x = _unit_rows(x)
        key_norms = np.zeros(n_keys, dtype=np.float32)
    else:
        key_norms = np.einsum("ij,ij->i", x, x)
    out = np.empty((len(q_all), k), dtype=np.int64)
    for start in range(0, len(q_all), batch_size):
        q = q_all[start:start + batch_size]
        if metric == "cosine":
            q = _unit_rows(q)
        # ||q||² is constant along a row and does not change the ranking
        dist = q @ x.T
        dist *= -2.0
        dist += key_norms[None, :]
        if k == 1:
            out[start:start + len(q), 0] = np.argmin(dist, axis=1)
        else:
            part = np.argpartition(dist, k - 1, axis=1)[:, :k]
            part.sort(axis=1)  # ties in distance then go to the lower index below
            d = np.take_along_axis(dist, part, axis=1)
            order = np.argsort(d, axis=1, kind="stable")
            out[start:start + len(q)] = np.take_along_axis(part, order, axis=1)
    return out


def _unit_rows(a: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(a, axis=1, keepdims=True)
    return a / np.maximum(norms, np.float32(1e-12))


def vote_histogram(private_emb: np.ndarray, synthetic_emb: np.ndarray, k: int = 1,
                   metric: str = "l2", batch_size: int = 1024) -> np.ndarray:
    """The (noise-free) vote histogram over the synthetic samples, each private vote of L2 norm 1."""
    hist = np.zeros(len(synthetic_emb), dtype=np.float64)
    if len(private_emb) == 0:
        return hist
    nn = nearest_neighbors(private_emb, synthetic_emb, k=k, metric=metric, batch_size=batch_size)
    np.add.at(hist, nn.ravel(), 1.0 / math.sqrt(k))
    return hist


def add_noise(hist: np.ndarray, sigma: float, rng) -> np.ndarray:
    """Gaussian mechanism: N(0, σ²) on every bin (σ = 0 only for noise-free diagnostics); ``rng``
    is anything with ``normal(loc, scale, size)``: a numpy generator or a noise source."""
    if sigma < 0:
        raise ValueError("sigma must be >= 0")
    if sigma == 0:
        return hist.astype(np.float64, copy=True)
    return hist + rng.normal(0.0, sigma, size=hist.shape)


def threshold(noisy: np.ndarray, h: float) -> np.ndarray:
    """h' = max(h − H, 0): removes bins whose votes are mostly noise (PE's threshold H)."""
    return np.maximum(noisy - h, 0.0)


def select(counts: np.ndarray, n: int, rng: np.random.Generator,
           mode: str = "sample") -> tuple[np.ndarray, bool]:
    """Indices of ``n`` selected samples and whether the all-zero fallback was used.

    ``sample``: n draws with replacement, probability ∝ counts (PE images, Alg. 1).
    ``rank``: the n samples with the largest counts, each once (Aug-PE's rank selection; ties to the
    lower index); when the population holds fewer than n, all of them, then repeated in rank order.
    When every count is 0 there is no signal: uniform draws (without replacement for ``rank``),
    reported back.
    """
    if mode not in SELECTIONS:
        raise ConfigError(f"unknown selection {mode!r}; use one of {list(SELECTIONS)}")
    m = len(counts)
    if m == 0 or n <= 0:
        return np.zeros(0, dtype=np.int64), False
    total = float(np.sum(counts))
    if mode == "sample":
        if not total > 0:
            return rng.integers(0, m, size=n).astype(np.int64), True
        return rng.choice(m, size=n, replace=True, p=counts / total).astype(np.int64), False
    if not total > 0:
        order = rng.permutation(m)
    else:
        order = np.argsort(-np.asarray(counts, dtype=np.float64), kind="stable")
    return np.resize(order[:n], n).astype(np.int64), not total > 0
