import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate, stats

from dparena.privacy import (
    Ledger,
    LedgerEntry,
    gaussian_sigma,
    gdp_delta,
    gdp_epsilon,
    gdp_mu,
    pe_epsilon,
    pe_sigma,
    zcdp_epsilon,
)
from dparena.privacy.accountants import zcdp_delta


def test_pe_reference_value_from_dpsda():
    # DPSDA issue #6: T = 5, sigma = 2*sqrt(2), delta = 1e-5 gives epsilon ~ 3.341
    assert pe_epsilon(2 * math.sqrt(2), 5, 1e-5) == pytest.approx(3.341, abs=5e-4)
    assert pe_sigma(3.341409469, 5, 1e-5) == pytest.approx(2 * math.sqrt(2), rel=1e-6)


def _delta_by_integration(eps: float, mu: float) -> float:
    """Hockey-stick divergence of N(mu,1) vs N(0,1), integrated numerically (independent check)."""
    def integrand(x):
        return max(0.0, stats.norm.pdf(x, mu) - math.exp(eps) * stats.norm.pdf(x))

    value, _ = integrate.quad(integrand, -20, 20 + mu, limit=400, points=[mu / 2 + eps / mu])
    return value


@pytest.mark.parametrize("eps,mu", [(0.5, 0.3), (1.0, 1.0), (3.0, 2.0), (8.0, 3.0)])
def test_gdp_delta_matches_numerical_integration(eps, mu):
    assert gdp_delta(eps, mu) == pytest.approx(_delta_by_integration(eps, mu), rel=1e-6, abs=1e-12)


@settings(max_examples=60, deadline=None)
@given(eps=st.floats(0.05, 20), log_delta=st.floats(-12, -2), steps=st.integers(1, 50))
def test_calibrated_noise_never_overshoots(eps, log_delta, steps):
    delta = 10.0**log_delta
    sigma = gaussian_sigma(eps, delta, sensitivity=1.0, steps=steps)
    achieved = gdp_epsilon(math.sqrt(steps) / sigma, delta)
    assert achieved <= eps + 1e-9
    assert achieved >= eps - 1e-6  # and it is tight


@settings(max_examples=40, deadline=None)
@given(mu=st.floats(0.01, 10), log_delta=st.floats(-12, -2))
def test_gdp_epsilon_is_conservative_root(mu, log_delta):
    delta = 10.0**log_delta
    eps = gdp_epsilon(mu, delta)
    assert gdp_delta(eps, mu) <= delta
    if eps > 1e-6:
        assert gdp_delta(eps - 1e-6, mu) > delta * (1 - 1e-6)


def test_gdp_mu_inverts_delta():
    mu = gdp_mu(1.0, 1e-5)
    assert gdp_delta(1.0, mu) == pytest.approx(1e-5, rel=1e-6)
    assert gdp_delta(1.0, mu) <= 1e-5


@pytest.mark.parametrize("rho", [0.01, 0.1, 0.5, 2.0])
def test_zcdp_conversion_is_tighter_than_the_classic_bound(rho):
    delta = 1e-6
    eps = zcdp_epsilon(rho, delta)
    assert eps < rho + 2 * math.sqrt(rho * math.log(1 / delta))
    assert zcdp_delta(eps, rho) <= delta
    # the Gaussian mechanism with mu = sqrt(2 rho) is exactly rho-zCDP and mu-GDP: GDP is tighter
    assert gdp_epsilon(math.sqrt(2 * rho), delta) <= eps


def test_zcdp_epsilon_of_a_tiny_rho_is_zero_when_delta_covers_it():
    """ρ so small that δ(ε = 0) ≤ δ already: ε is 0, not a root-finding error."""
    assert zcdp_delta(0.0, 1e-10) <= 1e-5
    assert zcdp_epsilon(1e-10, 1e-5) == 0.0
    for rho in (1e-14, 1e-12, 1e-11):
        assert zcdp_epsilon(rho, 1e-5) == 0.0
    # just above the threshold the conversion is a small positive ε that covers δ
    for rho in (1e-9, 1e-8, 1e-7):
        eps = zcdp_epsilon(rho, 1e-5)
        assert 0.0 < eps < 0.01 and zcdp_delta(eps, rho) <= 1e-5


def test_zcdp_epsilon_is_monotone_in_rho():
    rhos = [0.0, 1e-12, 1e-10, 1e-9, 1e-8, 1e-6, 1e-4, 0.01, 0.1, 0.5, 2.0]
    eps = [zcdp_epsilon(rho, 1e-5) for rho in rhos]
    assert eps == sorted(eps) and eps[0] == 0.0 and eps[-1] > 1.0
    # ρ above the threshold converts exactly as before the fix
    before = {1e-8: 0.0002090152512712724, 1e-4: 0.04504746208860458, 0.01: 0.5457255482740069,
              0.5: 4.728386984943376}
    for rho, value in before.items():
        assert zcdp_epsilon(rho, 1e-5) == value


def test_zcdp_conversion_matches_opendp():
    dp = pytest.importorskip("opendp.prelude")
    dp.enable_features("contrib")
    space = dp.atom_domain(T=float, nan=False), dp.absolute_distance(T=float)
    for scale in (1.0, 3.0):
        meas = dp.c.make_fix_delta(
            dp.c.make_zCDP_to_approxDP(dp.m.make_gaussian(*space, scale=scale)), delta=1e-6
        )
        eps_opendp, _ = meas.map(1.0)
        rho = 1.0 / (2 * scale**2)
        assert zcdp_epsilon(rho, 1e-6) == pytest.approx(eps_opendp, rel=1e-4)


def test_ledger_composes_gaussian_entries_exactly():
    ledger = Ledger()
    for _ in range(5):
        ledger.gaussian("histogram", sigma=2 * math.sqrt(2), sensitivity=1.0)
    eps, delta = ledger.spent(1e-5)
    assert eps == pytest.approx(pe_epsilon(2 * math.sqrt(2), 5, 1e-5), rel=1e-12)
    assert delta == 1e-5


def test_ledger_mixed_entries_compose_soundly():
    ledger = Ledger()
    ledger.gaussian("g", sigma=3.0, sensitivity=1.0)
    ledger.record(LedgerEntry("pure", "laplace count", epsilon=0.1))
    ledger.record(LedgerEntry("zcdp", "aim", rho=0.05))
    eps, delta = ledger.spent(1e-5)
    rho = 0.05 + (1 / 3.0) ** 2 / 2
    assert eps == pytest.approx(0.1 + zcdp_epsilon(rho, 1e-5))
    assert delta == 1e-5
    # every (eps, delta) pair reported must dominate each part alone
    assert eps > ledger.entries[0].epsilon_at(1e-5)


def test_ledger_empty_and_non_private():
    assert Ledger().spent(1e-5) == (0.0, 0.0)
    ledger = Ledger()
    ledger.non_private("copy")
    assert math.isinf(ledger.spent(1e-5)[0])


def test_ledger_entry_needs_exactly_one_charge():
    with pytest.raises(ValueError):
        LedgerEntry("x", "y")
    with pytest.raises(ValueError):
        LedgerEntry("x", "y", mu=1.0, rho=1.0)


def test_ledger_round_trips_through_json():
    ledger = Ledger()
    ledger.gaussian("h", sigma=np.float64(2.0), sensitivity=1.0, bins=3)
    back = Ledger.from_list(__import__("json").loads(ledger.to_json()))
    assert back.spent(1e-6) == ledger.spent(1e-6)


def test_ledger_books_zcdp_and_approx_entries():
    from dparena.privacy import zcdp_epsilon

    ledger = Ledger()
    ledger.zcdp("library accounting", rho=0.05)
    assert ledger.spent(1e-5) == (pytest.approx(zcdp_epsilon(0.05, 1e-5)), 1e-5)
    ledger.approx("DP-SGD (opacus accountant)", epsilon=1.0, delta=4e-6)
    eps, delta = ledger.spent(1e-5)
    # the approximate-DP entry's δ is taken out of the run's δ before the zCDP part is converted
    assert eps == pytest.approx(1.0 + zcdp_epsilon(0.05, 6e-6))
    assert delta == 1e-5
    with pytest.raises(ValueError):
        ledger.approx("bad", epsilon=float("inf"), delta=0.0)
    with pytest.raises(ValueError):
        ledger.zcdp("bad", rho=0.0)
