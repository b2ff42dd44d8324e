"""Matched ε means matched: the ledger composes each run in the tightest valid accountant it can,
names that accountant, and DP-SGD's noise is calibrated against the accountant that books it.
Also the secure (OS-entropy) noise source and its switches."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest

from dparena.privacy import Ledger, gaussian_sigma
from dparena.privacy.accountants import (
    dp_sgd_noise_multiplier,
    gdp_epsilon,
    sgm_epsilon,
    zcdp_epsilon,
)
from dparena.privacy.ledger import LedgerEntry
from dparena.privacy.noise import SecureNoise, SeededNoise, os_standard_normal

DELTA = 1e-5


def test_gaussians_alone_compose_exactly_in_gdp():
    ledger = Ledger()
    ledger.gaussian("a", sigma=3.0, sensitivity=1.0)
    ledger.gaussian("b", sigma=4.0, sensitivity=1.0)
    assert ledger.accountant() == "GDP (exact)"
    eps, delta = ledger.spent(DELTA)
    assert eps == pytest.approx(gdp_epsilon(math.hypot(1 / 3, 1 / 4), DELTA), rel=1e-12)
    assert delta == DELTA
    assert {e.accountant for e in ledger.entries} == {"gdp"}


def test_dp_sgd_and_a_gaussian_compose_in_one_prv_accountant():
    ledger = Ledger()
    ledger.gaussian("histogram", sigma=20.0, sensitivity=1.0)
    ledger.dp_sgd("sgd", noise_multiplier=1.5, sample_rate=0.08, steps=37)
    eps, delta = ledger.spent(DELTA)
    assert ledger.accountant() == "PRV" and delta == DELTA
    assert eps == sgm_epsilon([(1.5, 0.08, 37), (20.0, 1.0, 1)], DELTA, "prv")
    # tighter than basic composition of the two parts with δ split in halves
    basic = (gdp_epsilon(1 / 20.0, DELTA / 2)
             + sgm_epsilon([(1.5, 0.08, 37)], DELTA / 2, "prv"))
    assert eps < basic
    rdp = Ledger([LedgerEntry(**{**e.__dict__, "accountant": "rdp"}) if e.kind == "sgm" else e
                  for e in ledger.entries])
    assert rdp.accountant() == "RDP" and rdp.spent(DELTA)[0] > eps  # PRV is the tighter bound


def test_what_cannot_share_an_accountant_is_basic_composition_and_says_so():
    ledger = Ledger()
    ledger.dp_sgd("sgd", noise_multiplier=1.5, sample_rate=0.08, steps=37)
    ledger.zcdp("aim", rho=0.01)
    eps, _ = ledger.spent(DELTA)
    assert ledger.accountant() == "PRV + zCDP (CKS) + basic"
    assert eps == pytest.approx(sgm_epsilon([(1.5, 0.08, 37)], DELTA / 2, "prv")
                                + zcdp_epsilon(0.01, DELTA / 2))
    ledger.approx("fixed", epsilon=0.1, delta=1e-6)
    assert ledger.accountant().endswith("basic")
    mixed = Ledger()
    mixed.dp_sgd("a", 1.0, 0.1, 10, accountant="prv")
    mixed.dp_sgd("b", 1.0, 0.1, 10, accountant="rdp")
    with pytest.raises(ValueError, match="different accountants"):
        mixed.spent(DELTA)


def test_old_ledger_entries_still_load_and_name_their_accountant():
    old = {"mechanism": "gaussian", "description": "x", "mu": 0.5, "rho": None, "epsilon": None,
           "delta": None, "params": {}}
    ledger = Ledger.from_list([old])
    assert ledger.entries[0].accountant == "gdp" and ledger.accountant() == "GDP (exact)"
    again = Ledger.from_list(ledger.to_list())
    assert again.spent(DELTA) == ledger.spent(DELTA)


@pytest.mark.parametrize("accountant", ["prv", "rdp"])
def test_noise_multiplier_is_calibrated_to_the_booked_accountant(accountant):
    """The quick suite's adult-lm setting (N = 400, batch 32, 3 epochs, δ = 1/(N ln N)): σ is the
    smallest (to 0.1%) that the accountant accepts, and PRV needs less noise than RDP."""
    delta = 1 / (400 * math.log(400))
    q, steps = 32 / 400, 3 * 12
    sigma = dp_sgd_noise_multiplier(1.0, delta, q, steps, accountant)
    assert sgm_epsilon([(sigma, q, steps)], delta, accountant) <= 1.0
    assert sgm_epsilon([(sigma / 1.002, q, steps)], delta, accountant) > 1.0 * (1 - 1e-6)
    if accountant == "prv":
        assert sigma < dp_sgd_noise_multiplier(1.0, delta, q, steps, "rdp")


def test_joint_calibration_leaves_room_for_the_other_mechanism():
    sigma_h = gaussian_sigma(0.05, DELTA)
    alone = dp_sgd_noise_multiplier(1.0, DELTA, 0.08, 37, "prv")
    joint = dp_sgd_noise_multiplier(1.0, DELTA, 0.08, 37, "prv", [(sigma_h, 1.0, 1)])
    assert joint > alone
    assert sgm_epsilon([(joint, 0.08, 37), (sigma_h, 1.0, 1)], DELTA, "prv") <= 1.0
    with pytest.raises(ValueError, match="whole budget"):
        dp_sgd_noise_multiplier(1.0, DELTA, 0.08, 37, "prv", [(0.5, 1.0, 1)])


def test_paper_setting_prv_against_rdp():
    """DP-2Stage's Adult setting (q ≈ 1/1018, 10,180 steps, δ = 1e-5): RDP needs σ ≈ 0.905 for
    ε = 1 (the paper's 0.906), PRV about 0.741."""
    q, steps = 1 / 1018, 10_180
    rdp = dp_sgd_noise_multiplier(1.0, DELTA, q, steps, "rdp")
    prv = dp_sgd_noise_multiplier(1.0, DELTA, q, steps, "prv")
    assert rdp == pytest.approx(0.905, abs=0.005) and prv == pytest.approx(0.741, abs=0.005)


def test_huge_epsilon_does_not_blow_up_prv():
    # PRV's grid grows with ε: where RDP already says ε > 64 its (valid) bound is used
    assert sgm_epsilon([(0.02, 0.25, 80)], DELTA, "prv") > 64
    assert dp_sgd_noise_multiplier(1e4, DELTA, 0.25, 80, "prv") > 0


# -- the noise source --------------------------------------------------------------------------

def test_os_entropy_normal_has_the_right_distribution(monkeypatch):
    from scipy import stats

    calls = []
    real = os.urandom
    monkeypatch.setattr(os, "urandom", lambda n: calls.append(n) or real(n))
    z = os_standard_normal(20_000)
    assert calls, "the samples must come from os.urandom"
    assert stats.kstest(z, "norm").pvalue > 1e-4
    x = SecureNoise().normal(3.0, 2.0, (50, 40))
    assert x.shape == (50, 40) and abs(x.mean() - 3.0) < 0.15 and abs(x.std() - 2.0) < 0.1
    assert isinstance(SecureNoise().normal(0.0, 1.0), float)


def test_seeded_noise_is_the_run_generator_itself():
    a = SeededNoise(np.random.default_rng(5)).normal(0.0, 2.0, 7)
    b = np.random.default_rng(5).normal(0.0, 2.0, 7)
    np.testing.assert_array_equal(a, b)


def test_secure_noise_is_not_reproducible_from_the_seed(adult_small):
    from dparena.methods import methods
    from dparena.methods.base import Task
    from dparena.types import Budget

    def run(secure):
        task = Task(private=adult_small.private, schema=adult_small.schema,
                    budget=Budget(1.0, DELTA), n_samples=200, seed=3, public_size=3000,
                    secure_noise=secure)
        return methods.create("independent-marginals").generate(task, Ledger()).data

    assert run(False).equals(run(False))
    assert not run(True).equals(run(True))


def test_dp_sgd_noise_comes_from_os_entropy_in_secure_mode(adult_small, monkeypatch):
    """In secure mode Opacus' noise function is replaced for the training only (and restored)."""
    from opacus.optimizers import optimizer as dp_optimizer

    from dparena.methods import methods
    from dparena.methods.base import Task
    from dparena.privacy import noise as noise_module
    from dparena.types import Budget

    drawn = []
    real = noise_module.os_standard_normal
    monkeypatch.setattr(noise_module, "os_standard_normal", lambda n: drawn.append(n) or real(n))
    original = dp_optimizer._generate_noise
    kw = dict(model="tiny", epochs=1, batch_size=16, physical_batch_size=16, n_embd=32, n_layer=1,
              max_new_tokens=4, gen_batch_size=4, give_up_after=1, prompt_dist="public")
    task = Task(private=adult_small.private.iloc[:64], schema=adult_small.schema,
                budget=Budget(4.0, DELTA), n_samples=1, seed=0, public_size=64, secure_noise=True)
    methods.create("dp-standard", **kw).generate(task, Ledger())
    assert sum(drawn) > 0 and dp_optimizer._generate_noise is original


def test_secure_noise_switch_in_suite_and_key(tmp_path):
    from dparena.errors import ConfigError
    from dparena.harness.suite import parse_suite

    raw = {"name": "t", "seeds": [0], "epsilons": [1.0], "delta": 1e-5,
           "section": [{"dataset": "adult", "dataset_params": {"n_private": 100, "n_eval": 100},
                        "n_samples": 50, "metrics": [],
                        "methods": [{"name": "independent-marginals"}, {"name": "real"}]}]}
    seeded = parse_suite(raw).specs
    secure = parse_suite({**raw, "secure_noise": True}).specs
    flag = parse_suite(raw, secure_noise=True).specs
    assert [s.secure_noise for s in seeded] == [False, False]
    assert [s.secure_noise for s in secure] == [True, False]  # references add no noise
    assert [s.key for s in secure] == [s.key for s in flag]
    assert secure[0].key != seeded[0].key and secure[1].key == seeded[1].key
    with pytest.raises(ConfigError, match="secure_noise"):
        parse_suite({**raw, "secure_noise": "yes"})


def test_dparena_run_prints_the_spent_epsilon_with_its_accountant(tmp_path):
    import subprocess
    import sys

    suite = tmp_path / "s.toml"
    suite.write_text('name = "s"\nseeds = [0]\nepsilons = [1.0]\ndelta = 1e-5\n[[section]]\n'
                     'dataset = "adult"\ndataset_params = { n_private = 200, n_eval = 50 }\n'
                     'n_samples = 20\nmetrics = []\nmethods = [{ name = "independent-marginals" }]\n')
    out = subprocess.run([sys.executable, "-m", "dparena", "run", str(suite), "--db",
                          str(tmp_path / "runs.sqlite"), "--quiet"], capture_output=True,
                         text=True, timeout=300, env={**os.environ, "COLUMNS": "250"})
    assert out.returncode == 0, out.stderr
    line = next(x for x in out.stderr.splitlines() if "ε spent" in x)
    assert "of 1" in line and "accountant GDP (exact)" in line


def test_legacy_published_work_folders_are_removed(tmp_path):
    """dparena 0.1 kept PE checkpoints (an unkeyed fingerprint of the private data, a pickle) under
    the published artifacts/<key>/work/; the next run on that store deletes them."""
    from dparena.harness.runner import Runner
    from dparena.harness.store import Store

    store = Store(tmp_path / "runs.sqlite")
    legacy = store.artifacts / "abc" / "work"
    legacy.mkdir(parents=True)
    (legacy / "pe-checkpoint.pkl").write_bytes(b"old")
    (store.artifacts / "abc" / "synthetic.npz").write_bytes(b"keep")
    Runner(store).run([])
    assert not legacy.exists() and (store.artifacts / "abc" / "synthetic.npz").exists()
