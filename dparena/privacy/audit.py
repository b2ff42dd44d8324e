"""Empirical privacy auditing, the statistics: lower bounds on ε from membership guesses.

One-run auditing (Steinke, Nasr & Jagielski, "Privacy Auditing with One (1) Training Run",
NeurIPS 2023): m canaries are each included in the private data independently with probability
1/2; after one run of the mechanism an attacker guesses membership for r of them and gets v right.
If the mechanism is (ε, δ)-DP, the number of correct guesses is, up to a δ-term, stochastically
dominated by Binomial(r, e^ε / (1 + e^ε)) (their Theorem 5.2). The p-value of observing ≥ v
correct guesses is therefore computable for any ε, and the largest ε that is rejected at the
stated confidence is a lower bound on the mechanism's true ε.

Multi-run auditing (the classic approach): R independent runs with one canary each, included with
probability 1/2; Clopper–Pearson upper bounds on the false-positive and false-negative rates give
ε ≥ log((1 − δ − FNR) / FPR) (and the symmetric term) at the stated confidence.

Each audit also reports the p-value of the claim "the mechanism is (claimed ε, δ)-DP": for one run
the p-value above at the claimed ε; for R runs the smallest 1 − confidence at which the
Clopper–Pearson bound exceeds the claimed ε (found by bisection and rounded up, so still a valid
p-value, since the bound grows as the confidence drops). A leaderboard holds many audits, so it
flags a run only when Holm–Bonferroni over all of them rejects its claim (``holm_bonferroni``):
one audit alone at 95% confidence would flag a correct mechanism 5% of the time.

The canaries and attacks that run a method and count its correct guesses are
:mod:`dparena.harness.audit`'s; this module only turns counts into bounds and p-values.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import optimize, stats


def one_run_p_value(m: int, r: int, v: int, epsilon: float, delta: float) -> float:
    """P-value of v correct guesses out of r (m canaries) under the null '(ε, δ)-DP'."""
    if not 0 <= v <= r <= m:
        raise ValueError("need 0 <= v <= r <= m")
    q = 1.0 / (1.0 + math.exp(-epsilon))
    tail = float(stats.binom.sf(v - 1, r, q))  # P[Binomial(r, q) >= v]
    # the δ-term of Theorem 5.2: the worst average of P[v - i <= Binomial < v] / i over i
    pmf = stats.binom.pmf(np.arange(v - 1, -1, -1), r, q)  # P[B = v-1], P[B = v-2], ...
    alpha = float(np.max(np.cumsum(pmf) / np.arange(1, v + 1))) if v > 0 else 0.0
    return min(1.0, tail + 2.0 * m * delta * alpha)


def one_run_lower_bound(m: int, r: int, v: int, delta: float, confidence: float = 0.95) -> float:
    """Largest ε rejected at ``confidence`` by one_run_p_value (0 when nothing can be rejected)."""
    beta = 1.0 - confidence
    if r == 0 or one_run_p_value(m, r, v, 0.0, delta) >= beta:
        return 0.0
    hi = 1.0
    while one_run_p_value(m, r, v, hi, delta) < beta:
        hi *= 2.0
        if hi > 1e3:
            return math.inf
    return float(optimize.brentq(lambda e: one_run_p_value(m, r, v, e, delta) - beta, 0.0, hi,
                                 xtol=1e-6))


def clopper_pearson_upper(k: int, n: int, confidence: float) -> float:
    """One-sided Clopper–Pearson upper bound of a binomial proportion."""
    return _clopper_pearson_upper_at(k, n, 1.0 - confidence)


def _clopper_pearson_upper_at(k: int, n: int, alpha: float) -> float:
    """The upper bound at error level ``alpha`` (precise for tiny ``alpha``, unlike 1 − confidence)."""
    if n == 0 or k >= n:
        return 1.0
    return float(stats.beta.isf(alpha, k + 1, n - k))


def multi_run_lower_bound(fp: int, n_out: int, fn: int, n_in: int, delta: float,
                          confidence: float = 0.95) -> float:
    """ε lower bound from false positives / negatives over independent one-canary runs.

    Both rates are bounded simultaneously (Bonferroni: each at (1 + confidence) / 2).
    """
    return _multi_run_bound_at(fp, n_out, fn, n_in, delta, 1.0 - confidence)


def multi_run_p_value(fp: int, n_out: int, fn: int, n_in: int, epsilon: float,
                      delta: float) -> float:
    """P-value of the null '(ε, δ)-DP' for a multi-run audit.

    The smallest β = 1 − confidence at which multi_run_lower_bound exceeds ``epsilon``: the bound
    grows as β grows, so the tests are nested and this is a valid p-value. Bisection on log β,
    rounded up (the returned β rejects); 1.0 when even β = 1 rejects nothing.
    """
    def rejects(log_beta: float) -> bool:
        return _multi_run_bound_at(fp, n_out, fn, n_in, delta, math.exp(log_beta)) > epsilon

    lo, hi = math.log(1e-300), 0.0
    if not rejects(hi):
        return 1.0
    if rejects(lo):
        return 1e-300
    while hi - lo > 1e-9:  # relative precision of β
        mid = 0.5 * (lo + hi)
        lo, hi = (lo, mid) if rejects(mid) else (mid, hi)
    return math.exp(hi)


def _multi_run_bound_at(fp: int, n_out: int, fn: int, n_in: int, delta: float,
                        beta: float) -> float:
    fpr = _clopper_pearson_upper_at(fp, n_out, beta / 2.0)
    fnr = _clopper_pearson_upper_at(fn, n_in, beta / 2.0)
    bounds = [0.0]
    for a, b in ((fnr, fpr), (fpr, fnr)):
        if b > 0 and 1.0 - delta - a > 0:
            bounds.append(math.log((1.0 - delta - a) / b))
        elif b == 0 and 1.0 - delta - a > 0:
            bounds.append(math.inf)
    return max(bounds)


def holm_bonferroni(p_values: Sequence[float], level: float = 0.05) -> list[bool]:
    """Which nulls Holm's step-down procedure rejects at family-wise error rate ``level``.

    The i-th smallest p-value is compared with level / (K − i + 1), K = len(p_values); the first
    one above its threshold stops the procedure, and it and every larger p-value are kept.
    """
    k = len(p_values)
    rejected = [False] * k
    for rank, i in enumerate(sorted(range(k), key=lambda j: p_values[j])):
        if p_values[i] > level / (k - rank):
            break
        rejected[i] = True
    return rejected


def stored_p_value(audit: dict[str, Any]) -> float | None:
    """The p-value of a stored audit (``AuditResult.to_dict()``); None when it cannot be known.

    Audits stored before dparena kept the p-value are recomputed from their canaries, guesses and
    correct guesses when one-run; a multi-run record kept only the correct count, not the false
    positives and negatives the p-value needs.
    """
    if audit.get("p_value") is not None:
        return float(audit["p_value"])
    if audit.get("analysis") == "one-run":
        return one_run_p_value(int(audit["canaries"]), int(audit["guesses"]),
                               int(audit["correct"]), float(audit["claimed_epsilon"]),
                               float(audit["delta"]))
    return None
