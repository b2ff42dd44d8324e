"""Fine-tuning a causal LM: without privacy on public rows, and with DP-SGD on private rows.

The two stages of DP-2Stage: :func:`stage1` (non-private fine-tuning on pseudo data) and
:func:`stage2_dp` (DP-SGD on the private rows), which is also dp-finetune-lm's training loop;
with the training-parameter checks the methods share. DP-SGD's privacy side (the plan fixed from
public quantities, the accountant check, the booking) is :mod:`dparena.privacy.dpsgd`.

Stage 2 uses Opacus' ``PrivacyEngine.make_private`` with privacy parameters fixed beforehand from
public quantities (:func:`dparena.privacy.dpsgd.plan_dp_sgd`): Poisson sampling with rate
q = batch_size / N (N the public dataset size, never the private row count), per-example clipping
to norm C, Gaussian noise
σ calibrated by the accountant that books the run (PRV by default; RDP as in the DP-2Stage paper
with ``accountant = "rdp"``) jointly with the method's other Gaussian releases; the logical batch
is processed in physical chunks by ``BatchMemoryManager``. Abadi et al., "Deep Learning with
Differential Privacy", CCS 2016; Opacus (Yousefpour et al., 2021).

Learning rate: ``lr_schedule="linear"`` decays it linearly from ``lr`` towards 0 over the run's
optimiser steps (step k of T uses lr·(T−k)/T, transformers' ``get_scheduler("linear")`` without
warm-up, as the DP-2Stage scripts use); ``"constant"`` keeps ``lr``. One step is one optimiser
update: a stage-1 batch, or in stage 2 one logical Poisson batch however many physical chunks
``BatchMemoryManager`` splits it into. The reference calls ``lr_scheduler.step()`` after every
physical micro-batch while sizing the schedule in logical steps (ft_opacus.py, the
``BatchMemoryManager`` loop), so with its micro-batch of 16 and expected batch 32 the rate reaches
0 after about 40% of stage 2 and the remaining DP steps leave the model unchanged; dparena
implements the intended per-step decay.
"""

from __future__ import annotations

import contextlib
import math
import time
import warnings
from collections.abc import Sequence

from dparena.errors import ConfigError, require
from dparena.lm.loss import causal_lm_loss, collate, weighted_loss
from dparena.privacy.dpsgd import DPSGDPlan

LR_SCHEDULES = ("linear", "constant")
STAGE1_LOSSES = ("ce", "weighted")


def lr_factor(schedule: str, step: int, total: int) -> float:
    """The multiplier of the base learning rate at optimiser step ``step`` (0-based) of ``total``:
    (total − step) / total for ``linear``, 1 for ``constant``."""
    if schedule == "constant":
        return 1.0
    if schedule != "linear":
        raise ConfigError(f"lr_schedule must be one of {', '.join(LR_SCHEDULES)} (got {schedule!r})")
    return max(0.0, (total - step) / max(1, total))


def _set_lr(optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def check_training_params(method: str, *, lr: float, max_grad_norm: float, temperature: float,
                          top_p: float, **counts: int) -> None:
    """The parameter checks shared by the DP-SGD fine-tuning methods (dp2stage, dp-standard,
    dp-finetune-lm): every name in ``counts`` a positive integer, lr, C and temperature > 0, top_p
    in (0, 1]. One ConfigError line naming the method and the parameter."""
    for key, value in counts.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"{method}: {key} must be a positive integer (got {value!r})")
    if not (lr > 0 and max_grad_norm > 0 and temperature > 0 and 0 < top_p <= 1):
        raise ConfigError(f"{method}: lr, max_grad_norm and temperature must be > 0 and "
                          "top_p in (0, 1]")


class _Forward:
    """Calls a causal LM with explicit position ids (Opacus needs them batched) -> logits."""

    @staticmethod
    def logits(model, ids, mask, positions):
        return model(input_ids=ids, attention_mask=mask, position_ids=positions).logits


def _trim(ids, mask, positions, groups):
    """Drop the all-padding tail of a batch."""
    length = int(mask.sum(1).max().item()) if mask.numel() else 1
    length = max(length, 2)
    return ids[:, :length], mask[:, :length], positions[:, :length], groups[:, :length]


def _epoch_batches(n: int, batch_size: int, generator):
    """Index batches as a shuffled DataLoader gives them: a fresh permutation each epoch, cut into
    ⌈n / batch_size⌉ batches (the last one smaller), epoch after epoch."""
    torch = require("torch", "llm")
    while True:
        order = torch.randperm(n, generator=generator).tolist()
        for start in range(0, n, batch_size):
            yield order[start:start + batch_size]


def stage1(model, rows: Sequence, pad_id: int, *, epochs: float, batch_size: int, lr: float,
           alpha: float, generator, loss: str = "ce", lr_schedule: str = "linear",
           deadline: float | None = None, on_step=None) -> dict:
    """Plain AdamW fine-tuning on (non-private) pseudo rows; returns loss history.

    ``epochs`` passes over the rows (each pass a fresh shuffle, ⌈n / B⌉ batches; a fractional
    epoch stops part-way through a pass). ``loss="ce"`` is plain causal-LM cross-entropy pooled
    over the batch's tokens (:func:`causal_lm_loss`, the reference's stage 1), ``"weighted"`` the
    α-weighted key/value loss of stage 2. ``on_step(k, steps)`` is called after each step k.
    """
    torch = require("torch", "llm")
    if loss not in STAGE1_LOSSES:
        raise ConfigError(f"stage1_loss must be one of {', '.join(STAGE1_LOSSES)} (got {loss!r})")
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr)
    n = len(rows)
    steps = max(1, int(round(epochs * math.ceil(n / batch_size))))
    batches = _epoch_batches(n, batch_size, generator)
    losses = []
    for k in range(steps):
        idx = next(batches)
        ids, mask, pos, groups = _trim(*collate([rows[i] for i in idx], pad_id))
        logits = _Forward.logits(model, ids, mask, pos)
        value = (causal_lm_loss(logits, ids, groups) if loss == "ce"
                 else weighted_loss(logits, ids, groups, alpha).mean())
        value.backward()
        _set_lr(opt, lr * lr_factor(lr_schedule, k, steps))
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(float(value.detach()))
        if on_step is not None:
            on_step(k + 1, steps)
        if deadline is not None and time.monotonic() > deadline:
            break
    return {"stage1_steps": len(losses), "stage1_loss_first": losses[0], "stage1_loss_last":
            sum(losses[-5:]) / len(losses[-5:])}


class _Rows:
    """A map-style dataset of pre-padded rows (Opacus' Poisson loader indexes it)."""

    def __init__(self, ids, mask, positions, groups):
        self.tensors = (ids, mask, positions, groups)

    def __len__(self):
        return self.tensors[0].shape[0]

    def __getitem__(self, i):
        return tuple(t[i] for t in self.tensors)


@contextlib.contextmanager
def _os_entropy_noise(noise):
    """With a secure noise source, Opacus' Gaussian noise comes from OS entropy for the duration."""
    if not getattr(noise, "secure", False):
        yield
        return
    from opacus.optimizers import optimizer as dp_optimizer

    from dparena.privacy.noise import secure_torch_normal

    saved = dp_optimizer._generate_noise
    dp_optimizer._generate_noise = secure_torch_normal
    try:
        yield
    finally:
        dp_optimizer._generate_noise = saved


def stage2_dp(model, rows: Sequence, pad_id: int, *, plan: DPSGDPlan, epochs: int,
              physical_batch_size: int, lr: float, max_grad_norm: float, alpha: float, seed: int,
              noise=None, lr_schedule: str = "constant", on_step=None) -> int:
    """DP-SGD (AdamW update on the privatized gradient) on the private rows for ``epochs`` epochs
    with the privacy parameters of ``plan``; returns the number of DP-SGD steps taken.

    ``lr_schedule`` (see the module docstring) runs over the plan's T = ``plan.steps`` logical
    steps; the rate changes once per logical Poisson batch, never between its physical chunks.
    The LR is a function of the public step index only.

    ``noise`` is the run's noise source (:mod:`dparena.privacy.noise`): seeded noise and Poisson
    sampling from ``seed`` by default, OS entropy for both when it is secure.

    ``on_step(k, plan.steps)`` is called after each logical step k (progress: a position in the
    public schedule, nothing computed from the private rows).
    """
    torch = require("torch", "llm")
    opacus = require("opacus", "llm")
    from opacus.data_loader import DPDataLoader

    if len(rows) < 1:
        raise ValueError("stage 2 needs private rows")
    dataset = _Rows(*collate(rows, pad_id))
    secure = getattr(noise, "secure", False)
    sampler_gen = (noise.torch_generator(seed * 2 + 1) if noise is not None
                   else torch.Generator().manual_seed(seed * 2 + 1))
    loader = DPDataLoader(dataset, sample_rate=plan.sample_rate, generator=sampler_gen)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # secure-RNG advice and hook-mode notices
        engine = opacus.PrivacyEngine(accountant=plan.accountant)
        module, opt, dp_loader = engine.make_private(
            module=model, optimizer=opt, data_loader=loader,
            noise_multiplier=plan.noise_multiplier, max_grad_norm=max_grad_norm,
            poisson_sampling=False,  # the loader above already samples at the public rate q
            noise_generator=None if secure else torch.Generator().manual_seed(seed * 2 + 2),
        )
    # Opacus derives the divisor from len(dataset); the public expected batch size qN replaces it
    opt.expected_batch_size = plan.expected_batch_size
    steps = [0]
    with warnings.catch_warnings(), _os_entropy_noise(noise):
        warnings.simplefilter("ignore")  # "full backward hook ... no inputs require gradients"
        _dp_epochs(epochs, dp_loader, physical_batch_size, opt, module, alpha, steps,
                   lambda k: lr * lr_factor(lr_schedule, k, plan.steps),
                   (lambda k: on_step(k, plan.steps)) if on_step is not None else None)
    module._close()  # remove Opacus' hooks: the model is used plainly for sampling and scoring
    return steps[0]


def _dp_epochs(epochs, dp_loader, physical_batch_size, opt, module, alpha, steps, lr_at,
               on_step=None):
    """The training loop; ``steps[0]`` counts logical (Poisson) batches. No loss value of a private
    batch leaves this function: un-noised, it would be a release outside the ledger.

    ``lr_at(k)`` is the learning rate of logical step k; it is set before every physical chunk and
    k advances only when Opacus really steps (the last chunk of a logical batch); ``on_step(k)``
    then follows."""
    from opacus.utils.batch_memory_manager import BatchMemoryManager

    done = 0  # logical steps taken
    for _ in range(epochs):
        steps[0] += len(dp_loader)
        with BatchMemoryManager(data_loader=dp_loader, max_physical_batch_size=physical_batch_size,
                                optimizer=opt) as memory_loader:
            for ids, mask, pos, groups in memory_loader:
                _set_lr(opt, lr_at(done))
                if ids.shape[0] == 0:  # an empty Poisson batch still takes a (noise-only) step
                    opt.zero_grad(set_to_none=True)
                    opt.step()
                    done += 1
                    if on_step is not None:
                        on_step(done)
                    continue
                ids, mask, pos, groups = _trim(ids, mask, pos, groups)
                loss = weighted_loss(_Forward.logits(module, ids, mask, pos), ids, groups,
                                     alpha).mean()
                loss.backward()
                opt.step()
                if not opt._is_last_step_skipped:  # the logical batch's update happened
                    done += 1
                    if on_step is not None:
                        on_step(done)
                opt.zero_grad(set_to_none=True)
