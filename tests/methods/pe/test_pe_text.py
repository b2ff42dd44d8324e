"""Aug-PE (`pe-text`): the PE engine on texts, with sentence-embedding votes and an LLM API."""

import numpy as np
import pytest

from dparena.datasets import datasets
from dparena.lm.tiny import make_tiny_causal_lm
from dparena.methods import methods
from dparena.methods.base import Task
from dparena.methods.pe.api import API
from dparena.methods.pe.embeddings import SentenceEmbedder
from dparena.methods.pe.engine import PEConfig, PrivateEvolution
from dparena.privacy import Ledger
from dparena.types import Budget

FOOD = "pizza pasta cheese tomato bread soup salad garlic butter noodles".split()
SPORT = "football goal match team referee stadium striker league coach penalty".split()


class WordBank(API):
    """A public 'simulator' of sentences: random_api mixes words from both topics at random;
    variation_api swaps each word, with probability = degree, for a random word of either topic."""

    name = "word-bank"

    def random_api(self, label, n, rng):
        bank = np.array(FOOD + SPORT)
        return [" ".join(rng.choice(bank, 6)) for _ in range(n)]

    def variation_api(self, samples, labels, degree, rng):
        bank = np.array(FOOD + SPORT)
        out = []
        for text in samples:
            words = [w if rng.random() >= degree else str(rng.choice(bank)) for w in text.split()]
            out.append(" ".join(words))
        return out


def _food_share(texts):
    words = [w for t in texts for w in t.split()]
    return np.mean([w in FOOD for w in words])


@pytest.mark.parametrize(("epsilon", "steered"), [(50.0, True), (0.05, False)])
def test_text_votes_steer_the_population_toward_the_private_topic(epsilon, steered):
    rng = np.random.default_rng(0)
    private = [" ".join(rng.choice(FOOD, 6)) for _ in range(60)]  # private texts are about food
    embedder = SentenceEmbedder()
    config = PEConfig(iterations=4, population_sizes=60, degrees=[0, 0.3, 0.3, 0.2, 0.2])
    engine = PrivateEvolution(WordBank(), embedder, config)
    from dparena.privacy import pe_sigma

    sigma = pe_sigma(epsilon, 4, 1e-5)
    final, labels, _ = engine.run(embedder.embed(private), np.zeros(60, np.int64),
                                  np.array([1.0]), sigma, np.random.default_rng(1), Ledger())
    share = _food_share(list(final))
    if steered:
        assert share > 0.8  # random_api alone gives about 0.5
    else:
        assert share < 0.7


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    return str(make_tiny_causal_lm(tmp_path_factory.mktemp("tiny-lm"), "llama", seed=0))


@pytest.fixture(scope="module")
def reviews(assets):
    return datasets.create("rotten-tomatoes", n_private=40, n_eval=20).load(assets)


def _run(b, tiny_lm, seed, epsilon=4.0, method="pe-text", **kw):
    params = {"api_params": {"llm": tiny_lm, "mode": "mixed", "max_new_tokens": 12}}
    if method == "pe-text":
        params.update(iterations=2, population_sizes=8)
    m = methods.create(method, **params, **kw)
    task = Task(private=b.private, schema=b.schema, budget=Budget(epsilon, 1e-5), n_samples=8,
                seed=seed, private_labels=b.private_labels)
    ledger = Ledger()
    return m.generate(task, ledger), ledger


def test_pe_text_runs_end_to_end_on_a_tiny_lm(reviews, tiny_lm):
    out, ledger = _run(reviews, tiny_lm, seed=3)
    assert len(out.data) == 8 and all(isinstance(t, str) for t in out.data)
    assert sorted(np.bincount(out.labels, minlength=2)) == [4, 4]  # uniform public class sizes
    assert len(ledger) == 2 and ledger.spent(1e-5)[0] <= 4.0 + 1e-9
    again, _ = _run(reviews, tiny_lm, seed=3)
    assert again.data == out.data  # same seed, same texts


def test_public_only_serves_texts_without_reading_private_data(reviews, tiny_lm):
    out, ledger = _run(reviews, tiny_lm, seed=0, method="public-only")
    assert len(out.data) == 8 and len(ledger) == 0
    assert methods.get("public-only").is_dp is False
