"""Text metrics on sentence embeddings (all-MiniLM-L6-v2), as Aug-PE evaluates synthetic text.

Xie et al., "Differentially Private Synthetic Data via Foundation Model APIs 2: Text" (ICML 2024),
Sec. 5: the Fréchet distance between sentence embeddings of synthetic and real texts ("FID" on
embeddings), precision / recall on the same embeddings, and downstream accuracy. Embeddings are
cached on disk under ``text-embeddings/`` keyed by a hash of the texts and the encoder, so metrics
of one run share one encoder pass; the eval split's go to ``ctx.eval_dir`` (``$DPARENA_HOME/cache/
eval`` in the harness), so it is embedded once per machine, not once per store.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from dparena.errors import DparenaError
from dparena.metrics.base import EvalData, Metric, MetricContext
from dparena.types import Direction, MetricValue, Modality, Synthetic


def texts_key(texts: list[str]) -> str:
    """A content hash of a list of texts (order matters)."""
    return hashlib.sha256(json.dumps(texts, ensure_ascii=False).encode()).hexdigest()[:24]


def text_features(texts, cache_dir: Path | None, prefix: str = "texts") -> np.ndarray:
    """Sentence embeddings ``float32 [N, 384]`` of ``texts``, cached by content and encoder."""
    from dparena.assets import AssetStore
    from dparena.embeddings.text import DEFAULT_MODEL, embed_texts
    from dparena.io import cached_arrays

    items = [str(t) for t in texts]
    if not items:
        raise DparenaError("text metrics need at least one text")
    if cache_dir is None:
        return embed_texts(items)
    encoder = AssetStore().asset(DEFAULT_MODEL).sha256[:12]
    path = Path(cache_dir) / "text-embeddings" / f"{prefix}-{texts_key(items)}-{encoder}.npy"
    return cached_arrays(path, lambda: embed_texts(items),
                         check=lambda feats: feats.shape[0] == len(items))


def eval_text_features(real: EvalData, ctx: MetricContext) -> np.ndarray:
    return text_features(real.data, ctx.eval_dir,
                         prefix=f"eval-{ctx.dataset or 'data'}-v{ctx.dataset_version or '0'}")


def synthetic_text_features(synthetic: Synthetic, ctx: MetricContext) -> np.ndarray:
    return text_features(synthetic.data, ctx.cache_dir, prefix="syn")


class EmbeddingFID(Metric):
    """Fréchet distance between sentence embeddings of synthetic and real eval texts (lower is
    better).

    The FID formula of Heusel et al. (NeurIPS 2017, eq. 6) on all-MiniLM-L6-v2 embeddings, as
    Aug-PE reports it (Xie et al., ICML 2024, Sec. 5.1). Biased upwards at small N: the number of
    synthetic texts is reported beside it as ``embedding-fid/n``.
    """

    name = "embedding-fid"
    modality = Modality.TEXT
    description = "Frechet distance of sentence embeddings (all-MiniLM-L6-v2) to the eval texts"
    extra = "text"
    direction = Direction.MINIMIZE

    def compute(self, synthetic: Synthetic, real: EvalData, ctx: MetricContext) -> list[MetricValue]:
        from dparena.metrics.fid import frechet_distance

        syn = synthetic_text_features(synthetic, ctx).astype(np.float64)
        ref = eval_text_features(real, ctx).astype(np.float64)
        if len(syn) < 2:
            raise DparenaError("embedding-fid needs at least 2 synthetic texts")
        score = frechet_distance(syn.mean(0), np.cov(syn, rowvar=False),
                                 ref.mean(0), np.cov(ref, rowvar=False))
        return [self.value(self.name, max(score, 0.0)),
                self.value(f"{self.name}/n", len(syn))]


class Mauve(Metric):
    """MAUVE between synthetic and real eval texts (higher is better, in (0, 1]).

    Pillutla et al., "MAUVE: Measuring the Gap Between Neural Text and Human Text using Divergence
    Frontiers" (NeurIPS 2021), computed by the authors' ``mauve-text`` package (k-means
    quantisation of the joint embeddings, area under the divergence frontier, scaling factor 5).
    The features are the all-MiniLM-L6-v2 sentence embeddings shared with ``embedding-fid``: the
    package's default featurizer (GPT-2 large) is not obtainable offline, so values are comparable
    only with MAUVE computed on the same embeddings. Deterministic under ``ctx.seed``.
    """

    name = "mauve"
    modality = Modality.TEXT
    description = "MAUVE (divergence frontier of k-means-quantised sentence embeddings) vs eval texts"
    extra = "text"

    def __init__(self, num_buckets: int | str = "auto", scaling_factor: float = 5.0):
        self.num_buckets = num_buckets
        self.scaling_factor = scaling_factor

    def compute(self, synthetic: Synthetic, real: EvalData, ctx: MetricContext) -> list[MetricValue]:
        from dparena.errors import require

        mauve = require("mauve", "text")
        syn = synthetic_text_features(synthetic, ctx)
        ref = eval_text_features(real, ctx)
        if len(syn) < 2:
            raise DparenaError("mauve needs at least 2 synthetic texts")
        out = mauve.compute_mauve(p_features=ref, q_features=syn, num_buckets=self.num_buckets,
                                  mauve_scaling_factor=self.scaling_factor, seed=ctx.seed,
                                  verbose=False)
        return [self.value(self.name, float(out.mauve))]
