"""dp-finetune-lm: DP-SGD fine-tuning of a (tiny, random-init GPT-2) LM on label-prompted texts."""


import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("opacus")
pytest.importorskip("transformers")

from dparena.datasets import datasets  # noqa: E402
from dparena.datasets.schema import TextSchema  # noqa: E402
from dparena.errors import ConfigError  # noqa: E402
from dparena.harness.suite import load_suite  # noqa: E402
from dparena.lm.loss import collate, token_ce, weighted_loss  # noqa: E402
from dparena.methods import methods  # noqa: E402
from dparena.methods.base import Task  # noqa: E402
from dparena.methods.baselines.lm_finetune import (  # noqa: E402
    IGNORE,
    _load_model,
    encode_examples,
    prompt_for,
)
from dparena.privacy import Ledger  # noqa: E402
from dparena.types import Budget  # noqa: E402
from tests.paths import ROOT  # noqa: E402

FAST = dict(model="tiny", epochs=1, batch_size=16, physical_batch_size=16, max_new_tokens=12,
            max_tokens=64)


@pytest.fixture(scope="module")
def reviews(assets):
    return datasets.create("rotten-tomatoes", n_private=64, n_eval=16).load(assets)


def _task(b, seed=0, epsilon=4.0, labels=None, n=10):
    return Task(private=b.private, schema=b.schema, budget=Budget(epsilon, 1e-5), n_samples=n,
                seed=seed, private_labels=b.private_labels if labels is None else labels,
                public_size=len(b.private))  # the size the test declares


def test_books_prv_dp_sgd_within_target_and_returns_labelled_texts(reviews):
    ledger = Ledger()
    syn = methods.create("dp-finetune-lm", **FAST).generate(_task(reviews), ledger)
    assert [e.mechanism for e in ledger.entries] == ["dp-sgd"]
    sgd = ledger.entries[0]
    assert sgd.accountant == "prv" and sgd.steps == 4  # 1 epoch of Poisson batches, q = 16/64
    eps, delta = ledger.spent(1e-5)
    assert 4.0 * 0.99 <= eps <= 4.0 + 1e-9 and delta == 1e-5
    assert syn.info["noise_multiplier"] == sgd.noise_multiplier
    assert not any("loss" in k for k in syn.info)  # no un-noised loss of a private batch
    assert len(syn.data) == 10 and all(isinstance(t, str) for t in syn.data)
    # rotten-tomatoes has no public class prior: uniform class sizes
    assert syn.labels.tolist() == [0] * 5 + [1] * 5
    assert all(len(t.split()) <= reviews.schema.max_words for t in syn.data)


def test_same_seed_same_texts_other_seed_other_texts(reviews):
    m = methods.create("dp-finetune-lm", **FAST)
    torch.manual_seed(123)
    a = m.generate(_task(reviews, seed=3), Ledger())
    torch.manual_seed(456)  # the global torch generator must not matter ...
    b = m.generate(_task(reviews, seed=3), Ledger())
    state = torch.random.get_rng_state()
    c = m.generate(_task(reviews, seed=4), Ledger())
    assert torch.equal(state, torch.random.get_rng_state())  # ... nor be advanced
    assert a.data == b.data
    assert a.data != c.data


def test_class_sizes_never_read_for_free_and_dp_counts_are_booked(reviews):
    skewed = np.zeros(len(reviews.private), dtype=np.int64)  # every private text is class 0
    uniform = methods.create("dp-finetune-lm", **FAST).generate(
        _task(reviews, labels=skewed), Ledger())
    assert np.bincount(uniform.labels).tolist() == [5, 5]  # public (uniform), not the private 10:0
    ledger = Ledger()
    dp = methods.create("dp-finetune-lm", class_counts="dp", count_share=0.5, **FAST).generate(
        _task(reviews, labels=skewed, epsilon=50.0), ledger)
    assert sorted(e.mechanism for e in ledger.entries) == ["dp-sgd", "gaussian"]
    assert ledger.accountant() == "PRV"  # the count and DP-SGD composed in one accountant
    eps, delta = ledger.spent(1e-5)
    assert eps <= 50.0 + 1e-9 and delta == 1e-5
    assert np.bincount(dp.labels, minlength=2)[0] >= 9  # the noisy count follows the private one


def test_prompts_come_from_public_label_names_and_loss_skips_them():
    schema = TextSchema(("upbeat", "gloomy"), domain="diary entry",
                        label_prompt="an {label} diary entry", max_words=20)
    assert prompt_for(schema, 1) == "an gloomy diary entry:"
    lm = _load_model("tiny", seed=0, lora_r=0, store=None)
    texts = ["today the sun came out", "rain again and again"]
    rows = encode_examples(lm.tokenizer, [prompt_for(schema, c) for c in (0, 1)], texts,
                           lm.bos_id, lm.eos_id, max_tokens=512)
    for (ids, groups), label, text in zip(rows, (0, 1), texts, strict=True):
        p = lm.tokenizer(prompt_for(schema, label), add_special_tokens=False)["input_ids"]
        t = lm.tokenizer(" " + text, add_special_tokens=False)["input_ids"]
        assert ids == [lm.bos_id, *p, *t, lm.eos_id]
        assert groups[: 1 + len(p)] == [IGNORE] * (1 + len(p))
        assert IGNORE not in groups[1 + len(p):]
    # the batch loss is the mean token CE over text and end tokens only (prompt tokens excluded)
    ids, mask, pos, groups = collate(rows, lm.pad_id)
    with torch.no_grad():
        logits = lm.model(input_ids=ids, attention_mask=mask, position_ids=pos).logits
        per_row = weighted_loss(logits, ids, groups, alpha=-1.0)
        ce = token_ce(logits, ids)
    for i, (row_ids, _) in enumerate(rows):
        n_prompt = len(lm.tokenizer(prompt_for(schema, i), add_special_tokens=False)["input_ids"])
        # target j predicts token j + 1; text targets start at token 1 + n_prompt
        by_hand = ce[i, n_prompt: len(row_ids) - 1].mean()
        assert float(per_row[i]) == pytest.approx(float(by_hand), rel=1e-6)


def test_encode_cuts_long_rows():
    lm = _load_model("tiny", seed=0, lora_r=0, store=None)
    (ids, groups), = encode_examples(lm.tokenizer, ["a review:"], ["word " * 50], lm.bos_id,
                                     lm.eos_id, max_tokens=16)
    assert len(ids) == len(groups) == 16 and ids[-1] != lm.eos_id


@pytest.mark.parametrize("bad", [dict(epochs=0), dict(top_p=0.0), dict(class_counts="private"),
                                 dict(lora_r=-1), dict(max_new_tokens=0), dict(model="")])
def test_bad_parameters_are_config_errors(bad):
    with pytest.raises(ConfigError):
        methods.create("dp-finetune-lm", **bad)


def test_unloadable_model_is_one_config_error(reviews, tmp_path):
    m = methods.create("dp-finetune-lm", **{**FAST, "model": str(tmp_path / "no-such-model")})
    with pytest.raises(ConfigError, match="cannot load model"):
        m.generate(_task(reviews), Ledger())


def test_unlabelled_or_infinite_budget_is_refused(reviews):
    m = methods.create("dp-finetune-lm", **FAST)
    task = Task(private=reviews.private, schema=reviews.schema, budget=Budget(4.0, 1e-5),
                n_samples=4, seed=0)
    with pytest.raises(ConfigError, match="labelled"):
        m.generate(task, Ledger())
    with pytest.raises(ConfigError, match="finite epsilon"):
        m.generate(_task(reviews, epsilon=float("inf")), Ledger())


def test_quick_suite_text_section_parses():
    suite = load_suite(ROOT / "benchmarks" / "suites" / "quick.toml")
    text = [s for s in suite.specs if s.dataset == "rotten-tomatoes"]
    names = {s.method for s in text}
    assert names == {"pe-text", "public-only", "dp-finetune-lm", "real"}
    eps = {s.epsilon for s in text if s.method in ("pe-text", "dp-finetune-lm")}
    assert eps == {1.0, 10.0}
    wanted = {"embedding-fid", "mauve", "precision-recall", "downstream-accuracy"}
    assert all(set(s.metrics) == wanted for s in text)


def test_text_cpu_suite_parses():
    suite = load_suite(ROOT / "benchmarks" / "suites" / "text-cpu.toml")
    assert {s.method for s in suite.specs} == {"pe-text", "public-only", "dp-finetune-lm", "real"}


def test_paper_augpe_suite_builds_its_methods():
    """The suite's dataset (hub Yelp) is not here, so check its methods and schedules only."""
    import tomllib

    raw = tomllib.loads((ROOT / "benchmarks" / "suites" / "paper-augpe.toml").read_text())
    assert raw["epsilons"] == [1.0, 2.0, 4.0] and raw["delta"] == "1/(n*ln(n))"
    (section,) = raw["section"]
    assert section["dataset"] == "yelp"
    built = {m["name"]: methods.create(m["name"], **m.get("params", {}))
             for m in section["methods"]}
    pe = built["pe-text"]._config(section["n_samples"])
    assert pe.iterations == 10 and pe.population_sizes[-1] == 5000
    assert built["dp-finetune-lm"].model == "gpt2"


@pytest.mark.slow
def test_dp_finetuning_learns_label_conditioned_text_at_large_epsilon():
    """Two classes with one fixed sentence each: at a large ε the tiny model learns to write the
    sentence of the prompted class (the label conditioning works end to end)."""
    schema = TextSchema(("sunny", "rainy"), domain="weather report",
                        label_prompt="a {label} weather report", max_words=10)
    sentences = ("warm sun all day", "cold rain all night")
    labels = np.arange(128) % 2
    private = [sentences[c] for c in labels]
    m = methods.create("dp-finetune-lm", model="tiny", epochs=20, batch_size=32,
                       physical_batch_size=32, lr=1e-2, max_new_tokens=24, temperature=0.3)
    task = Task(private=private, schema=schema, budget=Budget(1e4, 1e-5), n_samples=20, seed=0,
                private_labels=labels, public_size=128)
    syn = m.generate(task, Ledger())
    hits = [sentences[c] in t for t, c in zip(syn.data, syn.labels, strict=True)]
    assert np.mean(hits) > 0.5


def test_load_llm_tiny_names_the_shared_tiny_models():
    from dparena.llm import load_llm
    from dparena.lm.tiny import tiny_folder

    assert tiny_folder("tiny") == tiny_folder("tiny") != tiny_folder("tiny-gpt2")
    with pytest.raises(ConfigError):
        tiny_folder("huge")
    llm = load_llm("tiny")
    a = llm.generate(["Write a review."], max_new_tokens=4, rng=np.random.default_rng(0))
    b = llm.generate(["Write a review."], max_new_tokens=4, rng=np.random.default_rng(0))
    assert a == b and len(a) == 1 and isinstance(a[0], str)
