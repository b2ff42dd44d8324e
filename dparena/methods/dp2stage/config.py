"""The parameters of ``dp2stage`` and ``dp-standard``: one frozen config, passed whole.

A suite's ``params = { ... }`` for these methods are the fields below (the registry checks each
against its annotation, and an unknown name is one error that lists the known ones). Defaults
follow the authors' scripts (github.com/tejuafonja/DP-2Stage, scripts/experiments/GPT2); see
:mod:`dparena.methods.dp2stage.method` and docs/protocols.md.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from dparena.errors import ConfigError
from dparena.lm.train import LR_SCHEDULES, STAGE1_LOSSES, check_training_params
from dparena.methods.dp2stage.lm import MODELS
from dparena.methods.dp2stage.serialize import FORMATS, ORDERS
from dparena.privacy.dpsgd import check_accountant
from dparena.registry import did_you_mean

# the fields that configure stage 1 only (dp-standard, which has none, refuses them)
STAGE1_FIELDS = ("pseudo", "stage1_epochs", "stage1_rows", "stage1_lr", "stage1_batch_size",
                 "stage1_seed", "cache_stage1")


@dataclass(frozen=True)
class DP2StageConfig:
    """Every parameter of a DP-2Stage (or DP-Standard) run, as the suite gives it."""

    # the LM: "smollm2" (SmolLM2-135M asset + LoRA r = lora_r), "tiny" (random-init GPT-2 of
    # n_layer x n_embd, full fine-tuning) or "gpt2"
    model: str = "smollm2"
    lora_r: int = 8
    n_layer: int = 2
    n_embd: int = 64
    # rows as text: format (great, text, list), column order fixed (target first, then sorted
    # or in schema order) or shuffled per row
    serialization: str = "great"
    shuffle: bool = False
    column_order: str = "sorted"
    # stage 2: DP-SGD with Poisson sampling at rate batch_size / N, the α-weighted loss
    alpha: float = 0.65
    epochs: int = 10
    batch_size: int = 32
    physical_batch_size: int = 32
    lr: float = 5e-4
    lr_schedule: str = "linear"
    max_grad_norm: float = 1.0
    accountant: str = "prv"
    # stage 1: public pseudo data (uniform from the schema, "ood", or "csv:PATH"), cached
    pseudo: str = "uniform"
    stage1_epochs: float = 5.0
    stage1_rows: int = 2000
    stage1_lr: float | None = None  # None: lr
    stage1_loss: str = "ce"
    stage1_batch_size: int | None = None  # None: batch_size
    stage1_seed: int = 0
    cache_stage1: bool = True
    # the prompt column (None: the target) and its distribution: a DP histogram taking
    # prompt_share of ε, or uniform over the public schema
    prompt_column: str | None = None
    prompt_dist: str = "dp"
    prompt_share: float = 0.05
    # sampling until n_samples rows parse, at most max_attempts x n_samples attempts
    temperature: float = 0.7
    top_p: float = 1.0
    gen_batch_size: int = 100
    max_new_tokens: int = 200
    max_attempts: float = 10.0
    impute_retries: int = 0
    give_up_after: int = 300
    time_limit_s: float | None = None
    threads: int = 1

    @classmethod
    def from_params(cls, method: str, params: dict[str, Any]) -> DP2StageConfig:
        """The config of a suite's ``params`` for ``method``: one ConfigError for an unknown name."""
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = [k for k in params if k not in known]
        if unknown:
            raise ConfigError(f"{method}: unknown parameter {unknown[0]!r}"
                              f"{did_you_mean(unknown[0], known)} (known: {', '.join(known)})")
        return cls(**params)

    @property
    def stage1_batch(self) -> int:
        return self.batch_size if self.stage1_batch_size is None else self.stage1_batch_size

    @property
    def stage1_learning_rate(self) -> float:
        return self.stage1_lr or self.lr

    def check(self, method: str) -> None:
        """Every value in range: one ConfigError line naming ``method`` and the parameter."""
        if self.model not in MODELS:
            raise ConfigError(f"{method}: model must be one of {', '.join(MODELS)} "
                              f"(got {self.model!r})")
        if self.serialization not in FORMATS:
            raise ConfigError(f"{method}: serialization must be one of {', '.join(FORMATS)}")
        if self.serialization == "apval":
            raise ConfigError(f"{method}: 'apval' cannot be prompted with one column's value; "
                              "use great, text or list")
        if self.column_order not in ORDERS:
            raise ConfigError(f"{method}: column_order must be one of {', '.join(ORDERS)} "
                              f"(got {self.column_order!r})")
        if self.prompt_dist not in ("dp", "public"):
            raise ConfigError(f"{method}: prompt_dist must be 'dp' or 'public'")
        if not 0.0 < self.prompt_share < 1.0:
            raise ConfigError(f"{method}: prompt_share must lie in (0, 1)")
        check_training_params(
            method, lr=self.lr, max_grad_norm=self.max_grad_norm, temperature=self.temperature,
            top_p=self.top_p, epochs=self.epochs, batch_size=self.batch_size,
            physical_batch_size=self.physical_batch_size, stage1_batch_size=self.stage1_batch)
        if self.alpha > 1:
            raise ConfigError(f"{method}: alpha must be <= 1 (alpha < 0 = plain CE)")
        check_accountant(method, self.accountant)
        if self.lr_schedule not in LR_SCHEDULES:
            raise ConfigError(f"{method}: lr_schedule must be one of {', '.join(LR_SCHEDULES)} "
                              f"(got {self.lr_schedule!r})")
        if self.stage1_loss not in STAGE1_LOSSES:
            raise ConfigError(f"{method}: stage1_loss must be one of "
                              f"{', '.join(STAGE1_LOSSES)} (got {self.stage1_loss!r})")
