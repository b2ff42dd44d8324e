"""The registered methods ``dp2stage`` and ``dp-standard``.

DP-2Stage (Afonja et al., arXiv 2412.02467, §3): stage 1 fine-tunes a pre-trained LM without
privacy on pseudo data (``uniform`` draws from the public schema, or an out-of-distribution public
table ``ood``) so it learns the serialization format; stage 2 fine-tunes on the private rows with
DP-SGD and the weighted loss (α on value tokens). DP-Standard is stage 2 alone.

Defaults follow the authors' scripts (github.com/tejuafonja/DP-2Stage, scripts/experiments/GPT2):
stage 1 with plain cross-entropy (``stage1_loss="ce"``; their stage-1 config sets
``WEIGHTED_LOSS=-1``), stage 2 with α = 0.65 (``WEIGHTED_LOSS=0.65``); a linear learning-rate
decay (``LR_SCHEDULER_TYPE=linear``; here per optimiser step, see :mod:`dparena.lm.train`); a
fixed column order of the target then the other columns sorted by name (ft_opacus.py
``get_dataset``); sampling at temperature 0.7, top-p 1 (GPT2.sh), rejection sampling until n rows
are valid.

Privacy: stage 2 is the only read of private rows besides the optional DP count of the prompt
column. With ``prompt_dist="dp"`` the prompt column's histogram over public categories/bins is a
Gaussian mechanism whose σ alone would give (``prompt_share``·ε, δ); DP-SGD's noise multiplier is
then calibrated so that both, composed together in the run's accountant (PRV by default, RDP
with ``accountant="rdp"``; the histogram is the subsampled Gaussian at rate 1 for one step), stay
within (ε, δ) — no δ is split and no ε is lost to basic composition. With
``prompt_dist="public"`` the prompt value is uniform over the public schema and DP-SGD gets the
whole (ε, δ). Sampling rate and step count come from the public dataset size N
(``Task.public_size``). The text of the tiny tokenizer and all pseudo data are public.
"""

from __future__ import annotations

import math
import time
from typing import ClassVar

import numpy as np
import pandas as pd

from dparena.datasets.schema import Categorical
from dparena.errors import ConfigError, require
from dparena.lm.model import trainable_parameters
from dparena.lm.sample import generate
from dparena.lm.train import (
    LR_SCHEDULES,
    STAGE1_LOSSES,
    check_accountant,
    check_training_params,
)
from dparena.methods.base import Method, Task
from dparena.methods.dp2stage.lm import MODELS, load_lm
from dparena.methods.dp2stage.pseudo import pseudo_table
from dparena.methods.dp2stage.serialize import FORMATS, ORDERS, Serializer, column_orders
from dparena.methods.dp2stage.tokens import LMScorer, encode
from dparena.methods.tabular import Domain, sample_from_counts
from dparena.privacy import Ledger
from dparena.types import Modality, Synthetic

# Importing this module means the method is about to run: load the LM stack now, so a runner that
# imports method classes before forking its workers pays for it once (not once per run).
for _module in ("torch", "transformers", "opacus", "peft"):
    require(_module, "llm")


class DP2Stage(Method):
    """DP-2Stage: non-private stage 1 on pseudo data, then DP-SGD stage 2 on the private rows."""

    modality = Modality.TABULAR
    description = "DP-2Stage: LM fine-tuned on public pseudo data, then with DP-SGD on the table"
    extra = "llm"
    # 2: SmolLM2 + LoRA the default model; 3: PRV accountant, public N, joint σ;
    # 4: the reference scripts' defaults: temperature 0.7, stage 1 plain CE (stage1_loss), linear
    #    LR decay per optimiser step in both stages (lr_schedule), fixed order = target + the rest
    #    sorted (column_order), stage 1 in shuffled passes, generation until n valid rows (cap
    #    max_attempts 10, info["shortfall"]), a parser tolerant of case / whitespace / separators
    version = "4"
    stages: ClassVar[int] = 2
    # counts of generated rows: post-processing of the DP-trained model
    released_info = frozenset({"attempts", "valid_rows", "validity_rate", "shortfall", "warning"})
    may_return_fewer = True  # only the generated rows that parse; an empty table ranks last

    def __init__(self, model: str = "smollm2", pseudo: str = "uniform", serialization: str = "great",
                 shuffle: bool = False, column_order: str = "sorted", alpha: float = 0.65,
                 epochs: int = 10, batch_size: int = 32, physical_batch_size: int = 32,
                 lr: float = 5e-4, lr_schedule: str = "linear", max_grad_norm: float = 1.0,
                 accountant: str = "prv", stage1_epochs: float = 5.0, stage1_rows: int = 2000,
                 stage1_lr: float | None = None, stage1_loss: str = "ce",
                 stage1_batch_size: int | None = None, stage1_seed: int = 0, cache_stage1: bool = True,
                 prompt_column: str | None = None, prompt_dist: str = "dp",
                 prompt_share: float = 0.05, temperature: float = 0.7, top_p: float = 1.0,
                 gen_batch_size: int = 100, max_new_tokens: int = 200, max_attempts: float = 10.0,
                 impute_retries: int = 0, give_up_after: int = 300,
                 time_limit_s: float | None = None, lora_r: int = 8,
                 n_layer: int = 2, n_embd: int = 64, threads: int = 1):
        if model not in MODELS:
            raise ConfigError(f"{self.name}: model must be one of {', '.join(MODELS)} "
                              f"(got {model!r})")
        if serialization not in FORMATS:
            raise ConfigError(f"{self.name}: serialization must be one of {', '.join(FORMATS)}")
        if serialization == "apval":
            raise ConfigError(f"{self.name}: 'apval' cannot be prompted with one column's value; "
                              "use great, text or list")
        if column_order not in ORDERS:
            raise ConfigError(f"{self.name}: column_order must be one of {', '.join(ORDERS)} "
                              f"(got {column_order!r})")
        if prompt_dist not in ("dp", "public"):
            raise ConfigError(f"{self.name}: prompt_dist must be 'dp' or 'public'")
        if not 0.0 < prompt_share < 1.0:
            raise ConfigError(f"{self.name}: prompt_share must lie in (0, 1)")
        check_training_params(
            self.name, lr=lr, max_grad_norm=max_grad_norm, temperature=temperature, top_p=top_p,
            epochs=epochs, batch_size=batch_size, physical_batch_size=physical_batch_size,
            stage1_batch_size=batch_size if stage1_batch_size is None else stage1_batch_size)
        if alpha > 1:
            raise ConfigError(f"{self.name}: alpha must be <= 1 (alpha < 0 = plain CE)")
        check_accountant(self.name, accountant)
        if lr_schedule not in LR_SCHEDULES:
            raise ConfigError(f"{self.name}: lr_schedule must be one of {', '.join(LR_SCHEDULES)} "
                              f"(got {lr_schedule!r})")
        if stage1_loss not in STAGE1_LOSSES:
            raise ConfigError(f"{self.name}: stage1_loss must be one of "
                              f"{', '.join(STAGE1_LOSSES)} (got {stage1_loss!r})")
        self.model, self.pseudo, self.serialization = model, pseudo, serialization
        self.shuffle, self.alpha, self.epochs = shuffle, alpha, epochs
        self.column_order = column_order
        self.batch_size, self.physical_batch_size, self.lr = batch_size, physical_batch_size, lr
        self.max_grad_norm, self.accountant = max_grad_norm, accountant
        self.lr_schedule, self.stage1_loss = lr_schedule, stage1_loss
        self.stage1_epochs, self.stage1_rows, self.stage1_lr = stage1_epochs, stage1_rows, stage1_lr
        self.stage1_seed, self.cache_stage1 = stage1_seed, cache_stage1
        self.stage1_batch_size = batch_size if stage1_batch_size is None else stage1_batch_size
        self.prompt_column, self.prompt_dist, self.prompt_share = (prompt_column, prompt_dist,
                                                                   prompt_share)
        self.temperature, self.top_p = temperature, top_p
        self.gen_batch_size, self.max_new_tokens = gen_batch_size, max_new_tokens
        self.max_attempts, self.impute_retries = max_attempts, impute_retries
        self.give_up_after = give_up_after
        self.time_limit_s, self.lora_r = time_limit_s, lora_r
        self.n_layer, self.n_embd, self.threads = n_layer, n_embd, threads

    # ------------------------------------------------------------------ helpers
    def _prompt_values(self, task: Task, ledger: Ledger, col, sigma: float | None,
                       n: int, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
        """Values of the prompt column for n samples: public-uniform or from a DP histogram with
        noise ``sigma`` (sensitivity 1 under add/remove)."""
        domain = Domain(task.schema, bins=32)
        size = domain.size(col.name)
        if self.prompt_dist == "public":
            codes = rng.integers(0, size, n)
            info = {"prompt_dist": "public-uniform"}
        else:
            counts = np.bincount(domain.encode_column(col, task.private[col.name].to_numpy()),
                                 minlength=size)
            ledger.gaussian(f"histogram of prompt column {col.name!r} on public bins",
                            sigma=sigma, sensitivity=1.0)
            noisy = counts + task.noise.normal(0.0, sigma, size)
            codes = sample_from_counts(noisy, n, rng)
            info = {"prompt_dist": "dp-histogram", "prompt_sigma": sigma}
        return domain.decode_column(col, codes, rng), info

    def _stage1_key(self) -> dict:
        # "batch_size" is stage 1's batch (stage 2's batch does not touch stage 1)
        keys = ("model", "pseudo", "serialization", "shuffle", "column_order", "stage1_loss",
                "lr_schedule", "stage1_epochs", "stage1_rows", "stage1_seed", "prompt_column",
                "lora_r", "n_layer", "n_embd")
        key = {**{k: getattr(self, k) for k in keys}, "batch_size": self.stage1_batch_size,
               "stage1_lr": self.stage1_lr or self.lr}
        if self.stage1_loss == "weighted":  # plain CE does not see alpha
            key["alpha"] = self.alpha
        return key

    def _stage1_model(self, schema, ser, first, store, stage1, torch, deadline):
        """The LM after stage 1: trained here, or loaded from the stage-1 cache.

        Stage 1 reads only public data (the schema, a public table) and is seeded by
        ``stage1_seed`` (not the run seed): like a published pre-trained checkpoint it is shared
        by every run with the same stage-1 configuration, so it is cached under
        ``$DPARENA_HOME/cache/dp2stage/`` keyed by that configuration and the schema.
        """
        import hashlib
        import json
        import os

        key = json.dumps({**self._stage1_key(), "schema": schema.to_dict(), "v": self.version},
                         sort_keys=True, default=str)
        digest = hashlib.sha256(key.encode()).hexdigest()[:20]
        path = store.home / "cache" / "dp2stage" / f"stage1-{digest}.pt"
        lm = load_lm(self.model, schema, self.stage1_seed, store=store, lora_r=self.lora_r,
                     n_layer=self.n_layer, n_embd=self.n_embd)
        if self.cache_stage1 and path.exists():
            saved = torch.load(path, map_location="cpu", weights_only=True)
            lm.model.load_state_dict(saved["state"], strict=False)
            return lm, {**saved["info"], "stage1_cached": True}
        rng = np.random.default_rng(self.stage1_seed)
        frame, pseudo_schema = pseudo_table(self.pseudo, schema, self.stage1_rows, rng, store)
        pseudo_ser = ser if pseudo_schema is schema else Serializer(pseudo_schema,
                                                                    self.serialization)
        # the pseudo table's own first column: the prompt column if it has one, else its target
        # (the reference's OOD stage 1 puts the Airline target "satisfaction" first)
        pfirst = first if first in pseudo_schema.names else pseudo_schema.target
        rows = self._encode(lm, pseudo_ser, frame, rng, pfirst)
        t0 = time.monotonic()
        info = stage1(lm.model, rows, lm.pad_id, epochs=self.stage1_epochs,
                      batch_size=self.stage1_batch_size, lr=self.stage1_lr or self.lr,
                      alpha=self.alpha, loss=self.stage1_loss, lr_schedule=self.lr_schedule,
                      generator=torch.Generator().manual_seed(self.stage1_seed), deadline=deadline)
        info["stage1_s"] = time.monotonic() - t0
        if self.cache_stage1:
            path.parent.mkdir(parents=True, exist_ok=True)
            state = {k: p.detach() for k, p in lm.model.named_parameters() if p.requires_grad}
            tmp = path.with_suffix(f".{os.getpid()}.part")
            torch.save({"state": state, "info": info}, tmp)
            os.replace(tmp, path)
        return lm, {**info, "stage1_cached": False}

    def _texts(self, ser: Serializer, frame: pd.DataFrame, rng, first):
        """Serialized rows (text, spans): in the fixed order (``first``, then the others sorted
        by name or in schema order) or shuffled per row."""
        names = ser.schema.names
        records = frame[names].to_dict("records")
        orders = column_orders(names, len(records), self.shuffle, rng, first, self.column_order)
        return [ser.serialize(r, o) for r, o in zip(records, orders, strict=True)]

    def _encode(self, lm, ser: Serializer, frame: pd.DataFrame, rng, first):
        texts = self._texts(ser, frame, rng, first)
        return encode(lm.tokenizer, [t for t, _ in texts], [s for _, s in texts], lm.bos_id,
                      lm.eos_id)

    # ------------------------------------------------------------------ run
    def generate(self, task: Task, ledger: Ledger) -> Synthetic:
        torch = require("torch", "llm")
        from dparena.assets import AssetStore
        from dparena.lm.train import stage1, stage2_dp

        t_start = time.monotonic()
        deadline = None if self.time_limit_s is None else t_start + self.time_limit_s
        schema = task.schema
        first = self.prompt_column or schema.target or schema.names[0]
        if first not in schema.names:
            raise ConfigError(f"{self.name}: prompt_column {first!r} is not a column of the table")
        if not task.budget.is_private:
            raise ConfigError(f"{self.name} needs a finite epsilon")
        prev_threads = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            return self._run(task, ledger, torch, AssetStore(), stage1, stage2_dp, first,
                             t_start, deadline)
        finally:
            torch.set_num_threads(prev_threads)

    def _run(self, task, ledger, torch, store, stage1, stage2_dp, first, t_start, deadline):
        from dparena.lm.train import book_dp_sgd, plan_with_histogram

        schema, rng = task.schema, task.rng
        seeds = rng.integers(0, 2**31 - 1, 4)
        info: dict = {"model": self.model}
        ser = Serializer(schema, self.serialization)
        if self.stages == 2:
            lm, s1info = self._stage1_model(schema, ser, first, store, stage1, torch, deadline)
            info.update(s1info)
        else:
            lm = load_lm(self.model, schema, int(seeds[0]), store=store, lora_r=self.lora_r,
                         n_layer=self.n_layer, n_embd=self.n_embd)
        info["trainable_params"] = trainable_parameters(lm.model)
        info["load_and_stage1_s"] = time.monotonic() - t_start

        col = schema.column(first)
        plan, sigma_prompt = plan_with_histogram(
            task, self.name, share=self.prompt_share if self.prompt_dist == "dp" else None,
            batch_size=self.batch_size, epochs=self.epochs, accountant=self.accountant)
        values, pinfo = self._prompt_values(task, ledger, col, sigma_prompt,
                                            max(1, int(math.ceil(task.n_samples
                                                                 * self.max_attempts))), rng)
        info.update(pinfo)

        t2 = time.monotonic()
        private_rows = self._encode(lm, ser, task.private, rng, first)
        steps = stage2_dp(lm.model, private_rows, lm.pad_id, plan=plan, epochs=self.epochs,
                          physical_batch_size=self.physical_batch_size, lr=self.lr,
                          max_grad_norm=self.max_grad_norm, alpha=self.alpha,
                          seed=int(seeds[2]), noise=task.noise, lr_schedule=self.lr_schedule)
        book_dp_sgd(ledger, plan, steps, "DP-SGD", self.max_grad_norm)
        info.update({"stage2_s": time.monotonic() - t2, "accountant": plan.accountant,
                     "noise_multiplier": plan.noise_multiplier, "sample_rate": plan.sample_rate,
                     "dp_steps": steps})

        # Rejection sampling until n_samples valid rows, as the reference's generation.py (its
        # stage-2 scripts: --rejection_sample True, no imputation), which loops until n rows
        # parse and gives up only when 16 batches (100 prompts each) brought none. dparena caps
        # the attempts at max_attempts x n_samples (the reference has no cap but an optional time
        # limit), stops after give_up_after attempts without a valid row, and reports the rows
        # still missing as info["shortfall"].
        t3 = time.monotonic()
        gen = torch.Generator().manual_seed(int(seeds[3]))
        valid: list[dict] = []
        attempts = 0
        n = task.n_samples
        chunk = max(self.gen_batch_size, n // 4)
        while len(valid) < n and attempts < len(values):
            if deadline is not None and time.monotonic() > deadline:
                break
            take = values[attempts:attempts + min(chunk, 2 * (n - len(valid)) + 8)]
            prompts = [ser.prompt(first, v) for v in take]
            texts = generate(lm, prompts, temperature=self.temperature, top_p=self.top_p,
                             batch_size=self.gen_batch_size, max_new_tokens=self.max_new_tokens,
                             generator=gen, deadline=deadline)
            texts = self._impute(lm, ser, texts, gen, deadline)
            for text in texts:
                if text is None:
                    continue
                attempts += 1
                row = ser.parse(text)
                if row is not None and len(valid) < n:
                    valid.append(row)
            if all(t is None for t in texts):
                break
            if not valid and attempts >= self.give_up_after:
                break  # the model has not learned the format: stop wasting generation time
        info.update({"generate_s": time.monotonic() - t3, "attempts": attempts,
                     "valid_rows": len(valid),
                     "validity_rate": len(valid) / attempts if attempts else 0.0})
        info["shortfall"] = n - len(valid)  # rows short of n_samples (0: all generated)
        if not valid:  # reported (validity 0, perplexity still scored); table metrics fail
            info["warning"] = f"no valid row in {attempts} generated"
        elif len(valid) < n:
            info["warning"] = (f"shortfall of {n - len(valid)} rows: {len(valid)} of {n} valid "
                               f"after {attempts} generated (cap {len(values)} = max_attempts "
                               f"{self.max_attempts:g} x n_samples, or the time limit)")
        frame = pd.DataFrame(valid, columns=schema.names)
        for c in schema.columns:
            if isinstance(c, Categorical):
                frame[c.name] = frame[c.name].astype(object)
        scorer = LMScorer(lm, ser, self.shuffle, first, self.column_order)
        return Synthetic(frame, extras={"lm_scorer": scorer}, info=info)

    def _impute(self, lm, ser, texts, gen, deadline):
        """Re-prompt invalid rows with their valid prefix, up to ``impute_retries`` times."""
        texts = list(texts)
        for _ in range(self.impute_retries):
            redo = [i for i, t in enumerate(texts) if t is not None and ser.parse(t) is None]
            if not redo:
                break
            prompts = []
            for i in redo:
                partial = ser.parse_partial(texts[i])
                if not partial:
                    prompts.append(None)
                    continue
                prompts.append(ser.serialize(partial, list(partial))[0] + ser.sep)
            keep = [(i, p) for i, p in zip(redo, prompts, strict=True) if p is not None]
            if not keep:
                break
            again = generate(lm, [p for _, p in keep], temperature=self.temperature,
                             top_p=self.top_p, batch_size=self.gen_batch_size,
                             max_new_tokens=self.max_new_tokens, generator=gen, deadline=deadline)
            for (i, _), t in zip(keep, again, strict=True):
                if t is not None:
                    texts[i] = t
        return texts


class DPStandard(DP2Stage):
    """DP-Standard: the same LM fine-tuned with DP-SGD on the private rows, no stage 1."""

    description = "DP-Standard: LM fine-tuned with DP-SGD on the serialized table (no stage 1)"
    stages = 1

    def __init__(self, **kwargs):
        if "pseudo" in kwargs:
            raise ConfigError("dp-standard has no stage 1: drop the 'pseudo' parameter")
        for key in ("stage1_epochs", "stage1_rows", "stage1_lr", "stage1_batch_size", "stage1_seed",
                    "cache_stage1"):
            if key in kwargs:
                raise ConfigError(f"dp-standard has no stage 1: drop the {key!r} parameter")
        super().__init__(**kwargs)
