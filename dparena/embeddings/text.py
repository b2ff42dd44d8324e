"""Sentence embeddings of texts with sentence-transformers (default: all-MiniLM-L6-v2).

all-MiniLM-L6-v2 (Reimers & Gurevych, EMNLP 2019, Sentence-BERT; the model card of
sentence-transformers/all-MiniLM-L6-v2) maps a text to the mean of its token embeddings, L2
normalised: 384 dimensions, inputs cut at 256 word pieces. Aug-PE votes and computes its
embedding FID with sentence-transformers models of this family. The default model is the
``all-minilm-l6-v2`` asset (a folder verified file by file on every open); any local
sentence-transformers directory or cached hub id can be given instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from dparena.assets import AssetStore
from dparena.errors import ConfigError, require

DEFAULT_MODEL = "all-minilm-l6-v2"


def resolve_model(model: str = DEFAULT_MODEL, store: AssetStore | None = None) -> str:
    """A local path for ``model``: an asset name is fetched and verified, anything else is kept."""
    store = store or AssetStore()
    if model in store.assets:
        return str(store.path(model))
    return model


@lru_cache(maxsize=4)
def _encoder(path: str, device: str):
    st = require("sentence_transformers", "text")
    from pathlib import Path

    return st.SentenceTransformer(path, device=device, local_files_only=Path(path).exists())


def load_text_encoder(model: str = DEFAULT_MODEL, store: AssetStore | None = None,
                      device: str = "cpu"):
    """The ``SentenceTransformer`` for ``model`` (loaded once per process and path)."""
    return _encoder(resolve_model(model, store), device)


def embed_texts(texts: Sequence[str], store: AssetStore | None = None, batch_size: int = 64,
                model: str = DEFAULT_MODEL, device: str = "cpu") -> np.ndarray:
    """Embeddings ``float32 [N, d]`` of ``texts`` (d = 384 for the default model), normalised as
    the model's own pipeline does (unit L2 norm for all-MiniLM-L6-v2)."""
    if isinstance(texts, str):
        raise ConfigError("embed_texts takes a list of texts, not one string")
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1 (got {batch_size})")
    encoder = load_text_encoder(model, store, device)
    if len(texts) == 0:
        dim = getattr(encoder, "get_embedding_dimension", None) or \
            encoder.get_sentence_embedding_dimension
        return np.zeros((0, dim()), dtype=np.float32)
    out = encoder.encode(list(texts), batch_size=batch_size, convert_to_numpy=True,
                         show_progress_bar=False)
    return np.asarray(out, dtype=np.float32)
