"""Non-private anchors: the real private rows (upper) and samples from the public schema (lower)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from dparena.datasets.schema import Categorical
from dparena.methods.base import Method, Task
from dparena.privacy import Ledger
from dparena.types import Modality, Synthetic


class RealData(Method):
    """Returns private records (a random subset of size n_samples, or all with replacement if more).

    Works for tables (rows), images (arrays, with their labels) and texts. Not private (ε = ∞): it
    shows what a perfect generator would score.
    """

    modality = (Modality.TABULAR, Modality.IMAGE, Modality.TEXT)
    description = "Non-private upper anchor: the private records themselves (ε = ∞)"
    is_dp = False

    def generate(self, task: Task, ledger: Ledger) -> Synthetic:
        ledger.non_private("copies the private records")
        n_priv = len(task.private)
        replace = task.n_samples > n_priv
        idx = np.sort(task.rng.choice(n_priv, size=task.n_samples, replace=replace))
        labels = None if task.private_labels is None else np.asarray(task.private_labels)[idx]
        if isinstance(task.private, pd.DataFrame):
            return Synthetic(task.private.iloc[idx].reset_index(drop=True), labels=labels)
        if isinstance(task.private, np.ndarray):
            return Synthetic(task.private[idx], labels=labels)
        return Synthetic([task.private[i] for i in idx], labels=labels)


class UniformSchema(Method):
    """Samples every column independently and uniformly from the public schema (ε = 0).

    Numeric columns are uniform over [lower, upper] (integers uniform over the integer range);
    categorical columns uniform over the public categories. Reads no private data.
    """

    modality = Modality.TABULAR
    description = "Public-only lower anchor: uniform draws from the public schema (ε = 0)"
    is_dp = False

    def generate(self, task: Task, ledger: Ledger) -> Synthetic:
        rng, n = task.rng, task.n_samples
        cols = {}
        for col in task.schema.columns:
            if isinstance(col, Categorical):
                cols[col.name] = np.asarray(col.categories, dtype=object)[
                    rng.integers(0, len(col.categories), n)
                ]
            elif col.integer:
                cols[col.name] = rng.integers(int(col.lower), int(col.upper) + 1, n).astype(float)
            else:
                cols[col.name] = rng.uniform(col.lower, col.upper, n)
        return Synthetic(pd.DataFrame(cols))
