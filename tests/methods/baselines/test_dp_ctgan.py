"""DP-CTGAN: the public transform, the booked ε, the schema of its output, seeds, learning."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dparena.datasets.schema import Categorical, Numeric, TableSchema
from dparena.errors import ConfigError
from dparena.methods import methods
from dparena.methods.base import Task
from dparena.methods.baselines.dp_ctgan import PublicTransform
from dparena.metrics import metrics
from dparena.metrics.base import EvalData, MetricContext
from dparena.privacy import Ledger
from dparena.types import Budget
from tests.paths import ROOT

DELTA = 1e-5
#: a CPU-tiny configuration (the architecture and the DP step of the real one)
TINY = dict(epochs=1, batch_size=50, embedding_dim=16, generator_dim=[32],
            discriminator_dim=[32])


@pytest.fixture(scope="module")
def adult(assets):
    from dparena.datasets import datasets

    return datasets.create("adult", n_private=400, n_eval=400).load(assets)


def _run(bundle, eps=4.0, delta=DELTA, seed=0, n=200, private=None, public_size=None, **params):
    private = bundle.private if private is None else private
    task = Task(private=private, schema=bundle.schema, budget=Budget(eps, delta), n_samples=n,
                seed=seed, public_size=len(bundle.private) if public_size is None else public_size)
    ledger = Ledger()
    syn = methods.create("dp-ctgan", **{**TINY, **params}).generate(task, ledger)
    return syn, ledger


@pytest.mark.parametrize("bad", [
    {"epochs": 0}, {"batch_size": 0}, {"batch_size": 1}, {"pac": 3, "batch_size": 50}, {"generator_dim": []},
    {"discriminator_dim": [16, 0]}, {"discriminator_lr": 0.0}, {"generator_decay": -1.0},
    {"max_grad_norm": float("nan")}, {"noise_multiplier": -1.0}, {"accountant": "moments"},
    {"cond_share": 1.0}, {"modes": 0}, {"conditional": "yes"},
])
def test_bad_parameters_are_one_config_error_each(bad):
    with pytest.raises(ConfigError, match="dp-ctgan"):
        methods.create("dp-ctgan", **bad)


@pytest.mark.parametrize("eps,delta", [(1.0, 1e-5), (4.0, 1e-6), (10.0, 1e-3)])
def test_booked_epsilon_within_target_in_one_prv_ledger(adult, eps, delta):
    syn, ledger = _run(adult, eps=eps, delta=delta, n=20)
    kinds = sorted(e.mechanism for e in ledger.entries)
    assert kinds == ["dp-sgd", "gaussian"]  # the frequency release and the discriminator
    spent, spent_delta = ledger.spent(delta)
    assert spent <= eps and spent_delta <= delta
    assert spent > 0.95 * eps  # calibrated to the budget, not far below it
    assert ledger.accountant() == "PRV"
    sgd = next(e for e in ledger.entries if e.mechanism == "dp-sgd")
    assert sgd.sample_rate == pytest.approx(50 / 400) and sgd.steps == syn.info["steps"] == 8
    hist = next(e for e in ledger.entries if e.mechanism == "gaussian")
    n_cat = sum(isinstance(c, Categorical) for c in adult.schema.columns)
    assert hist.params["sensitivity"] == pytest.approx(np.sqrt(n_cat))


def test_rdp_accountant_and_no_conditional_vector(adult):
    _, ledger = _run(adult, eps=2.0, n=20, accountant="rdp", conditional=False)
    assert [e.mechanism for e in ledger.entries] == ["dp-sgd"]  # no frequency release
    assert ledger.accountant() == "RDP" and ledger.spent(DELTA)[0] <= 2.0


def test_a_fixed_noise_multiplier_is_booked_or_refused_before_reading_data(adult):
    syn, ledger = _run(adult, eps=10.0, n=20, noise_multiplier=5.0, conditional=False)
    assert ledger.entries[0].noise_multiplier == 5.0 and ledger.spent(DELTA)[0] < 1.0
    with pytest.raises(ConfigError, match="noise_multiplier = 0.3 .* spends"):
        _run(adult, eps=1.0, n=20, noise_multiplier=0.3, epochs=20, private=object())


def test_noise_depends_on_the_public_size_not_the_private_rows(adult):
    _, full = _run(adult, eps=1.0, n=10, public_size=400)
    _, minus = _run(adult, eps=1.0, n=10, private=adult.private.iloc[1:], public_size=400)
    for a, b in zip(full.entries, minus.entries, strict=True):
        assert (a.noise_multiplier, a.sample_rate, a.steps, a.mu) == \
               (b.noise_multiplier, b.sample_rate, b.steps, b.mu)


@pytest.mark.parametrize("params", [{}, {"modes": 4, "pac": 2}])
def test_output_respects_the_public_schema(adult, params):
    syn, ledger = _run(adult, n=300, **params)
    frame = syn.data
    assert list(frame.columns) == adult.schema.names and len(frame) == 300
    adult.schema.conform(frame, "synthetic")  # bounds, categories, whole numbers
    for col in adult.schema.columns:
        if isinstance(col, Numeric):
            assert frame[col.name].between(col.lower, col.upper).all()
        else:
            assert set(frame[col.name]) <= set(col.categories)
    assert ledger.spent(DELTA)[0] <= 4.0


def test_transform_round_trips_on_public_modes():
    schema = TableSchema((Numeric("x", 0.0, 10.0), Numeric("k", 1, 16, integer=True),
                          Categorical("c", ("a", "b", "c"))))
    frame = pd.DataFrame({"x": [0.0, 2.5, 9.99, 10.0], "k": [1.0, 7.0, 16.0, 3.0],
                          "c": ["c", "a", "b", "a"]})
    for modes in (1, 5):
        t = PublicTransform(schema, modes)
        assert t.width == (1 + (modes if modes > 1 else 0)) * 2 + 3 and t.cond_width == 3
        back = t.decode(t.encode(frame))
        np.testing.assert_allclose(back["x"], frame["x"], atol=1e-5)
        np.testing.assert_array_equal(back["k"], frame["k"])
        assert list(back["c"]) == list(frame["c"])


def test_same_seed_same_rows_other_seed_other_rows(adult):
    a, _ = _run(adult, seed=3, n=50, pac=2)
    b, _ = _run(adult, seed=3, n=50, pac=2)
    c, _ = _run(adult, seed=4, n=50, pac=2)
    pd.testing.assert_frame_equal(a.data, b.data)
    def public(info):
        return {k: v for k, v in info.items() if not k.endswith("_s")}  # not wall times

    assert public(a.info) == public(b.info)
    assert not a.data.equals(c.data)


def test_secure_noise_takes_the_dp_sgd_noise_from_os_entropy(adult, monkeypatch):
    """With secure_noise every noise draw of the discriminator's optimiser goes through the
    OS-entropy sampler (one per parameter tensor per step), none through a seeded generator."""
    import dparena.methods.baselines.dp_ctgan as mod

    calls = []
    real = mod.secure_torch_normal

    def counting(std, reference, generator=None, secure_mode=False):
        calls.append(float(std))
        return real(std, reference, generator, secure_mode)

    monkeypatch.setattr(mod, "secure_torch_normal", counting)
    task = Task(private=adult.private, schema=adult.schema, budget=Budget(2.0, DELTA),
                n_samples=20, seed=0, public_size=400, secure_noise=True)
    ledger = Ledger()
    syn = methods.create("dp-ctgan", **TINY).generate(task, ledger)
    params = 2 * (len(TINY["discriminator_dim"]) + 1)  # weight and bias of each Linear
    assert len(calls) == syn.info["steps"] * params
    sigma = ledger.entries[-1].noise_multiplier
    assert calls == pytest.approx([sigma * 1.0] * len(calls))  # σ·C with C = 1
    from opacus.optimizers import optimizer_fast_gradient_clipping as fgc

    assert fgc._generate_noise is not counting  # restored


def _dependent_table(n: int, rng: np.random.Generator) -> pd.DataFrame:
    """80% group a (value 70-90, flag yes), 20% group b (value 5-25, flag no)."""
    a = rng.random(n) < 0.8
    return pd.DataFrame({"group": np.where(a, "a", "b"),
                         "value": np.where(a, rng.uniform(70, 90, n), rng.uniform(5, 25, n)),
                         "flag": np.where(a, "yes", "no")})


DEP_SCHEMA = TableSchema((Categorical("group", ("a", "b")), Numeric("value", 0.0, 100.0),
                          Categorical("flag", ("yes", "no"))))


def test_learns_a_strong_dependency_better_than_uniform_at_large_epsilon():
    rng = np.random.default_rng(0)
    private, real = _dependent_table(2000, rng), _dependent_table(2000, rng)
    task = Task(private=private, schema=DEP_SCHEMA, budget=Budget(10.0, DELTA), n_samples=2000,
                seed=0, public_size=2000)
    # a fixed σ = 1 (its ε, well under 10, is checked against the budget) skips calibration
    ledger = Ledger()
    syn = methods.create("dp-ctgan", epochs=6, batch_size=100, embedding_dim=32,
                         generator_dim=[64, 64], discriminator_dim=[64, 64], noise_multiplier=1.0,
                         generator_lr=2e-3, discriminator_lr=2e-3).generate(task, ledger)
    assert ledger.spent(DELTA)[0] <= 10.0
    uni = methods.create("uniform").generate(
        Task(private=private, schema=DEP_SCHEMA, budget=Budget(1.0, DELTA), n_samples=2000,
             seed=0), Ledger())
    ev = EvalData(real, DEP_SCHEMA)

    def score(name, s):
        return {v.name: v.value for v in metrics.create(name).compute(s, ev, MetricContext(seed=0))}

    one, pair = "histogram-intersection", "pair-histogram-intersection"
    assert score(one, syn)[one] > score(one, uni)[one] + 0.2
    assert score(pair, syn)[pair] > score(pair, uni)[pair] + 0.2
    # the dependency itself: group a comes with flag yes far more often than independence gives
    both = ((syn.data["group"] == "a") & (syn.data["flag"] == "yes")).mean()
    assert both > 0.6


def test_runs_end_to_end_through_the_runner(tmp_path):
    from dparena.harness.runner import Runner
    from dparena.harness.store import Store
    from dparena.harness.suite import parse_suite

    raw = {"name": "c", "seeds": [0], "epsilons": [2.0], "delta": 1e-5,
           "section": [{"dataset": "adult", "dataset_params": {"n_private": 200, "n_eval": 200},
                        "n_samples": 100, "metrics": ["histogram-intersection"],
                        "methods": [{"name": "dp-ctgan", "params": TINY}]}]}
    store = Store(tmp_path / "runs.sqlite")
    summary = Runner(store).run(parse_suite(raw).specs)
    assert summary.ok == 1
    [rec] = Store(tmp_path / "runs.sqlite", mode="r").runs()
    assert rec.status == "ok" and rec.accountant == "PRV"
    assert rec.spent_epsilon <= 2.0
    assert "histogram-intersection" in rec.metrics


def test_paper_suite_entries_book_what_their_comment_says():
    """paper-dp2stage.toml: the reference's σ = 5 for one epoch spends ε ≈ 0.16 of 1 (RDP, with
    the frequency release of Adult's nine categorical columns); the calibrated entry ≈ σ 1.85."""
    import tomllib

    from dparena.privacy.accountants import sgm_epsilon

    suite = tomllib.loads((ROOT / "benchmarks/suites/paper-dp2stage.toml")
                          .read_text())
    entries = {m.get("label", m["name"]): m["params"] for s in suite["section"]
               for m in s["methods"] if m["name"] == "dp-ctgan"}
    assert set(entries) == {"dp-ctgan", "dp-ctgan|calibrated"}
    task = Task(private=None, schema=None, budget=Budget(1.0, 1e-5), n_samples=1, seed=0,
                public_size=30932)
    fixed = methods.create("dp-ctgan", **entries["dp-ctgan"])
    plan, sigma_h, sens_h = fixed._plan(task, 9)
    assert (plan.noise_multiplier, plan.steps, plan.accountant) == (5.0, 61, "rdp")
    spent = sgm_epsilon([(5.0, plan.sample_rate, 61), (sigma_h / sens_h, 1.0, 1)], 1e-5, "rdp")
    assert 0.14 < spent < 0.18
    plan, _, _ = methods.create("dp-ctgan", **entries["dp-ctgan|calibrated"])._plan(task, 9)
    assert plan.steps == 610 and 1.8 < plan.noise_multiplier < 1.9
