"""Pure accounting formulas.

Gaussian differential privacy (Dong, Roth & Su, 2019): a Gaussian mechanism with L2 sensitivity Δ
and noise σ is μ-GDP with μ = Δ/σ; k such releases compose to μ = sqrt(Σ μ_i²); and μ-GDP implies
(ε, δ(ε))-DP for every ε with

    δ(ε) = Φ(−ε/μ + μ/2) − e^ε Φ(−ε/μ − μ/2),

which is exact for the Gaussian mechanism (Balle & Wang's analytic Gaussian mechanism, 2018).
Private Evolution's T noisy histograms of sensitivity 1 are therefore √T/σ-GDP.

zCDP (Bun & Steinke, 2016) to (ε, δ) uses the conversion of Canonne, Kamath & Steinke (2020,
Prop. 12), the one OpenDP applies.

Solvers return the conservative side: ε is never under-reported, σ never too small.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import optimize, special

_TOL = 1e-12


def gdp_delta(epsilon: float, mu: float) -> float:
    """δ(ε) of a μ-GDP mechanism (exact tradeoff of the Gaussian mechanism)."""
    if mu <= 0:
        return 0.0
    if math.isinf(mu):
        return 1.0
    a = -epsilon / mu + mu / 2.0
    b = -epsilon / mu - mu / 2.0
    first = special.log_ndtr(a)
    second = epsilon + special.log_ndtr(b)
    # exp(first) - exp(second), computed stably (first >= second always holds)
    if second >= first:
        return 0.0
    return float(math.exp(first) * -math.expm1(second - first))


def gdp_epsilon(mu: float, delta: float) -> float:
    """Smallest ε (to 1e-12, rounded up) such that a μ-GDP mechanism is (ε, δ)-DP."""
    _check_delta(delta)
    if mu <= 0:
        return 0.0
    if math.isinf(mu):
        return math.inf
    if gdp_delta(0.0, mu) <= delta:
        return 0.0
    hi = max(1.0, mu * mu)
    while gdp_delta(hi, mu) > delta:
        hi *= 2.0
    eps = optimize.brentq(lambda e: gdp_delta(e, mu) - delta, 0.0, hi, xtol=_TOL, rtol=1e-15)
    while gdp_delta(eps, mu) > delta:  # conservative side of the root
        eps = math.nextafter(eps, math.inf) + _TOL
    return float(eps)


def gdp_mu(epsilon: float, delta: float) -> float:
    """Largest μ (rounded down) such that μ-GDP implies (ε, δ)-DP."""
    _check_delta(delta)
    if epsilon <= 0 or not math.isfinite(epsilon):
        raise ValueError("epsilon must be finite and > 0")
    lo, hi = 1e-12, 1.0
    while gdp_delta(epsilon, hi) < delta:
        hi *= 2.0
    mu = optimize.brentq(lambda m: gdp_delta(epsilon, m) - delta, lo, hi, xtol=_TOL, rtol=1e-15)
    while gdp_delta(epsilon, mu) > delta:
        mu = mu * (1 - 1e-12) - _TOL
    return float(mu)


def gaussian_sigma(epsilon: float, delta: float, sensitivity: float = 1.0, steps: int = 1) -> float:
    """Noise σ so that ``steps`` Gaussian releases of L2 ``sensitivity`` are (ε, δ)-DP together."""
    if steps < 1:
        raise ValueError("steps must be >= 1")
    return sensitivity * math.sqrt(steps) / gdp_mu(epsilon, delta)


def pe_epsilon(sigma: float, steps: int, delta: float) -> float:
    """ε of Private Evolution: T histograms of sensitivity 1 with noise σ (μ = √T/σ)."""
    if sigma <= 0:
        raise ValueError("sigma must be > 0")
    return gdp_epsilon(math.sqrt(steps) / sigma, delta)


def pe_sigma(epsilon: float, steps: int, delta: float) -> float:
    """σ of Private Evolution's histogram noise for a target (ε, δ) over T steps."""
    return gaussian_sigma(epsilon, delta, sensitivity=1.0, steps=steps)


def zcdp_delta(epsilon: float, rho: float) -> float:
    """δ of ρ-zCDP at ε (Canonne, Kamath & Steinke 2020, Proposition 12), minimised over α."""
    if rho <= 0:
        return 0.0

    def log_delta(alpha: float) -> float:
        return (
            (alpha - 1.0) * (alpha * rho - epsilon)
            + (alpha - 1.0) * math.log1p(-1.0 / alpha)
            - math.log(alpha)
        )

    # the optimum lies near (ε + ρ) / (2ρ); search α on a log grid then refine
    grid = np.exp(np.linspace(math.log(1.0 + 1e-9), math.log(max(4.0, 10 * (epsilon + 1) / rho)), 400))
    values = np.array([log_delta(a) for a in grid])
    i = int(np.argmin(values))
    lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)]
    res = optimize.minimize_scalar(log_delta, bounds=(lo, hi), method="bounded")
    best = min(values[i], res.fun)
    return float(min(1.0, math.exp(best)))


def zcdp_epsilon(rho: float, delta: float) -> float:
    """Smallest ε (rounded up) such that ρ-zCDP implies (ε, δ)-DP."""
    _check_delta(delta)
    if rho <= 0:
        return 0.0
    if math.isinf(rho):
        return math.inf
    if zcdp_delta(0.0, rho) <= delta:  # a tiny ρ: δ alone covers it (and brentq has no sign change)
        return 0.0
    hi = rho + 2.0 * math.sqrt(rho * math.log(1.0 / delta)) + 1.0  # the classic bound is above
    eps = optimize.brentq(lambda e: zcdp_delta(e, rho) - delta, 0.0, hi, xtol=1e-10)
    while zcdp_delta(eps, rho) > delta:
        eps += 1e-10
    return float(eps)


def _check_delta(delta: float) -> None:
    if not 0.0 < delta < 1.0:
        raise ValueError(f"delta must be in (0, 1), got {delta}")


def zcdp_rho(epsilon: float, delta: float) -> float:
    """Largest ρ (rounded down) such that ρ-zCDP implies (ε, δ)-DP under ``zcdp_epsilon``.

    The inverse of zcdp_epsilon (Canonne, Kamath & Steinke 2020, Prop. 12): a bisection on ρ that
    keeps the side where zcdp_epsilon(ρ, δ) ≤ ε, so a mechanism calibrated to the returned ρ never
    spends more than ε.
    """
    _check_delta(delta)
    if epsilon <= 0 or not math.isfinite(epsilon):
        raise ValueError("epsilon must be finite and > 0")
    lo, hi = 0.0, epsilon  # ρ-zCDP implies (ρ + 2√(ρ log 1/δ), δ)-DP, so ρ ≤ ε always
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if zcdp_epsilon(mid, delta) <= epsilon:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-12 * hi:
            break
    return float(lo)


def sgm_epsilon(history: list[tuple[float, float, int]], delta: float,
                accountant: str = "prv") -> float:
    """ε at ``delta`` of composed Poisson-subsampled Gaussian mechanisms.

    ``history`` lists (noise multiplier σ, sampling rate q, steps) as Opacus' accountants take it;
    a Gaussian release of sensitivity Δ with noise s is (s/Δ, 1, 1). ``accountant`` is "prv"
    (Gopi, Lee & Wutschitz 2021: Opacus' default since 1.5; its ``get_epsilon`` returns an upper
    bound that includes its numerical error) or "rdp" (Mironov 2017, the looser bound most DP-SGD
    papers report). Where RDP already says ε > 64, PRV's grid would need hundreds of GiB; the RDP
    value, also a valid upper bound, is returned there.
    """
    import warnings

    _check_delta(delta)
    if not history:
        return 0.0
    from opacus.accountants import PRVAccountant, RDPAccountant

    acc = {"prv": PRVAccountant, "rdp": RDPAccountant}.get(accountant)
    if acc is None:
        raise ValueError(f"unknown DP-SGD accountant {accountant!r}; use 'prv' or 'rdp'")
    items = [(float(s), float(q), int(t)) for s, q, t in history]
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")  # q = 1 entries make harmless log(0) warnings in PRV
        rdp = RDPAccountant()
        rdp.history = items
        bound = float(rdp.get_epsilon(delta))
        if accountant == "rdp" or bound > 64.0:
            return bound
        a = acc()
        a.history = items
        return min(bound, float(a.get_epsilon(delta)))


def dp_sgd_noise_multiplier(epsilon: float, delta: float, sample_rate: float, steps: int,
                            accountant: str = "prv",
                            others: list[tuple[float, float, int]] | None = None) -> float:
    """Smallest noise multiplier σ (to 0.1%, rounded up) such that ``steps`` DP-SGD steps at rate
    ``sample_rate``, composed with ``others`` (e.g. a Gaussian histogram as (σ_h, 1, 1)) in
    ``accountant``, stay within (ε, δ). The same accountant then books the run, so the printed ε is
    the one the noise was calibrated for."""
    _check_delta(delta)
    if epsilon <= 0 or not math.isfinite(epsilon):
        raise ValueError("epsilon must be finite and > 0")
    rest = list(others or [])

    def ok(sigma: float) -> bool:
        # the ledger lists DP-SGD first too, so it recomputes exactly this value; the margin keeps
        # the run clear of the harness' overspending check
        return (sgm_epsilon([(sigma, sample_rate, steps), *rest], delta, accountant)
                <= epsilon * (1.0 - 1e-6))

    if rest and sgm_epsilon(rest, delta, accountant) >= epsilon:
        raise ValueError("the other mechanisms alone spend the whole budget")
    hi = 1.0
    while not ok(hi):
        hi *= 2.0
        if hi > 1e4:
            raise ValueError("no noise multiplier below 1e4 reaches the target ε")
    lo = hi / 2.0
    while ok(lo):
        hi, lo = lo, lo / 2.0
        if lo < 1e-3:
            return float(hi)
    while hi / lo > 1.001:
        mid = math.sqrt(lo * hi)
        if ok(mid):
            hi = mid
        else:
            lo = mid
    return float(hi)
