"""AIM and MST through OpenDP: budget calibration, public domain, utility, audits."""

import math
from collections import Counter

import numpy as np
import pytest

from dparena.datasets.schema import TableSchema
from dparena.errors import ConfigError
from dparena.harness.audit import audit_run
from dparena.methods import methods
from dparena.methods.base import Task
from dparena.methods.tabular import Domain
from dparena.metrics.base import EvalData, MetricContext
from dparena.metrics.histogram import HistogramIntersection
from dparena.privacy import Ledger
from dparena.privacy.accountants import zcdp_epsilon, zcdp_rho
from dparena.types import Budget, Synthetic

pytest.importorskip("mbi")

SMALL = {"bins": 4, "iters": 50}


@pytest.mark.parametrize("eps,delta", [(0.1, 1e-5), (1.0, 1e-5), (4.0, 1e-6), (10.0, 1e-9)])
def test_rho_solver_is_conservative_and_tight(eps, delta):
    rho = zcdp_rho(eps, delta)
    assert zcdp_epsilon(rho, delta) <= eps
    assert zcdp_epsilon(rho * (1 + 1e-6), delta) > eps * (1 - 1e-6)


def test_rho_solver_matches_opendp_conversion():
    dp = pytest.importorskip("opendp.prelude")
    dp.enable_features("contrib")
    rho = zcdp_rho(1.0, 1e-5)
    # a Gaussian measurement that is exactly rho-zCDP, converted by OpenDP
    space = dp.atom_domain(T=float, nan=False), dp.absolute_distance(T=float)
    meas = dp.m.make_gaussian(*space, scale=1.0 / math.sqrt(2 * rho))
    assert meas.map(1.0) == pytest.approx(rho, rel=1e-9)
    curve = dp.c.make_zCDP_to_approxDP(meas).map(1.0)
    assert curve.epsilon(1e-5) == pytest.approx(1.0, rel=1e-6)


def test_opendp_noisy_max_under_zcdp_is_the_exponential_mechanism():
    # opendp#2911: ρ = ε²/8 is only valid for the exponential mechanism (bounded range), not for
    # permute-and-flip. AIM/MST select with make_noisy_max under zCDP: check the distribution.
    dp = pytest.importorskip("opendp.prelude")
    dp.enable_features("contrib")
    space = dp.vector_domain(dp.atom_domain(T=float, nan=False)), dp.linf_distance(T=float)
    m = dp.m.make_noisy_max(*space, dp.zero_concentrated_divergence(), scale=1.0)
    assert m.map(1.0) == pytest.approx(0.5)  # (2Δ/s)²/8 with Δ = 1, s = 1
    n = 20000
    p1 = Counter(m([0.0, 1.0]) for _ in range(n))[1] / n
    exponential, permute_and_flip = math.e / (1 + math.e), 1 - 0.5 / math.e
    assert abs(p1 - exponential) < 0.015 and abs(p1 - permute_and_flip) > 0.05


def _tiny(adult_small, columns=("age", "race", "sex", "income"), n=1500):
    schema = TableSchema(tuple(adult_small.schema.column(c) for c in columns), target="income")
    return schema, adult_small.private[list(columns)].head(n).reset_index(drop=True)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mst", "aim"])
def test_booked_epsilon_within_target_and_public_domain(adult_small, name):
    schema, private = _tiny(adult_small)
    absent = "Other"
    private = private[private["race"] != absent].reset_index(drop=True)  # a public, unseen value
    params = dict(SMALL, **({"rounds": 6} if name == "aim" else {}))
    budget = Budget(1.0, 1e-5)
    ledger = Ledger()
    syn = methods.create(name, **params).generate(
        Task(private=private, schema=schema, budget=budget, n_samples=700, seed=0), ledger)
    eps, delta = ledger.spent(budget.delta)
    assert eps <= budget.epsilon and delta <= budget.delta
    assert eps > 0.99 * budget.epsilon  # the budget is used, not wasted
    (entry,) = ledger.entries
    assert entry.kind == "zcdp" and entry.rho <= zcdp_rho(1.0, 1e-5)
    # the model's domain is the public one (+ OpenDP's null cell), whatever the private rows hold
    domain = Domain(schema, params["bins"])
    assert syn.info["domain"] == {c: k + 1 for c, k in zip(schema.names, domain.sizes, strict=True)}
    assert len(syn.data) == 700 and list(syn.data.columns) == schema.names
    assert set(syn.data["race"]) <= set(schema.column("race").categories)
    assert syn.data["age"].between(17, 90).all() and (syn.data["age"] % 1 == 0).all()


def test_bad_parameters_are_config_errors():
    with pytest.raises(ConfigError):
        methods.create("aim", bins=1)
    with pytest.raises(ConfigError):
        methods.create("aim", degree=0)
    with pytest.raises(ConfigError):
        methods.create("mst", iters=0)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["aim", "mst"])
def test_beats_uniform_at_eps_10(adult_small, name):
    budget = Budget(10.0, 1e-5)
    real = EvalData(adult_small.eval, adult_small.schema)
    metric = HistogramIntersection()
    scores = {}
    chosen = {"bins": 8, "iters": 200, **({"rounds": 8} if name == "aim" else {})}
    for method, params in ((name, chosen), ("uniform", {})):
        syn = methods.create(method, **params).generate(
            Task(private=adult_small.private, schema=adult_small.schema, budget=budget,
                 n_samples=3000, seed=0), Ledger())
        scores[method] = metric.compute(syn, real, MetricContext())[0].value
    assert scores[name] > scores["uniform"] + 0.2, scores


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("name", ["aim", "mst"])
def test_audit_never_flags(adult_small, name, seed):
    params = dict(SMALL, **({"rounds": 6} if name == "aim" else {}))
    result = audit_run(methods.create(name, **params), adult_small.private, adult_small.schema,
                       Budget(1.0, 1e-5), seed=seed, options={"n_private": 300})
    assert not result.failed, result


def test_mst_small_booked_within_target_public_domain_no_nulls(adult_small):
    """The fast version of the two slow tests above: 3 categorical columns, 400 rows."""
    schema, private = _tiny(adult_small, columns=("race", "sex", "income"), n=400)
    private = private[private["race"] != "Other"].reset_index(drop=True)
    budget = Budget(0.5, 1e-5)
    ledger = Ledger()
    syn = methods.create("mst", **SMALL).generate(
        Task(private=private, schema=schema, budget=budget, n_samples=2000, seed=1), ledger)
    eps, _ = ledger.spent(budget.delta)
    assert 0.99 * budget.epsilon < eps <= budget.epsilon
    assert syn.info["domain"] == {"race": 6, "sex": 3, "income": 3}  # public sizes + null cell
    assert isinstance(syn, Synthetic) and len(syn.data) == 2000
    assert not syn.data.isna().any().any()
    for col in schema.columns:
        assert np.isin(syn.data[col.name], col.categories).all()
