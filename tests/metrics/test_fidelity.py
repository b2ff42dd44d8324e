"""Protocol fidelity: dparena's DP-2Stage metrics and split agree with the reference code.

The pinned values below were computed by the DP-2Stage reference code itself (tejuafonja/DP-2Stage
at commit 8234a7a: ``metrics/run.py`` with ``--metric_name histogram_intersection --bins B`` and
``--metric_name efficacy_test --model_name {xgb,logistic} --scorer {f1,auc,accuracy}``, which call
``metrics/marginal.py``, ``metrics/utility.py``, ``metrics/mlefficacy.py`` and ``metrics/utils/``)
on CSV files written from the tables that ``fidelity_tables`` builds, in a throwaway venv with the
project's pinned versions — numpy 2.4.6, pandas 2.3.3, scikit-learn 1.9.1, xgboost-cpu 3.2.0 — not
the reference's own (scikit-learn 1.5.2, pandas 1.5.3, xgboost unpinned). Two one-line patches were
needed for those versions: ``DataFrame.iteritems`` → ``items`` (pandas 2) and no ``dython`` import
(used only by metrics not computed here). Rerun with the reference's own pins (scikit-learn 1.5.2,
pandas 1.5.3, numpy 1.26.4 as 1.21.6 has no Python 3.11 wheel, xgboost-cpu 2.1.1 from the paper's
time), the histogram and logistic-regression values are identical; the XGBoost ones move by up to
0.017 (F1), so the XGBoost pins are checked only under xgboost 3.2.0. The commands are in
docs/protocols.md.

The tables are built without a random generator (cyclic shifts, a Kronecker sequence, row-index
rules), from the first rows of the offline UCI files, so they are the same on every machine.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest
import xgboost

from dparena.datasets.adult import DP2STAGE_SCHEMA, SCHEMA, dp2stage_split, read_adult_file
from dparena.datasets.schema import Categorical, Numeric
from dparena.metrics import metrics
from dparena.metrics.base import EvalData, MetricContext
from dparena.types import Synthetic

N_ROWS = 3000
PRIMES = (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47)


def fidelity_tables(private: pd.DataFrame, evaluation: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The eval table and four synthetic tables, all N_ROWS rows, built deterministically.

    * ``eval``: the first rows of adult.test; ``real``: the first rows of adult.data;
    * ``shuffled``: ``real`` with column j cyclically shifted by 1 + 397 j rows (1-way marginals
      kept, every dependence between columns, the target's included, broken);
    * ``uniform``: a uniform draw from the public schema, column j from the Kronecker sequence
      frac(i · frac(√p_j)) (p_j the j-th prime), integers over [lower, upper], categories uniform;
    * ``out-of-range``: ``real`` with numeric values outside the public bounds on some rows
      (age + 100, fnlwgt × 10, education-num 0, capital-gain 250,000, hours-per-week negated).
    """
    ev = evaluation.iloc[:N_ROWS].reset_index(drop=True)
    real = private.iloc[:N_ROWS].reset_index(drop=True)
    n = len(real)
    shuffled = pd.DataFrame({c: np.roll(real[c].to_numpy(), 1 + 397 * j)
                             for j, c in enumerate(real.columns)})
    cols = {}
    i = np.arange(1, n + 1, dtype=np.float64)
    for j, col in enumerate(SCHEMA.columns):
        alpha = np.sqrt(PRIMES[j]) % 1.0
        u = (i * alpha) % 1.0
        if isinstance(col, Categorical):
            k = len(col.categories)
            cols[col.name] = np.asarray(col.categories, dtype=object)[
                np.minimum(np.floor(u * k).astype(int), k - 1)]
        else:
            assert isinstance(col, Numeric) and col.integer
            span = col.upper - col.lower + 1
            cols[col.name] = np.minimum(col.lower + np.floor(u * span), col.upper)
    uniform = pd.DataFrame(cols)
    oor = real.copy()
    rows = np.arange(n)
    oor.loc[rows % 7 == 0, "age"] += 100
    oor.loc[rows % 5 == 0, "fnlwgt"] *= 10
    oor.loc[rows % 17 == 0, "education-num"] = 0
    oor.loc[rows % 13 == 0, "capital-gain"] = 250_000
    oor.loc[rows % 11 == 0, "hours-per-week"] *= -1
    return {"eval": ev, "real": real, "shuffled": shuffled, "uniform": uniform,
            "out-of-range": oor}


def write_csvs(tables: dict[str, pd.DataFrame], folder) -> None:
    """The tables as the reference reads them: integer columns written as integers."""
    for name, frame in tables.items():
        out = frame.copy()
        for col in SCHEMA.columns:
            if isinstance(col, Numeric):
                out[col.name] = out[col.name].astype(np.int64)
        out.to_csv(f"{folder}/{name}.csv", index=False, lineterminator="\n")


# SHA-256 of the CSV files write_csvs wrote and the reference read: the pins below belong to them
TABLE_SHA256 = {
    "eval": "02398a12397491ee8d4c371c71212f2e8198c1ce5e5d3863cfad4707836186d6",
    "real": "ac9baf347a183edabeeb0cd03eccd75384f7ca648070be3a2a3eb0e6be2b4019",
    "shuffled": "180276dd95c5236d2391834edc750bc2d21b2ea2cfdb81a264c18bcbb56e147b",
    "uniform": "80f0f1121c16bf8eaa941c78e6ce11ccd387ff83b28b8769bd29463cc125e01d",
    "out-of-range": "3af10040e5bb270fbe667954a85b2b8264248e39678902fa9395da8719231317",
}


@pytest.fixture(scope="module")
def tables(assets):
    private = read_adult_file(assets.path("adult-data"))
    evaluation = read_adult_file(assets.path("adult-test"), skip_first_line=True)
    return fidelity_tables(private, evaluation)


def _scores(metric: str, syn, ev, **params) -> dict[str, float]:
    vals = metrics.create(metric, **params).compute(Synthetic(syn), EvalData(ev, SCHEMA),
                                                    MetricContext())
    return {v.name: v.value for v in vals}


# Computed by the DP-2Stage reference code (see the module docstring): histogram_intersection
# "mean" at --bins 20 / 50, efficacy_test per --model_name (xgb, logistic) and --scorer.
REFERENCE = {
    "real": {"hist@b20": 0.981589, "hist@b50": 0.977164, "xgboost/f1": 0.661743, "xgboost/auc": 0.900012, "xgboost/accuracy": 0.847333, "logreg/f1": 0.672297, "logreg/auc": 0.898594, "logreg/accuracy": 0.806000},  # noqa: E501
    "shuffled": {"hist@b20": 0.981589, "hist@b50": 0.977164, "xgboost/f1": 0.178082, "xgboost/auc": 0.513389, "xgboost/accuracy": 0.720000, "logreg/f1": 0.360000, "logreg/auc": 0.556788, "logreg/accuracy": 0.562667},  # noqa: E501
    "uniform": {"hist@b20": 0.442356, "hist@b50": 0.433756, "xgboost/f1": 0.358696, "xgboost/auc": 0.670749, "xgboost/accuracy": 0.724667, "logreg/f1": 0.378683, "logreg/auc": 0.520447, "logreg/accuracy": 0.339333},  # noqa: E501
    "out-of-range": {"hist@b20": 0.952422, "hist@b50": 0.951200, "xgboost/f1": 0.670606, "xgboost/auc": 0.900446, "xgboost/accuracy": 0.851333, "logreg/f1": 0.637339, "logreg/auc": 0.871816, "logreg/accuracy": 0.774667},  # noqa: E501
}
# dparena's ml-efficacy before the DP-2Stage protocol (the code at b684596), now protocol
# "dparena-v1": kept bit for bit, so its stored values (metric version 1) stay comparable
DPARENA_V1 = {
    "real": {"xgboost/f1": 0.661743, "xgboost/auc": 0.900012, "xgboost/accuracy": 0.847333, "logreg/f1": 0.628099, "logreg/auc": 0.885204, "logreg/accuracy": 0.835000},  # noqa: E501
    "shuffled": {"xgboost/f1": 0.178082, "xgboost/auc": 0.513389, "xgboost/accuracy": 0.720000, "logreg/f1": 0.000000, "logreg/auc": 0.536662, "logreg/accuracy": 0.758333},  # noqa: E501
    "uniform": {"xgboost/f1": 0.358696, "xgboost/auc": 0.670749, "xgboost/accuracy": 0.724667, "logreg/f1": 0.378311, "logreg/auc": 0.521547, "logreg/accuracy": 0.335000},  # noqa: E501
    "out-of-range": {"xgboost/f1": 0.670606, "xgboost/auc": 0.900463, "xgboost/accuracy": 0.851333, "logreg/f1": 0.599847, "logreg/auc": 0.870001, "logreg/accuracy": 0.825667},  # noqa: E501
}
MODEL_KEYS = ("xgboost/f1", "xgboost/auc", "xgboost/accuracy",
              "logreg/f1", "logreg/auc", "logreg/accuracy")
TOL = 0.005  # the agreement asked of dparena; today's agreement is exact to ~1e-15
XGBOOST_PINNED = "3.2.0"  # the project's pin (constraints.txt), which the XGBoost pins assume


def test_the_tables_are_the_ones_the_reference_scored(tables, tmp_path):
    write_csvs(tables, tmp_path)
    for name, digest in TABLE_SHA256.items():
        assert hashlib.sha256((tmp_path / f"{name}.csv").read_bytes()).hexdigest() == digest, name


@pytest.mark.parametrize("table", list(REFERENCE))
def test_ml_efficacy_follows_the_dp2stage_reference(tables, table):
    got = _scores("ml-efficacy", tables[table], tables["eval"])
    ref = REFERENCE[table]
    for key in ("logreg/f1", "logreg/auc", "logreg/accuracy"):
        assert got[f"ml-efficacy/{key}"] == pytest.approx(ref[key], abs=TOL), key
    if xgboost.__version__ != XGBOOST_PINNED:
        pytest.skip(f"the XGBoost pins assume xgboost {XGBOOST_PINNED} (found "
                    f"{xgboost.__version__}; 2.1.1 differs by up to 0.017 F1 on these tables)")
    for key in ("xgboost/f1", "xgboost/auc", "xgboost/accuracy"):
        assert got[f"ml-efficacy/{key}"] == pytest.approx(ref[key], abs=TOL), key
    for key in ("f1", "auc", "accuracy"):  # the paper's efficacy_<scorer>: mean over the 2 models
        mean = (ref[f"xgboost/{key}"] + ref[f"logreg/{key}"]) / 2
        assert got[f"ml-efficacy/{key}"] == pytest.approx(mean, abs=TOL), key


@pytest.mark.parametrize("table", list(REFERENCE))
def test_histogram_intersection_dp2stage_binning_follows_the_reference(tables, table):
    got = _scores("histogram-intersection", tables[table], tables["eval"], binning="dp2stage")
    ref = REFERENCE[table]
    for b in (20, 50):
        assert got[f"histogram-intersection@b{b}"] == pytest.approx(ref[f"hist@b{b}"], abs=1e-6)
    assert got["histogram-intersection"] == pytest.approx(
        (ref["hist@b20"] + ref["hist@b50"]) / 2, abs=1e-6)  # the paper's histogram_mean


@pytest.mark.parametrize("table", list(DPARENA_V1))
def test_protocol_dparena_v1_keeps_the_old_values(tables, table):
    metric = metrics.create("ml-efficacy", protocol="dparena-v1")
    vals = metric.compute(Synthetic(tables[table]), EvalData(tables["eval"], SCHEMA),
                          MetricContext())
    got = {v.name: v.value for v in vals}
    for key in MODEL_KEYS:
        assert got[f"ml-efficacy/{key}"] == pytest.approx(DPARENA_V1[table][key], abs=1e-6), key
    assert {v.version for v in vals} == {"1"}


def test_the_dp2stage_protocol_is_the_default_and_stored_under_a_new_version(tables):
    vals = metrics.create("ml-efficacy").compute(
        Synthetic(tables["shuffled"]), EvalData(tables["eval"], SCHEMA), MetricContext())
    assert {v.version for v in vals} == {"2"}
    got = {v.name: v.value for v in vals}
    # class_weight="balanced": a label independent of the features still yields positives
    assert got["ml-efficacy/logreg/f1"] > 0.3 > DPARENA_V1["shuffled"]["logreg/f1"]


def test_public_binning_stays_the_default_and_is_close_on_these_tables(tables):
    for table, ref in REFERENCE.items():
        got = _scores("histogram-intersection", tables[table], tables["eval"])
        # measured: |public − reference| ≤ 0.0032 on these tables (docs/protocols.md)
        assert got["histogram-intersection"] == pytest.approx(
            (ref["hist@b20"] + ref["hist@b50"]) / 2, abs=TOL), table


def test_unknown_protocol_binning_or_split_is_a_one_line_config_error():
    from dparena.datasets import datasets
    from dparena.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown protocol"):
        metrics.create("ml-efficacy", protocol="sdv")
    with pytest.raises(ConfigError, match="unknown binning"):
        metrics.create("histogram-intersection", binning="quantile")
    with pytest.raises(ConfigError, match="unknown binning"):
        metrics.create("pair-histogram-intersection", binning="dp2stage")
    with pytest.raises(ConfigError, match="unknown split"):
        datasets.create("adult", split="random")


def test_dp2stage_protocol_multiclass_uses_micro_averages():
    schema = type(SCHEMA)(columns=(Numeric("x", 0, 3), Categorical("y", ("a", "b", "c"))),
                          target="y")
    x = np.tile(np.arange(4.0), 30)
    y = np.asarray(["a", "b", "c", "c"] * 30, dtype=object)
    frame = pd.DataFrame({"x": x, "y": y})
    vals = metrics.create("ml-efficacy").compute(Synthetic(frame), EvalData(frame, schema),
                                                 MetricContext())
    got = {v.name: v.value for v in vals}
    for model in ("xgboost", "logreg"):  # micro F1 = accuracy
        assert got[f"ml-efficacy/{model}/f1"] == pytest.approx(got[f"ml-efficacy/{model}/accuracy"])
    assert got["ml-efficacy/xgboost/accuracy"] == pytest.approx(1.0)


# DP-2Stage's download_dataset.py steps (its README's command) run on the same raw files, with its
# unseeded pool shuffle left out (the identity), wrote train / valid / test CSVs with these SHA-256
# (scikit-learn not involved; pandas 2.3.3, numpy 2.4.6): see docs/protocols.md.
DP2STAGE_SPLIT_SHA256 = {
    "train": "cec7887fa5eaafea8c26879e318d232f3ad0e08c00399129accf726be4a6090f",
    "valid": "30ca9521fe864b1338418e468c64bde229671153315f513c3e1c9d0704cbe462",
    "test": "11a0270975118defeced76b58c7c631a685c565b3825ec73da4e74751858c163",
}


def _reference_csv_sha256(frame: pd.DataFrame) -> str:
    out = frame.copy()
    for col in SCHEMA.columns:
        if isinstance(col, Numeric):
            out[col.name] = out[col.name].astype(np.int64)
    return hashlib.sha256(out.to_csv(index=False, lineterminator="\n").encode()).hexdigest()


def test_dp2stage_split_reproduces_the_reference_steps(assets):
    data = read_adult_file(assets.path("adult-data"))
    test = read_adult_file(assets.path("adult-test"), skip_first_line=True)
    train, valid, rest = dp2stage_split(data, test)
    assert (len(train), len(valid), len(rest)) == (30_932, 1_000, 16_858)  # 48,790 unique rows
    for name, frame in (("train", train), ("valid", valid), ("test", rest)):
        assert _reference_csv_sha256(frame) == DP2STAGE_SPLIT_SHA256[name], name
    assert train["income"].value_counts().to_dict() == {"<=50k": 23_612, ">50k": 7_320}


def test_dp2stage_split_as_a_dataset_parameter(assets):
    from dparena.datasets import datasets

    ds = datasets.create("adult", split="dp2stage")
    bundle = ds.load(assets)
    assert (len(bundle.private), len(bundle.eval)) == (30_932, 16_858)
    assert ds.private_size(assets) == 30_932  # the documented N, never counted from the rows
    assert datasets.create("adult", split="dp2stage", n_private=500).private_size(assets) == 500
    assert datasets.create("adult").private_size(assets) == 32_561
    assert bundle.schema is ds.schema is DP2STAGE_SCHEMA
    for frame in (bundle.private, bundle.eval):  # normalised values fit the normalised schema
        for col in DP2STAGE_SCHEMA.columns:
            if isinstance(col, Categorical):
                assert set(frame[col.name]) <= set(col.categories), col.name
            else:
                assert frame[col.name].between(col.lower, col.upper).all(), col.name
    assert "United-states" in DP2STAGE_SCHEMA.column("native-country").categories
    bounds = [(c.lower, c.upper) for c in SCHEMA.columns if isinstance(c, Numeric)]
    assert bounds == [(c.lower, c.upper) for c in DP2STAGE_SCHEMA.columns
                      if isinstance(c, Numeric)]
    assert type(ds).version == "2"  # the default split's output is unchanged
