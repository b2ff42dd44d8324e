"""sdmetrics-quality and dcr against hand-computed values, sdmetrics itself, and the anchors."""

import numpy as np
import pandas as pd
import pytest

from dparena.datasets.schema import Categorical, Numeric, TableSchema
from dparena.errors import ConfigError
from dparena.methods import methods
from dparena.methods.base import Task
from dparena.metrics import metrics
from dparena.metrics.base import EvalData, MetricContext
from dparena.metrics.dcr import closest_distances
from dparena.privacy import Ledger
from dparena.types import Budget, Synthetic

SCHEMA = TableSchema(columns=(Numeric("x", 0, 10), Categorical("c", ("a", "b", "c"))))


def _dcr(syn, train, hold, schema=SCHEMA, **kw):
    vals = metrics.create("dcr", **kw).compute(
        Synthetic(syn), EvalData(hold, schema, private=train), MetricContext())
    return {v.name: v.value for v in vals}


def test_closest_distance_by_hand():
    ref = pd.DataFrame({"x": [0.0, 4.0], "c": ["a", "b"]})  # range of x in the reference: 4
    rows = pd.DataFrame({"x": [1.0, 4.0, 9.0], "c": ["b", "b", "a"]})
    # row 0: to ref0 (1/4 + 1)/2 = .625, to ref1 (3/4 + 0)/2 = .375 -> .375
    # row 1: equals ref1 -> 0
    # row 2: to ref0 (min(9/4, 1) + 0)/2 = .5, to ref1 (min(5/4, 1) + 1)/2 = 1 -> .5
    assert closest_distances(SCHEMA, rows, ref, batch=2) == pytest.approx([0.375, 0.0, 0.5])


def test_dcr_score_by_hand():
    train = pd.DataFrame({"x": [0.0, 10.0], "c": ["a", "a"]})
    hold = pd.DataFrame({"x": [5.0, 6.0], "c": ["b", "b"]})
    syn = pd.DataFrame({"x": [0.0, 1.0, 5.0, 6.0], "c": ["a", "a", "b", "c"]})
    # closer to training: rows 0 and 1 (distance 0 and .05 vs > .5); rows 2, 3 closer to holdout
    vals = _dcr(syn, train, hold)
    assert vals["dcr/closer-to-training"] == pytest.approx(0.5)
    assert vals["dcr"] == pytest.approx(1.0)  # min(2 (1 − .5), 1)
    vals = _dcr(syn.iloc[:3], train, hold)
    assert vals["dcr/closer-to-training"] == pytest.approx(2 / 3)
    assert vals["dcr"] == pytest.approx(2 / 3)


@pytest.mark.slow
def test_dcr_equals_sdmetrics(adult_small):
    sdm = pytest.importorskip("sdmetrics.single_table")
    from dparena.metrics.quality import TABLE, sdmetrics_metadata

    schema = adult_small.schema
    train = adult_small.private.head(60)
    hold = adult_small.eval.head(50)
    syn = methods.create("independent-marginals").generate(
        Task(private=adult_small.private, schema=schema, budget=Budget(2.0, 1e-5),
             n_samples=40, seed=0), Ledger()).data
    meta = sdmetrics_metadata(schema)["tables"][TABLE]
    ref = sdm.DCROverfittingProtection.compute_breakdown(train, syn, hold, meta, None)
    ours = _dcr(syn, train, hold, schema=schema, max_rows=None)
    assert ours["dcr"] == pytest.approx(ref["score"], abs=1e-12)
    assert ours["dcr/closer-to-training"] == pytest.approx(
        ref["synthetic_data_percentages"]["closer_to_training"], abs=1e-12)
    from sdmetrics.single_table.privacy.dcr_utils import calculate_dcr

    assert closest_distances(schema, syn, train) == pytest.approx(
        calculate_dcr(syn, train, meta).to_numpy(), abs=1e-12)


def test_dcr_real_is_risky_and_uniform_is_safe(adult_small):
    real = EvalData(adult_small.eval, adult_small.schema, private=adult_small.private)
    scores = {}
    for name in ("real", "uniform"):
        syn = methods.create(name).generate(
            Task(private=adult_small.private, schema=adult_small.schema,
                 budget=Budget.non_private(), n_samples=2000, seed=0), Ledger())
        vals = metrics.create("dcr", max_rows=2000).compute(syn, real, MetricContext())
        scores[name] = {v.name: v.value for v in vals}
    assert scores["real"]["dcr"] < 0.05 and scores["real"]["dcr/closer-to-training"] > 0.97
    # sdmetrics normalises by each reference table's own range, so unrelated rows are not at
    # exactly 50/50 between two real tables; uniform rows still score far safer than copies
    assert scores["uniform"]["dcr"] > 0.6
    assert scores["uniform"]["dcr/median-to-training"] > 10 * scores["real"]["dcr/median-to-training"]


def test_dcr_without_private_split_is_a_config_error():
    frame = pd.DataFrame({"x": [1.0], "c": ["a"]})
    with pytest.raises(ConfigError, match="private"):
        metrics.create("dcr").compute(Synthetic(frame), EvalData(frame, SCHEMA), MetricContext())


def test_only_dcr_declares_needs_private():
    flagged = {n for n in metrics.names() if getattr(metrics.get(n), "needs_private", False)}
    assert flagged == {"dcr"}


CAT = TableSchema(columns=(Categorical("c", ("a", "b")), Categorical("d", ("u", "v"))))


def _quality(syn, real, schema):
    vals = metrics.create("sdmetrics-quality").compute(Synthetic(syn), EvalData(real, schema),
                                                       MetricContext())
    return {v.name: v.value for v in vals}


def test_quality_categorical_by_hand():
    pytest.importorskip("sdmetrics")
    real = pd.DataFrame({"c": ["a", "a", "b", "b"], "d": ["u", "u", "v", "v"]})  # Cramér's V 1
    syn = pd.DataFrame({"c": ["a", "a", "a", "b"], "d": ["u", "v", "u", "v"]})
    # TVComplement: c 1 − ½(|.5−.75| + |.5−.25|) = .75; d 1 -> shapes .875
    # ContingencySimilarity: real (a,u) ½ (b,v) ½; syn (a,u) ½ (a,v) ¼ (b,v) ¼
    #   1 − ½(0 + ¼ + ¼) = .75; overall = mean of the two properties
    vals = _quality(syn, real, CAT)
    assert vals["sdmetrics-quality/column-shapes"] == pytest.approx(0.875)
    assert vals["sdmetrics-quality/column-pair-trends"] == pytest.approx(0.75)
    assert vals["sdmetrics-quality"] == pytest.approx(0.8125)


def test_quality_numeric_by_hand():
    pytest.importorskip("sdmetrics")
    schema = TableSchema(columns=(Numeric("x", 0, 10), Numeric("y", 0, 10)))
    real = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0], "y": [1.0, 2.0, 3.0, 4.0]})   # corr +1
    syn = pd.DataFrame({"x": [1.0, 2.0, 3.0, 9.0], "y": [9.0, 3.0, 2.0, 1.0]})
    # KSComplement = 1 − sup|F_real − F_syn|: x differs only above 4 -> 1 − ¼; y: at 1 and 2.99,
    # F_real = .75 and F_syn = .5 at 3 -> sup = .25 -> .75
    corr = np.corrcoef(syn["x"], syn["y"])[0, 1]
    vals = _quality(syn, real, schema)
    assert vals["sdmetrics-quality/column-shapes"] == pytest.approx(0.75)
    # CorrelationSimilarity = 1 − |ρ_real − ρ_syn| / 2 (Pearson)
    assert vals["sdmetrics-quality/column-pair-trends"] == pytest.approx(1 - abs(1 - corr) / 2)


def test_runner_passes_the_private_split_only_to_metrics_that_declare_it(tmp_path):
    from dparena.harness.runner import Runner
    from dparena.harness.store import Store
    from dparena.harness.suite import parse_suite

    raw = {
        "name": "dcr", "seeds": [0], "epsilons": [1.0], "delta": 1e-5,
        "section": [{
            "dataset": "adult", "dataset_params": {"n_private": 600, "n_eval": 600},
            "n_samples": 400, "metrics": ["dcr", "histogram-intersection"],
            "methods": [{"name": "real"}, {"name": "uniform"}],
        }],
    }
    store = Store(tmp_path / "runs.sqlite")
    Runner(store).run(parse_suite(raw).specs)
    runs = {r.method: r for r in store.runs()}
    assert all(r.status == "ok" for r in runs.values())
    assert runs["real"].metrics["dcr"].value < 0.05
    assert runs["uniform"].metrics["dcr"].value > 0.5
