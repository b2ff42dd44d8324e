"""Normalized histogram intersection of synthetic vs real eval tables (1-way and 2-way).

For histograms p and q normalised to sum 1, the intersection is Σ_b min(p_b, q_b) ∈ [0, 1]
(= 1 − total-variation distance; for a categorical column it equals sdmetrics' TVComplement).
Numeric columns use B equal-width bins over the public [lower, upper]; values outside go to the
edge bins. Categorical columns use one bin per public category plus one for unknown values.
As in DP-2Stage, B = 20 and B = 50 are reported and the headline is their mean.

``binning = "dp2stage"`` (1-way only) computes the DP-2Stage reference's own variant
(tejuafonja/DP-2Stage ``metrics/marginal.py:histogram_intersection`` with
``fit_data = pd.concat([realdata, fakedata])`` as ``metrics/run.py`` calls it, binning in
``metrics/utils/util.py``): each numeric column min-max scaled over eval ∪ synthetic
(``MinMaxScaler``) and cut at ``np.linspace(0, 1, B)``, i.e. B − 1 bins whose range depends on the
table being scored; each categorical column one bin per string value seen in eval ∪ synthetic.
The public binning stays the default: its bins are the same for every table scored against an
eval split, so one extreme synthetic value cannot coarsen a column's bins (docs/protocols.md
gives the measured differences).
"""

from __future__ import annotations

from itertools import combinations

import numpy as np

from dparena.datasets.schema import Categorical, Numeric, TableSchema
from dparena.errors import ConfigError
from dparena.metrics.base import EvalData, Metric, MetricContext
from dparena.types import MetricValue, Modality, Synthetic


def intersection(p_counts: np.ndarray, q_counts: np.ndarray) -> float:
    """Σ min(p, q) of two count vectors after normalising each to sum 1 (0 if either is empty)."""
    p_total, q_total = p_counts.sum(), q_counts.sum()
    if p_total <= 0 or q_total <= 0:
        return 0.0
    return float(np.minimum(p_counts / p_total, q_counts / q_total).sum())


def column_codes(col, values, bins: int) -> tuple[np.ndarray, int]:
    """Bin index of each value and the number of bins for one column."""
    if isinstance(col, Numeric):
        return col.bin_index(np.asarray(values, dtype=float), bins), bins
    assert isinstance(col, Categorical)
    return col.codes(values), len(col.categories) + 1


def dp2stage_counts(col, syn_values, real_values, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """The reference's histograms of one column (counts; synthetic, real), binned over eval ∪
    synthetic as ``histogram_intersection(..., fit_data=pd.concat([realdata, fakedata]))``."""
    if isinstance(col, Categorical):  # column_transformer(kind="label"): LabelEncoder on the union
        classes, codes = np.unique(np.concatenate([np.asarray(real_values).astype(str),
                                                   np.asarray(syn_values).astype(str)]),
                                   return_inverse=True)
        k, n_real = len(classes), len(real_values)
        return np.bincount(codes[n_real:], minlength=k), np.bincount(codes[:n_real], minlength=k)
    syn = np.asarray(syn_values, dtype=float)
    real = np.asarray(real_values, dtype=float)
    both = np.concatenate([real, syn])
    # MinMaxScaler().fit(both), arithmetic as scikit-learn's: X * scale_ + min_, a near-zero
    # range scaled by 1 (_handle_zeros_in_scale), no clipping
    lo, hi = np.nanmin(both), np.nanmax(both)
    span = hi - lo
    scale = 1.0 / (span if span >= 10 * np.finfo(float).eps else 1.0)
    shift = 0.0 - lo * scale
    edges = np.linspace(0, 1, bins)  # histogram_binning: B edges, B - 1 bins
    return (np.histogram(syn * scale + shift, bins=edges)[0],
            np.histogram(real * scale + shift, bins=edges)[0])


def one_way_dp2stage(schema: TableSchema, syn, real, bins: int) -> dict[str, float]:
    """Per-column intersection as the DP-2Stage reference computes it."""
    out = {}
    for col in schema.columns:
        s, r = dp2stage_counts(col, syn[col.name].to_numpy(), real[col.name].to_numpy(), bins)
        out[col.name] = intersection(s, r)
    return out


def _coded(schema: TableSchema, frame, bins: int,
           cache: dict | None = None) -> list[tuple[np.ndarray, int]]:
    """Codes of every column; categorical codes (independent of ``bins``) are kept in ``cache``."""
    out = []
    for c in schema.columns:
        if cache is not None and isinstance(c, Categorical):
            key = (id(frame), c.name)
            if key not in cache:
                cache[key] = column_codes(c, frame[c.name].to_numpy(), bins)
            out.append(cache[key])
        else:
            out.append(column_codes(c, frame[c.name].to_numpy(), bins))
    return out


def one_way(schema: TableSchema, syn, real, bins: int, cache: dict | None = None) -> dict[str, float]:
    """Per-column intersection."""
    out = {}
    for col, (cs, k), (cr, _) in zip(schema.columns, _coded(schema, syn, bins, cache),
                                      _coded(schema, real, bins, cache), strict=True):
        out[col.name] = intersection(np.bincount(cs, minlength=k), np.bincount(cr, minlength=k))
    return out


def two_way(schema: TableSchema, syn, real, bins: int,
            cache: dict | None = None) -> dict[tuple[str, str], float]:
    """Per-pair intersection of the joint histograms."""
    s, r = _coded(schema, syn, bins, cache), _coded(schema, real, bins, cache)
    names = schema.names
    out = {}
    for i, j in combinations(range(len(names)), 2):
        (si, ki), (sj, kj) = s[i], s[j]
        ri, rj = r[i][0], r[j][0]
        size = ki * kj
        out[(names[i], names[j])] = intersection(
            np.bincount(si * kj + sj, minlength=size), np.bincount(ri * kj + rj, minlength=size)
        )
    return out


class HistogramIntersection(Metric):
    """Per column Σ min(p, q) of normalised histograms over public bins, averaged over columns.

    B = 20 and 50 bins per numeric column and their mean (the headline), as DP-2Stage reports;
    one bin per public category (equal to sdmetrics' TVComplement on categorical columns).
    ``binning = "dp2stage"`` is the DP-2Stage reference's data-dependent binning (see the module
    docstring and docs/protocols.md).
    """

    modality = Modality.TABULAR
    description = "Mean over columns of the 1-way normalized histogram intersection (B=20,50)"
    _kind = "one-way"
    BINNINGS = ("public", "dp2stage")

    def __init__(self, bins: tuple[int, ...] | list[int] = (20, 50), binning: str = "public"):
        if binning not in self.BINNINGS:
            raise ConfigError(f"{self.name}: unknown binning {binning!r}; choose from "
                              f"{list(self.BINNINGS)}")
        self.bins = tuple(int(b) for b in bins)
        self.binning = binning

    def _per_bins(self, schema, syn, real, b, cache=None) -> float:
        if self.binning == "dp2stage":
            return float(np.mean(list(one_way_dp2stage(schema, syn, real, b).values())))
        return float(np.mean(list(one_way(schema, syn, real, b, cache).values())))

    def compute(self, synthetic: Synthetic, real: EvalData, ctx: MetricContext) -> list[MetricValue]:
        schema = real.schema
        cache: dict = {}  # categorical codes, shared by the B = 20 and B = 50 passes
        values = [self.value(f"{self.name}@b{b}",
                             self._per_bins(schema, synthetic.data, real.data, b, cache))
                  for b in self.bins]
        headline = self.value(self.name, np.mean([v.value for v in values]))
        return [headline, *values]


class PairHistogramIntersection(HistogramIntersection):
    """The same intersection over the joint histogram of every pair of columns (public bins)."""

    description = "Mean over column pairs of the 2-way normalized histogram intersection (B=20,50)"
    BINNINGS = ("public",)  # the reference has no 2-way histogram intersection

    def _per_bins(self, schema, syn, real, b, cache=None) -> float:
        return float(np.mean(list(two_way(schema, syn, real, b, cache).values())))
