"""Distance to closest record (DCR): do synthetic rows sit closer to the training rows than to
unseen real rows?

Definition as in sdmetrics' ``DCROverfittingProtection`` (SDMetrics 0.32,
``single_table/privacy/dcr_overfitting_protection.py`` and ``dcr_utils.calculate_dcr``): the
distance between two rows is the mean over columns of a per-column distance — for a numeric
column |a − b| / range, capped at 1, where range is max − min of the reference table being
searched (0/1 for "differs at all" when that range is 0); for a categorical column 0 if equal
and 1 otherwise. A synthetic row's DCR to a table is its distance to the nearest row there.
With p = the share of synthetic rows strictly closer to the training (private) table than to the
holdout (our eval split), the score is min(2(1 − p), 1): 1 = no more affinity to the training
rows than to unseen rows (safe), 0 = every row is closer to a training row (copied data).

This metric READS THE PRIVATE SPLIT (``needs_private = True``): it is a privacy-risk
measurement, computed by the harness after the release, never part of a method. It uses our own
batched nearest-neighbour code (categorical mismatches by one-hot matrix products, numeric
columns by broadcasting), because sdmetrics' pandas cross-join takes minutes at 10,000 × 10,000;
``tests/metrics/test_quality_dcr.py`` checks it equals sdmetrics on small tables.
"""

from __future__ import annotations

import numpy as np

from dparena.datasets.schema import Categorical, TableSchema
from dparena.errors import ConfigError
from dparena.metrics.base import EvalData, Metric, MetricContext
from dparena.types import Direction, MetricValue, Modality, Synthetic


def _encode(schema: TableSchema, frame, reference):
    """Numeric matrix [n, p] scaled by the reference's range, and a one-hot matrix [n, q]."""
    nums, ranges, onehots = [], [], []
    for col in schema.columns:
        if isinstance(col, Categorical):
            codes = col.codes(list(frame[col.name].to_numpy()))
            oh = np.zeros((len(codes), len(col.categories) + 1), dtype=np.float32)
            oh[np.arange(len(codes)), codes] = 1.0
            onehots.append(oh)
        else:
            ref = np.asarray(reference[col.name], dtype=np.float64)
            ranges.append(float(ref.max() - ref.min()) if len(ref) else 0.0)
            nums.append(np.asarray(frame[col.name], dtype=np.float64))
    num = np.stack(nums, axis=1) if nums else np.zeros((len(frame), 0))
    cat = np.concatenate(onehots, axis=1) if onehots else np.zeros((len(frame), 0), np.float32)
    return num, np.asarray(ranges), cat


def closest_distances(schema: TableSchema, rows, reference, batch: int = 512) -> np.ndarray:
    """DCR of each row of ``rows`` to ``reference`` (sdmetrics' calculate_dcr distance)."""
    if len(reference) == 0:
        raise ConfigError("dcr: the reference table is empty")
    x_num, ranges, x_cat = _encode(schema, rows, reference)
    r_num, _, r_cat = _encode(schema, reference, reference)
    n_cat = sum(isinstance(c, Categorical) for c in schema.columns)
    d = len(schema.columns)
    zero = ranges == 0
    safe = np.where(zero, 1.0, ranges)
    out = np.empty(len(rows))
    for start in range(0, len(rows), batch):
        sl = slice(start, start + batch)
        # categorical mismatches = n_cat − matches; matches = one-hot dot products
        total = n_cat - x_cat[sl] @ r_cat.T
        total = total.astype(np.float64)
        for j in range(x_num.shape[1]):
            diff = np.abs(x_num[sl, j][:, None] - r_num[None, :, j])
            total += (diff > 0) if zero[j] else np.minimum(diff / safe[j], 1.0)
        out[sl] = total.min(axis=1) / d
    return out


class DCR(Metric):
    """DCR overfitting protection (sdmetrics ``DCROverfittingProtection``); reads the private split.

    Values: ``dcr`` (the score, 1 = safe), ``dcr/closer-to-training`` (the share p),
    ``dcr/median-to-training`` and ``dcr/median-to-holdout`` (median DCRs).
    ``max_rows`` scores a random subset of that many synthetic rows (seeded by the run's seed);
    each row's DCR is searched over the FULL training and holdout tables, so this estimates the
    same quantity as sdmetrics with ``num_rows_subsample=None`` (subsampling the training table
    too, as sdmetrics' option does, would hide copied rows). None scores every synthetic row.
    """

    modality = Modality.TABULAR
    description = "Distance to closest record: share of synthetic rows closer to training than holdout"
    extra = ""
    needs_private = True

    def __init__(self, max_rows: int | None = 5000, batch: int = 512):
        if max_rows is not None and (not isinstance(max_rows, int) or max_rows < 1):
            raise ConfigError(f"dcr: max_rows must be a positive integer or null (got {max_rows!r})")
        self.max_rows = max_rows
        self.batch = batch

    def compute(self, synthetic: Synthetic, real: EvalData, ctx: MetricContext) -> list[MetricValue]:
        if real.private is None:
            raise ConfigError("dcr compares against the private (training) split, which this "
                              "caller did not pass; run it from a suite or `dparena score`")
        rng = np.random.default_rng([ctx.seed, 0xDC2])
        syn, train, hold = self._sub(synthetic.data, rng), real.private, real.data
        to_train = closest_distances(real.schema, syn, train, self.batch)
        to_hold = closest_distances(real.schema, syn, hold, self.batch)
        p = float(np.mean(to_train < to_hold))
        return [
            self.value(self.name, min(2.0 * (1.0 - p), 1.0)),
            MetricValue(f"{self.name}/closer-to-training", p, Direction.MINIMIZE,
                        self.version),
            self.value(f"{self.name}/median-to-training", float(np.median(to_train))),
            self.value(f"{self.name}/median-to-holdout", float(np.median(to_hold))),
        ]

    def _sub(self, frame, rng):
        if self.max_rows is None or len(frame) <= self.max_rows:
            return frame.reset_index(drop=True)
        idx = np.sort(rng.choice(len(frame), self.max_rows, replace=False))
        return frame.iloc[idx].reset_index(drop=True)

