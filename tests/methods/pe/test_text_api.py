"""Aug-PE's text APIs over a real (tiny, random-init) language model."""

import numpy as np
import pytest

from dparena.datasets.text import RottenTomatoes
from dparena.errors import ConfigError
from dparena.methods.pe.api import API
from dparena.methods.pe.apis.text import BLANK, TONES, LLMTextAPI, blank_words

torch = pytest.importorskip("torch")
SCHEMA = RottenTomatoes.schema
SAMPLES = ["A warm, funny and thoughtful film about growing up in a small town.",
           "The plot is thin and the jokes fall flat, although the cast tries hard.",
           "Too long by half."]


@pytest.fixture(scope="module")
def lm(tmp_path_factory):
    from dparena.llm import load_llm
    from dparena.lm.tiny import make_tiny_causal_lm

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield load_llm(str(make_tiny_causal_lm(tmp_path_factory.mktemp("tiny"), "llama")),
                   batch_size=8)
    torch.set_num_threads(before)


def test_random_prompts_use_only_public_knowledge(lm):
    api = LLMTextAPI(lm, SCHEMA)
    assert isinstance(api, API)
    prompts = api.random_prompts(1, 50, np.random.default_rng(0))
    assert all("a rotten movie review" in p and "fresh" not in p for p in prompts)
    # diversity: subtopics (public film genres) and personas vary between prompts
    genres = {g for p in prompts for g in SCHEMA.subtopics if f"Subject: {g}." in p}
    assert len(genres) >= 10 and len(set(prompts)) >= 40
    assert prompts == api.random_prompts(1, 50, np.random.default_rng(0))
    with pytest.raises(ConfigError, match="label 2"):
        api.random_prompts(2, 1, np.random.default_rng(0))


def test_blanks_hit_about_p_of_the_words():
    rng = np.random.default_rng(0)
    text = " ".join(f"w{i}" for i in range(20_000))
    for p in (0.0, 0.3, 0.8, 1.0):
        masked, mask = blank_words(text, p, rng)
        words = masked.split()
        assert len(words) == 20_000 and mask.sum() == sum(w == BLANK for w in words)
        assert abs(mask.mean() - p) < 0.015  # binomial sd <= 0.0036
        kept = [w for w, m in zip(words, mask, strict=True) if not m]
        assert kept == [f"w{i}" for i in np.flatnonzero(~mask)]  # unblanked words unchanged


def test_variation_prompts_follow_the_degree_schedule(lm):
    fill = LLMTextAPI(lm, SCHEMA, mode="fill-in-blanks", temperature=0.9, word_count_std=0.0)
    prompts, temps, targets = fill.variation_prompts(SAMPLES, np.array([0, 1, 1]), 0.5,
                                                     np.random.default_rng(3))
    assert temps == [0.9] * 3 and targets == [13, 14, 5]  # no length noise; min_words = 5
    assert "a fresh movie review" in prompts[0] and "a rotten movie review" in prompts[1]
    assert all(BLANK in p for p in prompts[:2])
    para = LLMTextAPI(lm, SCHEMA, mode="paraphrase", paraphrase_temperatures=(0.5, 1.5))
    for degree, expected in ((0.0, 0.5), (0.5, 1.0), (1.0, 1.5)):
        prompts, temps, _ = para.variation_prompts(SAMPLES, np.zeros(3, int), degree,
                                                   np.random.default_rng(0))
        assert temps == [expected] * 3
        assert all(any(tone in p for tone in TONES) and s in p
                   for p, s in zip(prompts, SAMPLES, strict=True))
    mixed = LLMTextAPI(lm, SCHEMA, mode="mixed")
    prompts, _, _ = mixed.variation_prompts(SAMPLES * 20, np.zeros(60, int), 0.5,
                                            np.random.default_rng(0))
    n_fill = sum("blanks" in p for p in prompts)
    assert 15 < n_fill < 45


def test_target_lengths_vary_around_the_original():
    api = LLMTextAPI(None, SCHEMA, word_count_std=4.0, min_words=1)  # type: ignore[arg-type]
    rng = np.random.default_rng(0)
    text = " ".join(["word"] * 30)
    targets = np.array([api.target_words(text, rng) for _ in range(2000)])
    assert abs(targets.mean() - 30) < 0.5 and 3.5 < targets.std() < 4.5
    assert targets.max() <= SCHEMA.max_words


def test_degrees_are_validated(lm):
    api = LLMTextAPI(lm, SCHEMA)
    api.validate_degrees([1.0, 0.8, 0.5, 0.0])
    for bad in ([1.2], [-0.1], [float("nan")], ["high"]):
        with pytest.raises(ConfigError, match=r"\[0, 1\]"):
            api.validate_degrees(bad)
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        api.variation_api(SAMPLES, np.zeros(3, int), 1.5, np.random.default_rng(0))
    with pytest.raises(ConfigError, match="variation mode"):
        LLMTextAPI(lm, SCHEMA, mode="shuffle")


def test_apis_generate_through_the_model_deterministically(lm):
    api = LLMTextAPI(lm, SCHEMA, mode="mixed", max_new_tokens=24)
    fresh = api.random_api(0, 5, np.random.default_rng(0))
    assert len(fresh) == 5 and all(isinstance(t, str) for t in fresh)
    assert fresh == api.random_api(0, 5, np.random.default_rng(0))
    var = api.variation_api(SAMPLES, np.array([0, 1, 1]), 0.6, np.random.default_rng(1))
    assert len(var) == 3 and var != SAMPLES
    assert var == api.variation_api(SAMPLES, np.array([0, 1, 1]), 0.6, np.random.default_rng(1))
    assert all(len(t.split()) <= SCHEMA.max_words for t in fresh + var)


@pytest.mark.slow
def test_variation_degree_controls_distance_with_a_real_instruct_model(assets):
    """With a real instruction-tuned LM (the SmolLM2-135M-Instruct asset), paraphrases at a low degree stay closer to their source, in MiniLM embedding
    space, than paraphrases at a high degree, which stay closer than fresh random_api texts."""
    from dparena.datasets import datasets
    from dparena.embeddings.text import embed_texts
    from dparena.llm import load_llm

    path = "smollm2"
    torch.set_num_threads(1)
    b = datasets.create("rotten-tomatoes", n_private=200, n_eval=50).load(assets)
    src, lab = b.eval[:12], b.eval_labels[:12]
    api = LLMTextAPI(load_llm(path, batch_size=8), b.schema, mode="paraphrase", temperature=0.8,
                     top_p=0.95)
    e_src = embed_texts(src, assets)

    def closeness(texts):
        return float(np.mean(np.sum(embed_texts(texts, assets) * e_src, axis=1)))

    near = closeness(api.variation_api(src, lab, 0.1, np.random.default_rng(1)))
    far = closeness(api.variation_api(src, lab, 0.9, np.random.default_rng(1)))
    fresh = closeness(api.random_api(0, 12, np.random.default_rng(2)))
    assert near > far > fresh - 0.05 and near > fresh + 0.2
