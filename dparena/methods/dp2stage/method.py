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
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from dparena.datasets.schema import Categorical
from dparena.errors import ConfigError, require
from dparena.lm.model import trainable_parameters
from dparena.lm.sample import generate
from dparena.methods.base import Method, Task
from dparena.methods.dp2stage.config import STAGE1_FIELDS, DP2StageConfig
from dparena.methods.dp2stage.lm import load_lm
from dparena.methods.dp2stage.pseudo import pseudo_table
from dparena.methods.dp2stage.serialize import Serializer, column_orders
from dparena.methods.dp2stage.tokens import LMScorer, encode
from dparena.methods.tabular import Domain, sample_from_counts
from dparena.privacy import Ledger
from dparena.types import Modality, Synthetic

# Importing this module means the method is about to run: load the LM stack now, so a runner that
# imports method classes before forking its workers pays for it once (not once per run).
for _module in ("torch", "transformers", "opacus", "peft"):
    require(_module, "llm")


class DP2Stage(Method):
    """DP-2Stage: non-private stage 1 on pseudo data, then DP-SGD stage 2 on the private rows.

    Afonja et al., arXiv 2412.02467. Stage 1 fine-tunes the LM without privacy on public pseudo
    data (``pseudo = "uniform"`` from the public schema, ``"ood"`` = German credit, or
    ``"csv:PATH"``; its own ``stage1_epochs``, ``stage1_lr``, ``stage1_batch_size``; plain
    cross-entropy, ``stage1_loss = "weighted"`` for the α loss) and is cached under
    ``$DPARENA_HOME/cache/dp2stage/``. Stage 2 runs DP-SGD (Opacus, Poisson sampling at rate B/N,
    σ calibrated to the PRV accountant by default or ``accountant = "rdp"``, jointly with the
    prompt histogram) with the α-weighted key/value/other loss (α = 0.65). The learning rate
    decays linearly per optimiser step in both stages (``lr_schedule``). Serializations
    ``great``, ``text``, ``list``; a fixed column order (target, then the others sorted by name;
    ``column_order = "schema"``) or ``shuffle``. ``model = "smollm2"`` (the default:
    SmolLM2-135M asset + LoRA), ``"tiny"`` (random-init 2-layer GPT-2 with a BPE tokenizer trained
    on public-schema text) or ``"gpt2"``. The prompt column (default the target) comes from a DP
    histogram (``prompt_share`` of ε) or the public schema; rows are sampled at temperature 0.7
    until ``n_samples`` parse (at most ``max_attempts`` × n attempts; the rows missing are
    reported as ``shortfall``). Every parameter is a field of :class:`DP2StageConfig`; defaults
    follow the authors' scripts (docs/protocols.md).
    """

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

    config_type: ClassVar[type] = DP2StageConfig  # the suite's params are its fields

    def __init__(self, config: DP2StageConfig | None = None, **params: Any):
        if config is not None and params:
            raise ConfigError(f"{self.name}: give a DP2StageConfig or parameters, not both")
        self.config = config if config is not None else DP2StageConfig.from_params(self.name,
                                                                                    params)
        self.config.check(self.name)

    # ------------------------------------------------------------------ helpers
    def _prompt_values(self, task: Task, ledger: Ledger, col, sigma: float | None,
                       n: int, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
        """Values of the prompt column for n samples: public-uniform or from a DP histogram with
        noise ``sigma`` (sensitivity 1 under add/remove)."""
        domain = Domain(task.schema, bins=32)
        size = domain.size(col.name)
        if self.config.prompt_dist == "public":
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
        cfg = self.config
        key = {**{k: getattr(cfg, k) for k in keys}, "batch_size": cfg.stage1_batch,
               "stage1_lr": cfg.stage1_learning_rate}
        if cfg.stage1_loss == "weighted":  # plain CE does not see alpha
            key["alpha"] = cfg.alpha
        return key

    def _stage1_model(self, schema, ser, first, store, stage1, torch, deadline, on_step=None):
        """The LM after stage 1: trained here, or loaded from the stage-1 cache.

        Stage 1 reads only public data (the schema, a public table) and is seeded by
        ``stage1_seed`` (not the run seed): like a published pre-trained checkpoint it is shared
        by every run with the same stage-1 configuration, so it is cached under
        ``$DPARENA_HOME/cache/dp2stage/`` keyed by that configuration and the schema. Runs that
        need the same missing model take turns (``io.locked``): the second waits for the first to
        train and save it, then loads it, so concurrent workers never train one model twice.
        """
        import contextlib
        import hashlib
        import json

        from dparena.io import locked

        cfg = self.config
        key = json.dumps({**self._stage1_key(), "schema": schema.to_dict(), "v": self.version},
                         sort_keys=True, default=str)
        digest = hashlib.sha256(key.encode()).hexdigest()[:20]
        path = store.home / "cache" / "dp2stage" / f"stage1-{digest}.pt"
        lm = load_lm(cfg.model, schema, cfg.stage1_seed, store=store, lora_r=cfg.lora_r,
                     n_layer=cfg.n_layer, n_embd=cfg.n_embd)
        if cfg.cache_stage1 and path.exists():
            return self._load_stage1(lm, path, torch)
        with locked(path) if cfg.cache_stage1 else contextlib.nullcontext():
            if cfg.cache_stage1 and path.exists():  # trained by the run we waited for
                return self._load_stage1(lm, path, torch)
            return self._train_stage1(lm, schema, ser, first, store, stage1, torch, deadline,
                                      on_step, path)

    @staticmethod
    def _load_stage1(lm, path, torch):
        saved = torch.load(path, map_location="cpu", weights_only=True)
        lm.model.load_state_dict(saved["state"], strict=False)
        return lm, {**saved["info"], "stage1_cached": True}

    def _train_stage1(self, lm, schema, ser, first, store, stage1, torch, deadline, on_step, path):
        from dparena.io import write_atomic

        cfg = self.config
        rng = np.random.default_rng(cfg.stage1_seed)
        frame, pseudo_schema = pseudo_table(cfg.pseudo, schema, cfg.stage1_rows, rng, store)
        pseudo_ser = ser if pseudo_schema is schema else Serializer(pseudo_schema,
                                                                    cfg.serialization)
        # the pseudo table's own first column: the prompt column if it has one, else its target
        # (the reference's OOD stage 1 puts the Airline target "satisfaction" first)
        pfirst = first if first in pseudo_schema.names else pseudo_schema.target
        rows = self._encode(lm, pseudo_ser, frame, rng, pfirst)
        t0 = time.monotonic()
        info = stage1(lm.model, rows, lm.pad_id, epochs=cfg.stage1_epochs,
                      batch_size=cfg.stage1_batch, lr=cfg.stage1_learning_rate, alpha=cfg.alpha,
                      loss=cfg.stage1_loss, lr_schedule=cfg.lr_schedule,
                      generator=torch.Generator().manual_seed(cfg.stage1_seed), deadline=deadline,
                      on_step=on_step)
        info["stage1_s"] = time.monotonic() - t0
        if cfg.cache_stage1:
            path.parent.mkdir(parents=True, exist_ok=True)
            state = {k: p.detach() for k, p in lm.model.named_parameters() if p.requires_grad}
            write_atomic(path, lambda tmp: torch.save({"state": state, "info": info}, tmp))
        return lm, {**info, "stage1_cached": False}

    def _texts(self, ser: Serializer, frame: pd.DataFrame, rng, first):
        """Serialized rows (text, spans): in the fixed order (``first``, then the others sorted
        by name or in schema order) or shuffled per row."""
        names = ser.schema.names
        records = frame[names].to_dict("records")
        orders = column_orders(names, len(records), self.config.shuffle, rng, first,
                               self.config.column_order)
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

        cfg = self.config
        t_start = time.monotonic()
        deadline = None if cfg.time_limit_s is None else t_start + cfg.time_limit_s
        schema = task.schema
        first = cfg.prompt_column or schema.target or schema.names[0]
        if first not in schema.names:
            raise ConfigError(f"{self.name}: prompt_column {first!r} is not a column of the table")
        if not task.budget.is_private:
            raise ConfigError(f"{self.name} needs a finite epsilon")
        prev_threads = torch.get_num_threads()
        torch.set_num_threads(cfg.threads)
        try:
            return self._run(task, ledger, torch, AssetStore(), stage1, stage2_dp, first,
                             t_start, deadline)
        finally:
            torch.set_num_threads(prev_threads)

    def _run(self, task, ledger, torch, store, stage1, stage2_dp, first, t_start, deadline):
        from dparena.privacy.dpsgd import book_dp_sgd, plan_with_histogram

        cfg, schema, rng = self.config, task.schema, task.rng
        seeds = rng.integers(0, 2**31 - 1, 4)
        info: dict = {"model": cfg.model}
        ser = Serializer(schema, cfg.serialization)
        if self.stages == 2:
            lm, s1info = self._stage1_model(schema, ser, first, store, stage1, torch, deadline,
                                            lambda k, n: task.report("stage 1 step", k, n))
            info.update(s1info)
        else:
            lm = load_lm(cfg.model, schema, int(seeds[0]), store=store, lora_r=cfg.lora_r,
                         n_layer=cfg.n_layer, n_embd=cfg.n_embd)
        info["trainable_params"] = trainable_parameters(lm.model)
        info["load_and_stage1_s"] = time.monotonic() - t_start

        col = schema.column(first)
        plan, sigma_prompt = plan_with_histogram(
            task, self.name, share=cfg.prompt_share if cfg.prompt_dist == "dp" else None,
            batch_size=cfg.batch_size, epochs=cfg.epochs, accountant=cfg.accountant)
        values, pinfo = self._prompt_values(task, ledger, col, sigma_prompt,
                                            max(1, int(math.ceil(task.n_samples
                                                                 * cfg.max_attempts))), rng)
        info.update(pinfo)

        t2 = time.monotonic()
        private_rows = self._encode(lm, ser, task.private, rng, first)
        steps = stage2_dp(lm.model, private_rows, lm.pad_id, plan=plan, epochs=cfg.epochs,
                          physical_batch_size=cfg.physical_batch_size, lr=cfg.lr,
                          max_grad_norm=cfg.max_grad_norm, alpha=cfg.alpha,
                          seed=int(seeds[2]), noise=task.noise, lr_schedule=cfg.lr_schedule,
                          on_step=lambda k, n: task.report("DP-SGD step", k, n))
        book_dp_sgd(ledger, plan, steps, "DP-SGD", cfg.max_grad_norm)
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
        chunk = max(cfg.gen_batch_size, n // 4)
        while len(valid) < n and attempts < len(values):
            if deadline is not None and time.monotonic() > deadline:
                break
            take = values[attempts:attempts + min(chunk, 2 * (n - len(valid)) + 8)]
            prompts = [ser.prompt(first, v) for v in take]
            texts = generate(lm, prompts, temperature=cfg.temperature, top_p=cfg.top_p,
                             batch_size=cfg.gen_batch_size, max_new_tokens=cfg.max_new_tokens,
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
            if not valid and attempts >= cfg.give_up_after:
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
                               f"{cfg.max_attempts:g} x n_samples, or the time limit)")
        frame = pd.DataFrame(valid, columns=schema.names)
        for c in schema.columns:
            if isinstance(c, Categorical):
                frame[c.name] = frame[c.name].astype(object)
        scorer = LMScorer(lm, ser, cfg.shuffle, first, cfg.column_order)
        return Synthetic(frame, extras={"lm_scorer": scorer}, info=info)

    def _impute(self, lm, ser, texts, gen, deadline):
        """Re-prompt invalid rows with their valid prefix, up to ``impute_retries`` times."""
        cfg, texts = self.config, list(texts)
        for _ in range(cfg.impute_retries):
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
            again = generate(lm, [p for _, p in keep], temperature=cfg.temperature,
                             top_p=cfg.top_p, batch_size=cfg.gen_batch_size,
                             max_new_tokens=cfg.max_new_tokens, generator=gen, deadline=deadline)
            for (i, _), t in zip(keep, again, strict=True):
                if t is not None:
                    texts[i] = t
        return texts


class DPStandard(DP2Stage):
    """DP-Standard: the same LM fine-tuned with DP-SGD on the private rows, no stage 1."""

    description = "DP-Standard: LM fine-tuned with DP-SGD on the serialized table (no stage 1)"
    stages = 1

    def __init__(self, config: DP2StageConfig | None = None, **params: Any):
        for key in STAGE1_FIELDS:
            if key in params:
                raise ConfigError(f"dp-standard has no stage 1: drop the {key!r} parameter")
        super().__init__(config, **params)
