"""Embeddings the PE engine votes in: raw pixels, or the FID Inception network's pool features.

An embedder maps the payload of a population (``uint8`` images ``[n, H, W, C]`` here; lists of
strings for text embedders) to ``float32 [n, d]``. The engine embeds each population once per
iteration (and the private data once per run).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np

from dparena.errors import ConfigError


class Embedder(ABC):
    """Maps samples to vectors for nearest-neighbour voting."""

    name: str = ""

    @abstractmethod
    def embed(self, data: Any) -> np.ndarray:
        """``float32 [n, d]`` embeddings of ``n`` samples."""


class PixelEmbedder(Embedder):
    """The image itself, flattened and scaled to [0, 1]: fast and adequate for 28×28 digits."""

    name = "pixels"

    def embed(self, data: Any) -> np.ndarray:
        arr = np.asarray(data)
        return (arr.reshape(len(arr), -1).astype(np.float32) / np.float32(255.0))


class InceptionEmbedder(Embedder):
    """Pool features (2048-d) of the TF-Inception-v3 FID network, as PE uses for CIFAR-10.

    Lin et al., ICLR 2024, Sec. 4 (Inception embeddings for voting). The network is
    :func:`dparena.embeddings.inception.inception_features` (the one FID uses), imported when first
    needed.
    """

    name = "inception"

    def __init__(self, batch_size: int = 50):
        self.batch_size = batch_size

    def embed(self, data: Any) -> np.ndarray:
        from dparena.embeddings.inception import inception_features

        images = np.asarray(data)  # grey images are resized once and copied to RGB there
        return np.asarray(inception_features(images, batch_size=self.batch_size),
                          dtype=np.float32)


class SentenceEmbedder(Embedder):
    """Sentence embeddings of texts (all-MiniLM-L6-v2 by default, unit norm), as Aug-PE votes in.

    Xie et al., ICML 2024, Sec. 3 (sentence-transformer embeddings for the nearest-neighbour votes).
    """

    name = "sentence"

    def __init__(self, batch_size: int = 64):
        self.batch_size = batch_size

    def embed(self, data: Any) -> np.ndarray:
        from dparena.embeddings.text import embed_texts

        return embed_texts(list(data), batch_size=self.batch_size)


EMBEDDERS: dict[str, type[Embedder]] = {"pixels": PixelEmbedder, "inception": InceptionEmbedder,
                                        "sentence": SentenceEmbedder}


def make_embedder(name: str | Embedder) -> Embedder:
    """An embedder by name (``pixels``, ``inception``, ``sentence``) or an instance passed through."""
    if isinstance(name, Embedder):
        return name
    if name not in EMBEDDERS:
        raise ConfigError(f"unknown embedding {name!r}; use one of {sorted(EMBEDDERS)}")
    return EMBEDDERS[name]()
