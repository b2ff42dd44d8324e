import numpy as np
import pandas as pd
import pytest

from dparena.datasets.schema import Categorical, Numeric, TableSchema
from dparena.errors import DparenaError
from dparena.metrics import metrics
from dparena.metrics.base import EvalData, MetricContext
from dparena.metrics.histogram import one_way, two_way
from dparena.metrics.ml_efficacy import encode_features
from dparena.types import Synthetic

SCHEMA = TableSchema(
    columns=(Numeric("x", 0, 10), Categorical("c", ("a", "b", "c")), Categorical("y", ("no", "yes"))),
    target="y",
)


def _values(metric, syn, real, schema=SCHEMA):
    vals = metrics.create(metric).compute(Synthetic(syn), EvalData(real, schema), MetricContext())
    return {v.name: v.value for v in vals}


def test_one_way_by_hand():
    syn = pd.DataFrame({"x": [0.0, 1.0, 9.9, 12.0], "c": ["a", "a", "b", "zzz"], "y": ["no"] * 4})
    real = pd.DataFrame({"x": [0.5, 5.0], "c": ["a", "c"], "y": ["no", "yes"]})
    res = one_way(SCHEMA, syn, real, bins=2)
    # x, 2 bins over [0, 10]: syn -> [0, 0, 1, 1(12 clipped to edge)] = (.5,.5); real (.5,.5)
    assert res["x"] == pytest.approx(1.0)
    # c: syn a=.5 b=.25 unknown=.25 ; real a=.5 c=.5 -> min sum = .5
    assert res["c"] == pytest.approx(0.5)
    # y: syn no=1 ; real no=.5 yes=.5 -> .5
    assert res["y"] == pytest.approx(0.5)
    vals = _values("histogram-intersection", syn, real)
    assert set(vals) == {"histogram-intersection", "histogram-intersection@b20",
                         "histogram-intersection@b50"}
    # with 20 bins x: syn bins {0,2,19,19}, real {1,10}: no overlap -> 0
    assert vals["histogram-intersection@b20"] == pytest.approx((0 + 0.5 + 0.5) / 3)
    assert vals["histogram-intersection"] == pytest.approx(
        (vals["histogram-intersection@b20"] + vals["histogram-intersection@b50"]) / 2)


def test_two_way_by_hand():
    syn = pd.DataFrame({"x": [1.0, 1.0, 8.0, 8.0], "c": ["a", "b", "a", "b"], "y": ["no"] * 4})
    real = pd.DataFrame({"x": [1.0, 8.0], "c": ["a", "b"], "y": ["no", "no"]})
    res = two_way(SCHEMA, syn, real, bins=2)
    # (x, c): syn uniform over 4 cells, real on 2 of them -> .25 + .25
    assert res[("x", "c")] == pytest.approx(0.5)
    assert res[("x", "y")] == pytest.approx(1.0)
    assert res[("c", "y")] == pytest.approx(1.0)


def test_identical_tables_score_one(adult_small):
    vals = _values("pair-histogram-intersection", adult_small.eval, adult_small.eval,
                   adult_small.schema)
    assert vals["pair-histogram-intersection"] == pytest.approx(1.0)


def test_categorical_intersection_equals_sdmetrics_tvcomplement(adult_small):
    sdm = pytest.importorskip("sdmetrics.single_column")
    from dparena.metrics.histogram import one_way

    rng = np.random.default_rng(0)
    syn = adult_small.private.copy()
    # perturb some categories so the score is not trivially 1
    for col in ("workclass", "race", "native-country"):
        idx = rng.choice(len(syn), size=len(syn) // 3, replace=False)
        syn.loc[idx, col] = rng.choice(adult_small.schema.column(col).categories, size=len(idx))
    ours = one_way(adult_small.schema, syn, adult_small.eval, bins=20)
    for col in adult_small.schema.columns:
        if isinstance(col, Categorical):
            theirs = sdm.TVComplement.compute(real_data=adult_small.eval[col.name],
                                              synthetic_data=syn[col.name])
            assert ours[col.name] == pytest.approx(theirs, abs=1e-8), col.name  # sdmetrics rounds


def test_encoder_uses_only_the_public_schema():
    frame = pd.DataFrame({"x": [0.0, 10.0, 5.0], "c": ["a", "c", "unknown"], "y": ["no"] * 3})
    x = encode_features(SCHEMA, frame)
    assert x.shape == (3, 1 + 3)
    np.testing.assert_allclose(x[:, 0], [0.0, 1.0, 0.5])
    np.testing.assert_array_equal(x[:, 1:], [[1, 0, 0], [0, 0, 1], [0, 0, 0]])


def test_ml_efficacy_orders_real_above_noise(adult_small):
    real = _values("ml-efficacy", adult_small.private, adult_small.eval, adult_small.schema)
    rng = np.random.default_rng(0)
    shuffled = adult_small.private.copy()
    shuffled["income"] = rng.permutation(shuffled["income"].to_numpy())
    noise = _values("ml-efficacy", shuffled, adult_small.eval, adult_small.schema)
    assert real["ml-efficacy/auc"] > 0.85 > 0.6 > noise["ml-efficacy/auc"]
    assert real["ml-efficacy/xgboost/f1"] > 0.55
    for model in ("xgboost", "logreg"):
        for key in ("f1", "auc", "accuracy"):
            assert 0.0 <= real[f"ml-efficacy/{model}/{key}"] <= 1.0
    assert real["ml-efficacy/f1"] == pytest.approx(
        (real["ml-efficacy/xgboost/f1"] + real["ml-efficacy/logreg/f1"]) / 2)


def test_ml_efficacy_single_class_gives_the_constant_predictor(adult_small):
    syn = adult_small.private.copy()
    syn["income"] = "<=50K"
    vals = _values("ml-efficacy", syn, adult_small.eval, adult_small.schema)
    majority = (adult_small.eval["income"] == "<=50K").mean()
    assert vals["ml-efficacy/auc"] == 0.5
    assert vals["ml-efficacy/f1"] == 0.0  # the positive (minority) class is never predicted
    assert vals["ml-efficacy/accuracy"] == pytest.approx(majority)


def test_ml_efficacy_without_valid_targets_is_an_error(adult_small):
    syn = adult_small.private.copy()
    syn["income"] = "maybe"
    with pytest.raises(DparenaError, match="no synthetic row has a target"):
        _values("ml-efficacy", syn, adult_small.eval, adult_small.schema)
