"""Improved precision and recall of synthetic images (k-NN manifolds of Inception features)."""

from __future__ import annotations

import numpy as np

from dparena.errors import ConfigError, DparenaError
from dparena.metrics.base import EvalData, Metric, MetricContext
from dparena.types import MetricValue, Modality, Synthetic


def _sq_dists(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.maximum(d, 0.0)


def knn_radii(x: np.ndarray, k: int, batch: int = 1024) -> np.ndarray:
    """Squared distance of every row of ``x`` to its k-th nearest other row of ``x``."""
    if not 1 <= k < len(x):
        raise DparenaError(f"precision-recall: k = {k} needs more than k points per set "
                           f"(got {len(x)}); lower k or raise n_samples / n_eval")
    out = np.empty(len(x))
    for s in range(0, len(x), batch):
        d = _sq_dists(x[s:s + batch], x)
        # each row's own distance (0) is the smallest; the k-th neighbour is at sorted index k
        out[s:s + batch] = np.partition(d, k, axis=1)[:, k]
    return out


def coverage_share(queries: np.ndarray, support: np.ndarray, radii: np.ndarray,
                   batch: int = 1024) -> float:
    """Share of ``queries`` inside at least one ball B(support_j, radius_j) (squared radii)."""
    inside = 0
    for s in range(0, len(queries), batch):
        d = _sq_dists(queries[s:s + batch], support)
        inside += int((d <= radii[None, :]).any(axis=1).sum())
    return inside / len(queries)


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = 3) -> tuple[float, float]:
    """(precision, recall) of ``fake`` against ``real`` feature sets.

    Kynkäänniemi, Karras, Laine, Lehtinen & Aila, "Improved Precision and Recall Metric for
    Assessing Generative Models", NeurIPS 2019, eqs. (1)-(2): the manifold of a set is the union of
    balls around its points with radius the distance to the point's k-th nearest neighbour in the
    set; precision = share of fake samples inside the real manifold, recall = share of real samples
    inside the fake manifold.
    """
    real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    precision = coverage_share(fake, real, knn_radii(real, k))
    recall = coverage_share(real, fake, knn_radii(fake, k))
    return precision, recall


class PrecisionRecall(Metric):
    """Improved precision and recall (Kynkäänniemi et al., NeurIPS 2019) on Inception features.

    Same features and eval-feature cache as ``fid``; for texts, on the sentence embeddings of
    ``embedding-fid`` (Aug-PE, Xie et al., ICML 2024, Sec. 5). ``k`` is the neighbourhood size of the k-NN
    manifolds (default 3, the paper's choice). Both values are in [0, 1], higher is better.
    """

    name = "precision-recall"
    modality = (Modality.IMAGE, Modality.TEXT)
    description = "Improved precision / recall (k-NN manifolds of Inception / sentence features, k=3)"
    extra = ""

    def __init__(self, k: int = 3):
        if not isinstance(k, int) or k < 1:
            raise ConfigError(f"precision-recall: k must be an integer >= 1 (got {k!r})")
        self.k = k

    def headline(self) -> list[str]:
        return [f"{self.name}/precision", f"{self.name}/recall"]

    def compute(self, synthetic: Synthetic, real: EvalData, ctx: MetricContext) -> list[MetricValue]:
        if getattr(real.schema, "kind", "") == "text":
            from dparena.metrics.text import eval_text_features, synthetic_text_features

            ref, syn = eval_text_features(real, ctx), synthetic_text_features(synthetic, ctx)
        else:
            from dparena.metrics.fid import eval_features, synthetic_features

            ref, syn = eval_features(real, ctx), synthetic_features(synthetic, ctx)
        p, r = precision_recall(ref, syn, self.k)
        return [self.value(f"{self.name}/precision", p), self.value(f"{self.name}/recall", r)]
