"""DP-2Stage costs: one DP-SGD step (Opacus, per-sample gradients + clipping + noise) vs the same
step without DP, for the tiny GPT-2 and for SmolLM2-135M + LoRA; and generation throughput.

Each ratio compares two measurements taken in the same session on the same batch (32 Adult rows
serialized "great"; SmolLM2 at 8 rows, its physical batch on 2 cores). Run:
``pytest benchmarks/perf/test_dp2stage_perf.py --benchmark-only -s``.
"""

import warnings

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("opacus")

from dparena.datasets.adult import SCHEMA  # noqa: E402
from dparena.lm.loss import collate, weighted_loss  # noqa: E402
from dparena.lm.sample import generate  # noqa: E402
from dparena.methods.dp2stage.lm import load_lm  # noqa: E402
from dparena.methods.dp2stage.serialize import Serializer  # noqa: E402
from dparena.methods.dp2stage.tokens import encode  # noqa: E402

torch.set_num_threads(1)
RESULTS: dict[str, float] = {}


def _batch(lm, frame, n):
    ser = Serializer(SCHEMA, "great")
    texts = [ser.serialize(r) for r in frame.head(n).to_dict("records")]
    rows = encode(lm.tokenizer, [t for t, _ in texts], [s for _, s in texts], lm.bos_id, lm.eos_id)
    return collate(rows, lm.pad_id)


def _steps(lm, batch, private: bool):
    """A closure doing one optimizer step on ``batch``, plain or through Opacus."""
    from opacus import PrivacyEngine

    model = lm.model
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4)
    ids, mask, pos, groups = batch
    module = model
    if private:
        engine = PrivacyEngine(accountant="rdp")
        loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(ids), batch_size=8)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            module, opt, _ = engine.make_private(
                module=model, optimizer=opt, data_loader=loader, noise_multiplier=1.0,
                max_grad_norm=1.0, poisson_sampling=False)

    def step():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            logits = module(input_ids=ids, attention_mask=mask, position_ids=pos).logits
            weighted_loss(logits, ids, groups, 0.65).mean().backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

    return step, module


def _compare(benchmark, config, title, lm, batch, private):
    """Time one step of ``config``; the DP run also reports its ratio to the plain run's time."""
    step, module = _steps(lm, batch, private)
    step()  # warm-up
    benchmark.pedantic(step, rounds=5, iterations=1)
    RESULTS[f"{config}-{private}"] = benchmark.stats.stats.median
    if private:
        module._close()
        if f"{config}-False" in RESULTS:
            plain, dp = RESULTS[f"{config}-False"], RESULTS[f"{config}-True"]
            benchmark.extra_info["dp_over_plain"] = dp / plain
            print(f"\n{title}: DP-SGD / plain step = {dp / plain:.2f}x "
                  f"({plain:.3f} s -> {dp:.3f} s)")


@pytest.fixture(scope="module")
def tiny_lm():
    return load_lm("tiny", SCHEMA, seed=0)


@pytest.fixture(scope="module")
def adult_rows():
    from dparena.assets import AssetStore
    from dparena.datasets import datasets

    return datasets.create("adult", n_private=64, n_eval=2).load(AssetStore()).private


@pytest.mark.parametrize("private", [False, True], ids=["plain", "dp"])
def test_tiny_step(benchmark, tiny_lm, adult_rows, private):
    _compare(benchmark, "tiny", "tiny GPT-2 (batch 32)", tiny_lm, _batch(tiny_lm, adult_rows, 32),
             private)


@pytest.fixture(scope="module")
def smol_lm():
    return load_lm("smollm2", SCHEMA, seed=0, lora_r=8)


@pytest.mark.parametrize("private", [False, True], ids=["plain", "dp"])
def test_smollm2_lora_step(benchmark, smol_lm, adult_rows, private):
    _compare(benchmark, "smol", "SmolLM2-135M + LoRA r=8 (batch 8)", smol_lm,
             _batch(smol_lm, adult_rows, 8), private)


def test_tiny_generation_rows_per_second(benchmark, tiny_lm):
    ser = Serializer(SCHEMA, "great")
    prompts = [ser.prompt("income", "<=50K")] * 150

    def run():
        return generate(tiny_lm, prompts, batch_size=150, max_new_tokens=110,
                        generator=torch.Generator().manual_seed(0))

    out = benchmark.pedantic(run, rounds=3, iterations=1)
    assert len(out) == 150
    rate = 150 / benchmark.stats.stats.median
    benchmark.extra_info["rows_per_s"] = rate
    print(f"\ntiny generation: {rate:.0f} rows/s (batch 150, <= 110 new tokens)")


def test_smollm2_generation_rows_per_second(benchmark, smol_lm):
    ser = Serializer(SCHEMA, "great")
    prompts = [ser.prompt("income", "<=50K")] * 8

    def run():
        return generate(smol_lm, prompts, batch_size=8, max_new_tokens=64,
                        generator=torch.Generator().manual_seed(0))

    benchmark.pedantic(run, rounds=2, iterations=1)
    rate = 8 / benchmark.stats.stats.median
    benchmark.extra_info["rows_per_s"] = rate
    print(f"\nSmolLM2+LoRA generation: {rate:.2f} rows/s (batch 8, 64 new tokens)")
