import math

import numpy as np
import pytest
from scipy import stats

import tests.plugins  # noqa: F401 - registers test-noiseless
from dparena.errors import ConfigError
from dparena.harness.audit import audit_run, canary_scores, rare_value_canaries
from dparena.harness.runner import Runner
from dparena.harness.store import Store
from dparena.harness.suite import parse_suite
from dparena.leaderboard.aggregate import build_tables
from dparena.methods import methods
from dparena.privacy.audit import (
    holm_bonferroni,
    multi_run_lower_bound,
    multi_run_p_value,
    one_run_lower_bound,
    one_run_p_value,
    stored_p_value,
)
from dparena.types import Budget


@pytest.mark.parametrize("m", [10, 30, 100, 1000])
def test_perfect_guessing_matches_the_theorem_closed_form(m):
    # with δ = 0, Theorem 5.2 makes the correct-guess count dominated by Binomial(r, q),
    # q = e^ε/(1+e^ε): all r correct has probability q^r, so the 95% bound solves q^r = 0.05
    q = 0.05 ** (1 / m)
    assert one_run_lower_bound(m, m, m, delta=0.0) == pytest.approx(math.log(q / (1 - q)), abs=1e-5)


def test_p_value_is_the_binomial_tail_without_delta():
    assert one_run_p_value(100, 50, 40, 1.0, 0.0) == pytest.approx(
        stats.binom.sf(39, 50, 1 / (1 + math.exp(-1.0))))


def test_delta_only_weakens_the_bound_and_chance_gives_none():
    assert one_run_lower_bound(100, 100, 100, 1e-3) < one_run_lower_bound(100, 100, 100, 0.0)
    assert one_run_lower_bound(100, 100, 55, 1e-5) == 0.0  # 55% is chance level
    assert one_run_lower_bound(100, 0, 0, 1e-5) == 0.0


def test_multi_run_bound():
    assert multi_run_lower_bound(0, 100, 0, 100, 1e-5) > 3.0  # perfect attack on 200 runs
    assert multi_run_lower_bound(50, 100, 50, 100, 1e-5) == 0.0  # coin flips
    # the bound grows with the number of runs for the same error rates
    assert multi_run_lower_bound(5, 500, 5, 500, 0) > multi_run_lower_bound(1, 100, 1, 100, 0)


@pytest.mark.parametrize("m, r, v", [(100, 100, 70), (100, 100, 90), (1000, 500, 320),
                                     (40, 20, 19), (100, 100, 55)])
def test_one_run_p_value_agrees_with_the_lower_bound(m, r, v):
    """The bound exceeds ε exactly when the p-value of the claim ε is below 1 − confidence."""
    bound = one_run_lower_bound(m, r, v, 1e-5)
    for eps in (0.1, 0.5, 1.0, 2.0, 4.0):
        if abs(bound - eps) > 1e-4:
            assert (bound > eps) == (one_run_p_value(m, r, v, eps, 1e-5) < 0.05)


@pytest.mark.parametrize("fp, n_out, fn, n_in", [(0, 100, 0, 100), (5, 100, 5, 100),
                                                 (2, 50, 10, 50), (50, 100, 50, 100),
                                                 (0, 3, 0, 2)])
def test_multi_run_p_value_is_where_the_bound_crosses_the_claim(fp, n_out, fn, n_in):
    for eps in (0.0, 0.5, 1.0, 2.0, 4.0):
        p = multi_run_p_value(fp, n_out, fn, n_in, eps, 1e-5)
        assert 0.0 < p <= 1.0
        bound = multi_run_lower_bound(fp, n_out, fn, n_in, 1e-5)
        if abs(bound - eps) > 1e-4:
            assert (bound > eps) == (p < 0.05)
        if 1e-9 < p < 0.99:  # the smallest 1 − confidence at which the bound exceeds ε
            assert multi_run_lower_bound(fp, n_out, fn, n_in, 1e-5,
                                         confidence=1 - 1.001 * p) > eps
            assert multi_run_lower_bound(fp, n_out, fn, n_in, 1e-5,
                                         confidence=1 - 0.999 * p) <= eps
    assert multi_run_p_value(50, 100, 50, 100, 0.5, 1e-5) == 1.0  # coin flips reject nothing
    assert multi_run_p_value(0, 500, 0, 500, 1.0, 0.0) < 1e-12  # a perfect attack, 1,000 runs


def test_holm_bonferroni_steps_down():
    # sorted: 0.005 <= 0.05/4, 0.01 <= 0.05/3, then 0.03 > 0.05/2 stops
    assert holm_bonferroni([0.01, 0.04, 0.03, 0.005]) == [True, False, False, True]
    assert holm_bonferroni([0.03]) == [True]
    assert holm_bonferroni([0.03] * 40) == [False] * 40
    assert holm_bonferroni([0.03] * 40 + [1e-6]) == [False] * 40 + [True]
    assert holm_bonferroni([]) == []


def test_stored_p_value_of_older_audits():
    old = {"claimed_epsilon": 1.0, "delta": 1e-5, "lower_bound": 2.0, "confidence": 0.95,
           "analysis": "one-run", "attack": "x", "canaries": 100, "guesses": 80, "correct": 75,
           "runs": 1, "failed": True}
    assert stored_p_value(old) == one_run_p_value(100, 80, 75, 1.0, 1e-5)
    assert stored_p_value({**old, "p_value": 0.2}) == 0.2
    # multi-run audits stored only the correct count, not the false positives and negatives
    assert stored_p_value({**old, "analysis": "multi-run", "runs": 80, "canaries": 80}) is None


def test_rare_value_canaries_are_absent_from_private_data(adult_small):
    rng = np.random.default_rng(0)
    private = adult_small.private.head(300)
    canaries, rows = rare_value_canaries(adult_small.schema, private, 10, rng)
    assert len(canaries) == len(rows) == 10
    assert len({(c.column, c.value) for c in canaries}) == 10
    for c in canaries:
        assert not (private[c.column] == c.value).any()
    assert (canary_scores(rows, canaries) >= 1).all()
    assert (canary_scores(private, canaries) == 0).all()


def test_broken_method_is_caught_at_small_epsilon(adult_small):
    for eps in (0.5, 1.0):
        result = audit_run(methods.create("test-noiseless"), adult_small.private, adult_small.schema,
                           Budget(eps, 1e-5), seed=0, options={"n_private": 300})
        assert result.failed and result.lower_bound > 1.5
        assert result.p_value < 1e-3 and result.to_dict()["p_value"] == result.p_value
        assert result.p_value == one_run_p_value(result.canaries, result.guesses, result.correct,
                                                 eps, 1e-5)


@pytest.mark.parametrize("seed", range(4))
def test_real_method_is_never_flagged(adult_small, seed):
    for eps in (1.0, 10.0):
        result = audit_run(methods.create("independent-marginals"), adult_small.private,
                           adult_small.schema, Budget(eps, 1e-5), seed=seed,
                           options={"n_private": 300})
        assert not result.failed, result
        assert result.p_value >= 0.05, result


def test_multi_run_audit_reports_its_p_value(adult_small):
    result = audit_run(methods.create("test-noiseless"), adult_small.private, adult_small.schema,
                       Budget(0.5, 1e-5), seed=0, options={"n_private": 300, "runs": 30})
    assert result.analysis == "multi-run" and result.failed
    assert result.correct == result.runs  # test-noiseless copies every canary
    assert 0.0 < result.p_value < 0.05


def test_suite_audit_column_flags_the_broken_method(tmp_path):
    raw = {
        "name": "audited", "seeds": [0], "epsilons": [1.0], "delta": 1e-5,
        "section": [{
            "dataset": "adult", "dataset_params": {"n_private": 1000, "n_eval": 500},
            "n_samples": 500, "metrics": ["histogram-intersection"], "audit": {"n_private": 300},
            "methods": [{"name": "independent-marginals"}, {"name": "test-noiseless"},
                        {"name": "uniform"}],
        }],
    }
    store = Store(tmp_path / "runs.sqlite")
    Runner(store).run(parse_suite(raw).specs)
    rows = {r.label: r for r in build_tables(store.runs())[0].rows}
    assert rows["test-noiseless"].audit_failed and not rows["test-noiseless"].rankable
    assert "AUDIT-FAILED" in rows["test-noiseless"].display_label
    assert not rows["independent-marginals"].audit_failed
    assert rows["independent-marginals"].cells["audit/eps-lower-bound"].stat.mean <= 1.0
    assert rows["independent-marginals"].cells["histogram-intersection"].rank == 1
    assert rows["uniform"].cells["audit/eps-lower-bound"].empty == "n/a"


def _digits(assets):
    from dparena.datasets import datasets

    return datasets.create("digits").load(assets)


def test_image_audit_catches_a_method_that_copies_images(assets):

    b = _digits(assets)
    m = methods.create("test-copy-images")
    result = audit_run(m, b.private, b.schema, Budget(1.0, 1e-5), seed=0,
                       options={"n_private": 400, "n_samples": 2000, "canaries": 200},
                       private_labels=b.private_labels)
    assert result.analysis == "one-run" and result.guesses == 100
    assert result.correct >= 95  # copied canaries sit at distance ~0, absent ones far away
    assert result.failed and result.lower_bound > 2.0


def test_image_audit_of_a_public_only_generator_finds_nothing(assets):
    from dparena.methods.base import Method
    from dparena.types import Modality, Synthetic

    class Blobs(Method):
        """Reads nothing private: blurry noise images (an honest ε = 1 claim)."""

        modality = Modality.IMAGE

        def generate(self, task, ledger):
            ledger.gaussian("nothing", sigma=10.0, sensitivity=1.0)
            out = task.rng.integers(0, 60, (task.n_samples, *task.schema.shape)).astype(np.uint8)
            return Synthetic(out, labels=np.zeros(task.n_samples, dtype=np.int64))

    b = _digits(assets)
    results = [audit_run(Blobs(), b.private, b.schema, Budget(1.0, 1e-5), seed=s,
                         options={"n_private": 300, "canaries": 100},
                         private_labels=b.private_labels) for s in range(3)]
    assert all(not r.failed for r in results)
    assert max(r.lower_bound for r in results) < 1.0


def test_image_audit_rejects_multi_run_and_needs_labels(assets):

    b = _digits(assets)
    m = methods.create("test-copy-images")
    with pytest.raises(ConfigError, match="one-run"):
        audit_run(m, b.private, b.schema, Budget(1.0, 1e-5), 0, {"runs": 5},
                  private_labels=b.private_labels)
    with pytest.raises(ConfigError, match="labels"):
        audit_run(m, b.private, b.schema, Budget(1.0, 1e-5), 0, {})


def test_nearest_distances_match_brute_force():
    from dparena.harness.audit import nearest_distances

    rng = np.random.default_rng(0)
    q = rng.integers(0, 256, (7, 4, 4, 1)).astype(np.uint8)
    s = rng.integers(0, 256, (2500, 4, 4, 1)).astype(np.uint8)
    brute = np.sqrt(((q.reshape(7, 1, -1).astype(float) - s.reshape(1, 2500, -1)) ** 2)
                    .sum(-1)).min(1)
    assert np.allclose(nearest_distances(q, s, batch=1000), brute)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("method", ["pe-image", "dp-merf"])
def test_image_dp_methods_are_never_flagged(assets, seed, method):
    b = _digits(assets)
    params = {"api": "drawtext", "iterations": 3, "population_sizes": 300} if method == "pe-image" \
        else {}
    m = methods.create(method, **params)
    result = audit_run(m, b.private, b.schema, Budget(10.0, 1e-5), seed=seed,
                       options={"n_private": 400, "n_samples": 300, "canaries": 100},
                       private_labels=b.private_labels)
    assert not result.failed, result


def _reviews(assets):
    from dparena.datasets import datasets

    return datasets.create("rotten-tomatoes", n_private=400, n_eval=20).load(assets)


def test_text_audit_catches_a_method_that_copies_texts(assets):
    b = _reviews(assets)
    m = methods.create("test-copy-texts")
    result = audit_run(m, b.private, b.schema, Budget(1.0, 1e-5), seed=0,
                       options={"n_private": 300, "n_samples": 1500, "canaries": 200},
                       private_labels=b.private_labels)
    assert result.attack.startswith("random pseudo-word") and result.guesses == 100
    assert result.failed and result.lower_bound > 2.0


def test_text_canaries_are_not_words_and_overlap_counts_them():
    from dparena.datasets.schema import TextSchema
    from dparena.harness.audit import text_canaries, word_overlap

    schema = TextSchema(("a", "b"), "review", "a {label} review", max_words=30)
    texts, labels = text_canaries(schema, 5, np.random.default_rng(0))
    assert len(texts) == 5 and all(len(t.split()) == 8 for t in texts) and set(labels) <= {0, 1}
    half = " ".join(texts[0].split()[:4]) + " and some ordinary words"
    assert word_overlap(texts[:2], [half, "nothing here"]).tolist() == [0.5, 0.0]


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
def test_pe_text_is_never_flagged(assets, seed, tmp_path):
    from dparena.lm.tiny import make_tiny_causal_lm

    b = _reviews(assets)
    lm = str(make_tiny_causal_lm(tmp_path / "lm", "llama", seed=0))
    m = methods.create("pe-text", iterations=2, population_sizes=40,
                       api_params={"llm": lm, "mode": "paraphrase", "max_new_tokens": 16})
    result = audit_run(m, b.private, b.schema, Budget(10.0, 1e-5), seed=seed,
                       options={"n_private": 200, "n_samples": 40, "canaries": 40},
                       private_labels=b.private_labels)
    assert not result.failed, result
