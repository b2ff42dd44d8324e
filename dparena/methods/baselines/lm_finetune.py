"""``dp-finetune-lm``: a language model fine-tuned with DP-SGD on the private texts, then sampled.

The "DP-FT-Generator" baseline of Aug-PE (Xie et al., "Differentially Private Synthetic Data via
Foundation Model APIs 2: Text", ICML 2024, Sec. 5; after Yue et al., "Synthetic Text Generation
with Differential Privacy: A Simple and Practical Recipe", ACL 2023): each private text is
conditioned on its class by a prompt made from the PUBLIC schema only (``TextSchema.describe``,
e.g. "a fresh movie review:"), the causal-LM loss is taken on the text tokens (and the end token)
but not on the prompt, and DP-SGD (Abadi et al., CCS 2016) runs through Opacus with the same
training loop as DP-2Stage (:func:`dparena.lm.train.stage2_dp`). Then texts are
sampled per class from the same prompts.

Privacy: DP-SGD is the only read of the private texts and labels; its noise multiplier is
calibrated, before training and from public quantities only (the public dataset size N gives the
sampling rate B/N and the step count), by the accountant that books it (PRV by default, RDP with
``accountant = "rdp"``). Class sizes of the output come from the schema's public
``class_proportions`` (uniform when it has none) or, with ``class_counts = "dp"``, from a
Gaussian-noised label histogram whose σ alone would give (``count_share``·ε, δ); it is composed
with DP-SGD in the same accountant (a Gaussian release is the subsampled Gaussian at rate 1, one
step), DP-SGD's σ calibrated so that the two together stay within (ε, δ).
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from dparena.errors import ConfigError, require
from dparena.lm.loss import IGNORE
from dparena.lm.train import check_training_params
from dparena.methods.base import Method, Task, allocate
from dparena.privacy import Ledger
from dparena.privacy.dpsgd import check_accountant
from dparena.types import Modality, Synthetic

#: models by name; anything else is a local model directory or a hub id (LoRA on all linear layers)
MODELS = ("smollm2", "tiny", "gpt2")
TEXT = 1  # the loss group of text tokens (any group but IGNORE would do: one group is scored)


def prompt_for(schema, label: int) -> str:
    """The conditioning prompt of class ``label``: its public description and a colon."""
    return schema.describe(label) + ":"


def encode_examples(tokenizer, prompts: list[str], texts: list[str], bos_id: int, eos_id: int,
                    max_tokens: int) -> list[tuple[list[int], list[int]]]:
    """Rows ``[bos] + prompt + " " + text + [eos]`` with loss groups: IGNORE on the prompt, TEXT on
    the text and end tokens (each entry is the group of that token as a prediction target).

    The prompt is tokenized on its own, exactly as it is fed at sampling time. Rows longer than
    ``max_tokens`` are cut (then they have no end token).
    """
    p_ids = tokenizer(prompts, add_special_tokens=False)["input_ids"]
    t_ids = tokenizer([" " + t for t in texts], add_special_tokens=False)["input_ids"]
    rows = []
    for p, t in zip(p_ids, t_ids, strict=True):
        ids = [bos_id, *p, *t, eos_id][:max_tokens]
        groups = ([IGNORE] * (1 + len(p)) + [TEXT] * (len(t) + 1))[:max_tokens]
        rows.append((ids, groups))
    return rows


def _load_model(name: str, seed: int, lora_r: int, store):
    """An :class:`dparena.lm.model.LM` for ``name`` (weights drawn from ``seed``)."""
    torch = require("torch", "llm")
    transformers = require("transformers", "llm")
    from dparena.lm.model import LM, PRETRAINED, load_pretrained, lora

    if name in PRETRAINED:
        return load_pretrained(name, seed, store=store, lora_r=lora_r)
    if name == "tiny":
        from dparena.lm.tiny import tiny_folder

        folder, lora_r = tiny_folder("tiny-gpt2", store), 0  # full fine-tuning, no dropout
        extra = {"resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0}
    else:
        folder, extra = name, {}
    try:
        tok = transformers.AutoTokenizer.from_pretrained(folder)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32,
                                                                      **extra)
    except OSError as exc:
        raise ConfigError(f"dp-finetune-lm: cannot load model {name!r} (use one of "
                          f"{', '.join(MODELS)}, a local model directory or a cached hub id)"
                          ) from exc
    eos = tok.eos_token_id
    bos = tok.bos_token_id if tok.bos_token_id is not None else eos
    pad = tok.pad_token_id if tok.pad_token_id is not None else eos
    if lora_r > 0:
        model = lora(model, lora_r, 2 * lora_r, "all-linear", fan_in_fan_out=False)
    positions = getattr(model.config, "max_position_embeddings", None) or getattr(
        model.config, "n_positions", 1024)
    return LM(model, tok, str(name), bos, eos, pad, int(positions))


class DPFinetuneLM(Method):
    """DP-SGD fine-tuning of a causal LM on label-prompted private texts, then sampling per class.

    Aug-PE's DP-FT-Generator baseline: Opacus with Poisson sampling at rate B/N, σ calibrated to
    the PRV accountant (``accountant = "rdp"`` for RDP) jointly with the DP label count; DP-2Stage's
    training loop and sampler. Each text is prefixed by its class's public prompt
    (``TextSchema.describe``, e.g. "a fresh movie review:"); the loss is on the text tokens only.
    ``model = "smollm2"`` (LoRA r = ``lora_r``), ``"tiny"`` (random-init 2-layer GPT-2, full
    fine-tuning), ``"gpt2"`` or a model directory / hub id. Class sizes are public (the schema's
    prior, or uniform) or ``class_counts = "dp"`` (a Gaussian label count taking ``count_share``
    of ε).
    """

    name = "dp-finetune-lm"
    modality = Modality.TEXT
    description = "DP-FT-Generator: LM fine-tuned with DP-SGD on label-prompted texts, then sampled"
    extra = "llm"
    released_info = frozenset({"empty_texts"})  # of the sampled texts: post-processing
    version = "2"  # 2: PRV accountant, public N, histogram composed jointly, no private losses

    def __init__(self, model: str = "smollm2", epochs: int = 2, batch_size: int = 32,
                 physical_batch_size: int = 16, lr: float = 1e-3, max_grad_norm: float = 1.0,
                 accountant: str = "prv", lora_r: int = 8, max_tokens: int = 128,
                 class_counts: str = "uniform", count_share: float = 0.05,
                 temperature: float = 1.0, top_p: float = 0.95,
                 max_new_tokens: int | None = None, gen_batch_size: int = 32, threads: int = 1):
        if not isinstance(model, str) or not model:
            raise ConfigError(f"{self.name}: model must be one of {', '.join(MODELS)}, a model "
                              "directory or a hub id")
        check_training_params(
            self.name, lr=lr, max_grad_norm=max_grad_norm, temperature=temperature, top_p=top_p,
            epochs=epochs, batch_size=batch_size, physical_batch_size=physical_batch_size,
            max_tokens=max_tokens, gen_batch_size=gen_batch_size, threads=threads)
        if max_tokens < 4:
            raise ConfigError(f"{self.name}: max_tokens must be >= 4")
        if class_counts not in ("uniform", "dp"):
            raise ConfigError(f"{self.name}: class_counts must be 'uniform' or 'dp'")
        if not 0.0 < count_share < 1.0:
            raise ConfigError(f"{self.name}: count_share must lie in (0, 1)")
        if max_new_tokens is not None and (not isinstance(max_new_tokens, int)
                                           or max_new_tokens < 1):
            raise ConfigError(f"{self.name}: max_new_tokens must be a positive integer or omitted")
        check_accountant(self.name, accountant)
        if not isinstance(lora_r, int) or lora_r < 0:
            raise ConfigError(f"{self.name}: lora_r must be an integer >= 0 (0 = full fine-tuning)")
        self.model, self.epochs, self.batch_size = model, epochs, batch_size
        self.physical_batch_size, self.lr, self.max_grad_norm = physical_batch_size, lr, max_grad_norm
        self.accountant, self.lora_r, self.max_tokens = accountant, lora_r, max_tokens
        self.class_counts, self.count_share = class_counts, count_share
        self.temperature, self.top_p = temperature, top_p
        self.max_new_tokens, self.gen_batch_size, self.threads = (max_new_tokens, gen_batch_size,
                                                                  threads)

    # ------------------------------------------------------------------ privacy of class sizes
    def _class_sizes(self, task: Task, labels: np.ndarray, ledger: Ledger,
                     sigma: float | None) -> tuple[np.ndarray, dict[str, Any]]:
        schema = task.schema
        if self.class_counts == "uniform":
            p = (np.asarray(schema.class_proportions, dtype=np.float64)
                 if schema.class_proportions is not None
                 else np.full(schema.num_classes, 1.0 / schema.num_classes))
            return allocate(task.n_samples, p), {"class_sizes": "public"}
        counts = np.bincount(labels, minlength=schema.num_classes)
        ledger.gaussian("dp-finetune-lm class counts (noisy private label histogram)",
                        sigma=sigma, sensitivity=1.0)
        noisy = np.maximum(counts + task.noise.normal(0.0, sigma, schema.num_classes), 0.0)
        return allocate(task.n_samples, noisy), {"class_sizes": "dp", "count_sigma": sigma}

    # ------------------------------------------------------------------ run
    def generate(self, task: Task, ledger: Ledger) -> Synthetic:
        torch = require("torch", "llm")
        require("opacus", "llm")
        if task.private_labels is None:
            raise ConfigError(f"{self.name} needs labelled private texts (private_labels)")
        if not task.budget.is_private or task.budget.delta <= 0:
            raise ConfigError(f"{self.name} needs a finite epsilon and delta > 0 (DP-SGD)")
        texts, labels = task.schema.conform(task.private, task.private_labels, "private data")
        seeds = task.rng.integers(0, 2**31 - 1, 4)
        prev = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:  # dropout or a library's stray draw never touches (or depends on) the global RNG
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(int(seeds[3]))
                return self._run(task, ledger, texts, np.asarray(labels, np.int64), seeds)
        finally:
            torch.set_num_threads(prev)

    def _run(self, task, ledger, texts, labels, seeds) -> Synthetic:
        torch = require("torch", "llm")
        from dparena.assets import AssetStore
        from dparena.lm.sample import generate
        from dparena.lm.train import stage2_dp
        from dparena.privacy.dpsgd import book_dp_sgd, plan_with_histogram

        schema = task.schema
        plan, sigma_count = plan_with_histogram(
            task, self.name, share=self.count_share if self.class_counts == "dp" else None,
            batch_size=self.batch_size, epochs=self.epochs, accountant=self.accountant)
        sizes, info = self._class_sizes(task, labels, ledger, sigma_count)

        t0 = time.monotonic()
        lm = _load_model(self.model, int(seeds[0]), self.lora_r, AssetStore())
        info.update({"model": self.model, "load_s": time.monotonic() - t0,
                     "trainable_params": sum(p.numel() for p in lm.model.parameters()
                                             if p.requires_grad)})
        t1 = time.monotonic()
        rows = encode_examples(lm.tokenizer, [prompt_for(schema, int(c)) for c in labels], texts,
                               lm.bos_id, lm.eos_id, min(self.max_tokens, lm.max_positions))
        steps = stage2_dp(lm.model, rows, lm.pad_id, plan=plan, epochs=self.epochs,
                          physical_batch_size=self.physical_batch_size, lr=self.lr,
                          max_grad_norm=self.max_grad_norm, alpha=-1.0, seed=int(seeds[1]),
                          noise=task.noise, on_step=lambda k, n: task.report("DP-SGD step", k, n))
        book_dp_sgd(ledger, plan, steps, "DP-SGD on label-prompted texts", self.max_grad_norm)
        info.update({"train_s": time.monotonic() - t1, "accountant": plan.accountant,
                     "noise_multiplier": plan.noise_multiplier, "sample_rate": plan.sample_rate,
                     "dp_steps": steps})

        t2 = time.monotonic()
        out_labels = np.concatenate([np.full(int(n), c, dtype=np.int64)
                                     for c, n in enumerate(sizes)])
        prompts = [prompt_for(schema, int(c)) for c in out_labels]
        new_tokens = self.max_new_tokens or math.ceil(1.5 * schema.max_words) + 1
        gen = torch.Generator().manual_seed(int(seeds[2]))
        full = generate(lm, prompts, temperature=self.temperature, top_p=self.top_p,
                        batch_size=self.gen_batch_size, max_new_tokens=new_tokens, generator=gen)
        out = [schema.truncate(t[len(p):]) for t, p in zip(full, prompts, strict=True)]
        info.update({"generate_s": time.monotonic() - t2, "max_new_tokens": new_tokens,
                     "empty_texts": sum(not t for t in out)})
        return Synthetic(data=out, labels=out_labels, info=info)
