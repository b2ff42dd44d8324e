"""Budget.split: one ε split for the methods that release a histogram beside DP-SGD."""

import math

import numpy as np
import pytest

from dparena.errors import ConfigError
from dparena.types import Budget


def test_split_divides_epsilon_and_keeps_delta():
    part, rest = Budget(2.0, 1e-5).split(0.05)
    assert part == Budget(0.05 * 2.0, 1e-5) and rest == Budget(0.95 * 2.0, 1e-5)
    assert math.isclose(part.epsilon + rest.epsilon, 2.0)
    for bad in (0.0, 1.0, -0.1, 1.5, math.nan):
        with pytest.raises(ConfigError, match="share"):
            Budget(1.0, 1e-5).split(bad)


def test_the_histogram_beside_dp_sgd_is_calibrated_to_the_first_part():
    """dp2stage's prompt histogram and dp-finetune-lm's class counts: σ alone gives (share·ε, δ),
    and DP-SGD composed with it stays within the whole budget."""
    pytest.importorskip("opacus")
    from dparena.methods.base import Task
    from dparena.privacy import gaussian_sigma
    from dparena.privacy.accountants import sgm_epsilon
    from dparena.privacy.dpsgd import plan_with_histogram

    budget = Budget(3.0, 1e-5)
    task = Task(private=None, schema=None, budget=budget, n_samples=10, seed=0, public_size=1000)
    plan, sigma = plan_with_histogram(task, "m", share=0.1, batch_size=50, epochs=2,
                                      accountant="prv")
    assert sigma == gaussian_sigma(0.1 * 3.0, 1e-5, sensitivity=1.0)  # share·ε, as before
    alone, _ = plan_with_histogram(task, "m", share=None, batch_size=50, epochs=2,
                                   accountant="prv")
    assert plan.noise_multiplier > alone.noise_multiplier  # DP-SGD gave up what the histogram took
    spent = sgm_epsilon([(plan.noise_multiplier, plan.sample_rate, plan.steps), (sigma, 1.0, 1)],
                        1e-5, "prv")
    assert spent <= 3.0 + 1e-6 and np.isfinite(spent)
