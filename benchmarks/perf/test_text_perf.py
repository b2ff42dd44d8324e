"""Text generation and embedding throughput.

* generation tokens/s of the transformers backend, batched (8 prompts per forward) vs one prompt
  at a time, on a tiny random-init Llama and on the SmolLM2-135M-Instruct asset (skipped when
  ``DPARENA_BENCH_SKIP_SMOLLM2`` is set); the ratio batched / unbatched is the point;
* the same batched generation through transformers' own ``generate`` (nucleus sampling, global
  RNG) as the reference for our seeded per-prompt sampling loop: the ratio ours / reference;
* sentence-embedding throughput (texts/s) of all-MiniLM-L6-v2 on Rotten Tomatoes reviews.

Run: ``OMP_NUM_THREADS=1 pytest benchmarks/perf/test_text_perf.py --benchmark-only -s``.
"""

import os
import time

import numpy as np
import pytest

from dparena import torch_utils

torch = pytest.importorskip("torch")

PROMPTS = [f"Write a short movie review of a {genre} film. Reply with the review only."
           for genre in ("comedy", "drama", "horror", "western", "musical", "war", "crime",
                         "fantasy", "mystery", "romance", "thriller", "family", "sports",
                         "history", "animation", "documentary")]
RESULTS: dict[str, float] = {}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    with torch_utils.one_thread(torch):
        yield


def _models(tmp_path_factory):
    from dparena.lm.tiny import make_tiny_causal_lm

    out = {"tiny-llama": (str(make_tiny_causal_lm(tmp_path_factory.mktemp("tiny"), "llama",
                                                   hidden=128, layers=4)), 32)}
    if not os.environ.get("DPARENA_BENCH_SKIP_SMOLLM2"):
        out["smollm2"] = ("smollm2", 32)
    return out


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return _models(tmp_path_factory)


@pytest.mark.parametrize("model", ["tiny-llama", "smollm2"])
@pytest.mark.parametrize("batch_size", [1, 8])
def test_generation_tokens_per_second(benchmark, models, model, batch_size):
    from dparena.llm import load_llm

    if model not in models:
        pytest.skip("DPARENA_BENCH_SKIP_SMOLLM2 is set")
    path, new_tokens = models[model]
    lm = load_llm(path, batch_size=batch_size)
    prompts = PROMPTS if model == "tiny-llama" else PROMPTS[:8]

    def run():
        lm.tokens_generated, lm.seconds = 0, 0.0
        lm.generate(prompts, temperature=1.0, top_p=0.95, max_new_tokens=new_tokens,
                    rng=np.random.default_rng(0))
        return lm.tokens_generated / lm.seconds

    tps = benchmark.pedantic(run, rounds=3, iterations=1)
    RESULTS[f"{model}/b{batch_size}"] = tps
    benchmark.extra_info["tokens_per_s"] = tps
    print(f"\n{model} batch {batch_size}: {tps:.0f} tokens/s")
    other = RESULTS.get(f"{model}/b{1 if batch_size == 8 else 8}")
    if other:
        b8 = tps if batch_size == 8 else other
        b1 = other if batch_size == 8 else tps
        benchmark.extra_info["batched_over_unbatched"] = b8 / b1
        print(f"{model}: batched / unbatched tokens/s = {b8 / b1:.2f}x")


@pytest.mark.parametrize("model", ["tiny-llama", "smollm2"])
def test_generation_reference_transformers_generate(benchmark, models, model):
    from dparena.llm import load_llm

    if model not in models:
        pytest.skip("DPARENA_BENCH_SKIP_SMOLLM2 is set")
    path, new_tokens = models[model]
    lm = load_llm(path, batch_size=8)
    prompts = PROMPTS if model == "tiny-llama" else PROMPTS[:8]
    batches = [prompts[i: i + 8] for i in range(0, len(prompts), 8)]
    encoded = [lm.tokenizer([lm.render(p) for p in batch], return_tensors="pt", padding=True,
                            add_special_tokens=not lm.use_chat) for batch in batches]

    def run():
        start, tokens = time.perf_counter(), 0
        with torch.inference_mode():
            for enc in encoded:
                out = lm.model.generate(**enc, do_sample=True, top_p=0.95, temperature=1.0,
                                        max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                                        pad_token_id=lm.tokenizer.pad_token_id)
                tokens += (out.shape[1] - enc["input_ids"].shape[1]) * out.shape[0]
        return tokens / (time.perf_counter() - start)

    tps = benchmark.pedantic(run, rounds=3, iterations=1)
    benchmark.extra_info["tokens_per_s"] = tps
    print(f"\n{model} transformers.generate batch 8: {tps:.0f} tokens/s")
    ours = RESULTS.get(f"{model}/b8")
    if ours:
        benchmark.extra_info["ours_over_generate"] = ours / tps
        print(f"{model}: our loop / transformers.generate tokens/s = {ours / tps:.2f}x")


@pytest.mark.parametrize("batch_size", [16, 64])
def test_embedding_texts_per_second(benchmark, batch_size):
    from dparena.assets import AssetStore
    from dparena.datasets import datasets
    from dparena.embeddings.text import embed_texts

    assets = AssetStore()
    texts = datasets.create("rotten-tomatoes", n_private=512, n_eval=2).load(assets).private
    embed_texts(texts[:8], assets)  # load the model outside the timing
    benchmark.pedantic(embed_texts, args=(texts, assets, batch_size), rounds=3, iterations=1)
    rate = len(texts) / benchmark.stats.stats.median
    benchmark.extra_info["texts_per_s"] = rate
    print(f"\nall-MiniLM-L6-v2, batch {batch_size}: {rate:.0f} texts/s")
