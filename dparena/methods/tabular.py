"""Discretisation of tables on public bins, shared by tabular methods.

Numeric columns are cut into equal-width bins over the public bounds (integer columns into
integer-aligned bins over [lower, upper + 1) so each integer falls in exactly one bin); categorical columns use the public
categories. Decoding draws a value uniformly inside its bin (not the midpoint).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from dparena.datasets.schema import Categorical, Numeric, TableSchema


@dataclass(frozen=True)
class Domain:
    """The public discrete domain of a table: one size per column."""

    schema: TableSchema
    bins: int = 32

    def _edges(self, col: Numeric) -> np.ndarray:
        if col.integer:  # integer edges, so every bin holds whole integers [edge_k, edge_k+1)
            n = int(min(self.bins, col.upper - col.lower + 1))
            return np.unique(np.floor(np.linspace(col.lower, col.upper + 1, n + 1)))
        return np.linspace(col.lower, col.upper, self.bins + 1)

    def size(self, name: str) -> int:
        col = self.schema.column(name)
        if isinstance(col, Categorical):
            return len(col.categories)
        return len(self._edges(col)) - 1

    @property
    def sizes(self) -> list[int]:
        return [self.size(n) for n in self.schema.names]

    def encode_column(self, col, values) -> np.ndarray:
        if isinstance(col, Categorical):
            codes = col.codes(list(values))
            # a value outside the public list (not expected in a conforming table) maps to the
            # first category: a DP method must not branch on what the private rows contain
            return np.where(codes >= len(col.categories), 0, codes)
        edges = self._edges(col)
        x = np.clip(np.asarray(values, dtype=float), edges[0], np.nextafter(edges[-1], -np.inf))
        return np.clip(np.searchsorted(edges, x, side="right") - 1, 0, len(edges) - 2)

    def encode(self, frame: pd.DataFrame) -> np.ndarray:
        """Integer codes [n, d] of a table conforming to the schema."""
        return np.stack(
            [self.encode_column(c, frame[c.name].to_numpy()) for c in self.schema.columns], axis=1
        ).astype(np.int64)

    def decode_column(self, col, codes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if isinstance(col, Categorical):
            return np.asarray(col.categories, dtype=object)[codes]
        edges = self._edges(col)
        lo, hi = edges[codes], edges[codes + 1]
        if col.integer:
            return lo + np.floor((hi - lo) * rng.random(len(codes)))
        return lo + (hi - lo) * rng.random(len(codes))

    def decode(self, codes: np.ndarray, rng: np.random.Generator) -> pd.DataFrame:
        return pd.DataFrame(
            {c.name: self.decode_column(c, codes[:, j], rng) for j, c in enumerate(self.schema.columns)}
        )


def sample_from_counts(counts: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Draw n indices proportional to non-negative ``counts`` (uniform if they are all zero)."""
    p = np.clip(np.asarray(counts, dtype=float), 0, None)
    total = p.sum()
    p = np.full(len(p), 1.0 / len(p)) if total <= 0 else p / total
    return rng.choice(len(p), size=n, p=p)
