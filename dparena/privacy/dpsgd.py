"""DP-SGD's privacy side, shared by every method that trains with it (DP-2Stage, dp-finetune-lm,
dp-ctgan): the plan fixed before training from public quantities only, the accountant check, and
the booking of the steps actually taken. The training loops live with their models
(:mod:`dparena.lm.train`, :mod:`dparena.methods.baselines.dp_ctgan`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from dparena.errors import ConfigError


@dataclass(frozen=True)
class DPSGDPlan:
    """DP-SGD's privacy parameters, fixed before training from public quantities only.

    Under add/remove-one neighbours with the public dataset size N: Poisson sampling at rate
    q = B / N, ⌊1/q⌋ steps per epoch (Opacus' sampler), the gradient sum divided by the public
    expected batch size qN = B, and σ calibrated by ``accountant`` so that the run's whole ledger
    (these steps plus the ``others`` mechanisms it composes with) stays within (ε, δ).
    """

    noise_multiplier: float
    sample_rate: float
    steps: int
    accountant: str
    expected_batch_size: float


def plan_dp_sgd(*, epsilon: float, delta: float, public_size: int, batch_size: int, epochs: int,
                accountant: str, others: Sequence[tuple[float, float, int]] = ()) -> DPSGDPlan:
    """Calibrate DP-SGD for (ε, δ) jointly with ``others`` (Opacus history items, e.g. a Gaussian
    histogram as (σ_h, 1, 1)) in ``accountant``."""
    from dparena.privacy.accountants import dp_sgd_noise_multiplier

    q = min(1.0, batch_size / public_size)
    steps = int(epochs) * int(1.0 / q)
    sigma = dp_sgd_noise_multiplier(epsilon, delta, q, steps, accountant, list(others))
    return DPSGDPlan(sigma, q, steps, accountant, q * public_size)


def plan_with_histogram(task, method: str, *, share: float | None, batch_size: int, epochs: int,
                        accountant: str) -> tuple[DPSGDPlan, float | None]:
    """The DP-SGD plan of a run that may also release one Gaussian histogram of sensitivity 1
    (a prompt column or label counts): the histogram's σ alone would give the first part of
    ``Budget.split(share)``, (share·ε, δ), and DP-SGD is calibrated so that both, composed in
    ``accountant``, stay within the run's whole (ε, δ).
    ``share`` None: no histogram. Returns (plan, σ of the histogram or None)."""
    eps, delta = task.budget.epsilon, task.budget.delta
    if delta <= 0:
        raise ConfigError(f"{method}: DP-SGD needs delta > 0")
    from dparena.privacy import gaussian_sigma

    sigma = None
    if share is not None:
        histogram, _ = task.budget.split(share)  # DP-SGD takes the rest jointly, not the 2nd part
        sigma = gaussian_sigma(histogram.epsilon, histogram.delta, sensitivity=1.0)
    plan = plan_dp_sgd(epsilon=eps, delta=delta, public_size=task.size(method),
                       batch_size=batch_size, epochs=epochs, accountant=accountant,
                       others=[(sigma, 1.0, 1)] if sigma is not None else [])
    return plan, sigma


def check_accountant(method: str, accountant: str) -> None:
    from dparena.privacy.ledger import SGM_ACCOUNTANTS

    if accountant not in SGM_ACCOUNTANTS:
        raise ConfigError(f"{method}: accountant must be one of {', '.join(SGM_ACCOUNTANTS)} "
                          f"(got {accountant!r}); prv is the tighter valid bound, rdp what most "
                          "DP-SGD papers report")


def book_dp_sgd(ledger, plan: DPSGDPlan, steps: int, what: str, max_grad_norm: float) -> None:
    """Book the DP-SGD steps actually taken under the plan's accountant (one ledger entry)."""
    if steps > plan.steps:
        raise RuntimeError(f"DP-SGD took {steps} steps, more than the {plan.steps} it was "
                           "calibrated for")
    ledger.dp_sgd(
        f"{what} ({steps} steps, q={plan.sample_rate:.4g}, σ={plan.noise_multiplier:.4g}, "
        f"C={max_grad_norm})", plan.noise_multiplier, plan.sample_rate, steps,
        accountant=plan.accountant, max_grad_norm=max_grad_norm,
        expected_batch_size=plan.expected_batch_size)
