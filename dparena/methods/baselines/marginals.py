"""Independent DP marginals: noisy one-way histograms over public bins, sampled column by column.

All d histograms are released at once by the Gaussian mechanism. Adding or removing one row
changes one count in each histogram, so the L2 sensitivity of the whole release is √d and the
release is (√d/σ)-GDP; σ is calibrated so that this is exactly (ε, δ)-DP (analytic Gaussian
mechanism), and the ledger books that single entry.

With ``given="<column>"`` each other column is histogrammed jointly with that column (usually the
target) and sampled conditionally on it: still d histograms, one count per row in each, so the
same sensitivity and the same ε — a naive-Bayes-shaped generator that keeps the label signal.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from dparena.errors import ConfigError
from dparena.methods.base import Method, Task
from dparena.methods.tabular import Domain, sample_from_counts
from dparena.privacy import Ledger, gaussian_sigma
from dparena.types import Modality, Synthetic


class IndependentMarginals(Method):
    """One Gaussian release of all d one-way histograms on public bins, sampled column by column.

    L2 sensitivity √d under add/remove, σ calibrated exactly to (ε, δ) (analytic Gaussian
    mechanism, one ledger entry). ``given = COLUMN`` histograms every other column jointly with
    that one (e.g. the target) and samples conditionally on it, at the same sensitivity. ``bins``:
    public bins per numeric column.
    """

    modality = Modality.TABULAR
    description = "Gaussian-noised one-way histograms on public bins, columns sampled independently"
    extra = ""

    def __init__(self, bins: int = 32, given: str | None = None):
        if not isinstance(bins, int) or bins < 1:
            raise ConfigError(f"independent-marginals: bins must be a positive integer (got {bins!r})")
        self.bins = bins
        self.given = given

    def generate(self, task: Task, ledger: Ledger) -> Synthetic:
        schema = task.schema
        if self.given is not None and self.given not in schema.names:
            raise ConfigError(f"independent-marginals: given={self.given!r} is not a column")
        domain = Domain(schema, self.bins)
        d = len(schema.names)
        sensitivity = math.sqrt(d)
        sigma = gaussian_sigma(task.budget.epsilon, task.budget.delta, sensitivity=sensitivity)
        codes = domain.encode(task.private)  # the only read of private data, released with noise
        ledger.gaussian(
            f"{d} histograms ({'conditional on ' + self.given if self.given else 'one-way'}) "
            f"on public bins",
            sigma=sigma, sensitivity=sensitivity, histograms=d, bins=self.bins,
        )
        rng, n = task.rng, task.n_samples
        sizes = domain.sizes
        out = np.zeros((n, d), dtype=np.int64)
        if self.given is None:
            for j in range(d):
                noisy = (np.bincount(codes[:, j], minlength=sizes[j])
                         + self._noise(task.noise, sigma, sizes[j]))
                out[:, j] = sample_from_counts(noisy, n, rng)
        else:
            g = schema.names.index(self.given)
            kg = sizes[g]
            noisy_g = np.bincount(codes[:, g], minlength=kg) + self._noise(task.noise, sigma, kg)
            out[:, g] = sample_from_counts(noisy_g, n, rng)
            for j in range(d):
                if j == g:
                    continue
                joint = np.zeros((kg, sizes[j]))
                np.add.at(joint, (codes[:, g], codes[:, j]), 1.0)
                joint += self._noise(task.noise, sigma, joint.shape)
                for value in range(kg):
                    rows = np.flatnonzero(out[:, g] == value)
                    if rows.size:
                        out[rows, j] = sample_from_counts(joint[value], rows.size, rng)
        frame: pd.DataFrame = domain.decode(out, rng)
        return Synthetic(frame, info={"sigma": sigma})

    def _noise(self, noise, sigma: float, shape) -> np.ndarray:
        """The Gaussian noise of the release from the run's noise source (a seam for the
        privacy-audit tests)."""
        return noise.normal(0.0, sigma, shape)
