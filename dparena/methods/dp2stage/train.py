"""Stage 1 (non-private fine-tuning on pseudo data) and stage 2 (DP-SGD on the private rows).

Stage 2 uses Opacus' ``PrivacyEngine.make_private_with_epsilon``: Poisson sampling with rate
q = batch_size / n, per-example clipping to norm C, Gaussian noise calibrated by the accountant
(RDP by default, as the paper) so that ``epochs`` passes reach the target (ε, δ); the logical batch
is processed in physical chunks by ``BatchMemoryManager``. Abadi et al., "Deep Learning with
Differential Privacy", CCS 2016; Opacus (Yousefpour et al., 2021).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

from dparena.errors import ConfigError, require
from dparena.methods.dp2stage.loss import collate, weighted_loss


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


def stage1(model, rows: Sequence, pad_id: int, *, epochs: float, batch_size: int, lr: float,
           alpha: float, generator, deadline: float | None = None) -> dict:
    """Plain AdamW fine-tuning on (non-private) pseudo rows; returns loss history."""
    torch = require("torch", "llm")
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr)
    n = len(rows)
    steps = max(1, int(round(epochs * n / batch_size)))
    losses = []
    for _ in range(steps):
        idx = torch.randint(0, n, (batch_size,), generator=generator).tolist()
        ids, mask, pos, groups = _trim(*collate([rows[i] for i in idx], pad_id))
        loss = weighted_loss(_Forward.logits(model, ids, mask, pos), ids, groups, alpha).mean()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
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


@dataclass
class DPResult:
    epsilon: float  # the accountant's realised ε at ``delta`` after the steps actually taken
    delta: float
    noise_multiplier: float
    sample_rate: float
    steps: int
    accountant: str
    loss_first: float
    loss_last: float


def stage2_dp(model, rows: Sequence, pad_id: int, *, epsilon: float, delta: float, epochs: int,
              batch_size: int, physical_batch_size: int, lr: float, max_grad_norm: float,
              alpha: float, seed: int, accountant: str = "rdp") -> DPResult:
    """DP-SGD (AdamW update on the privatized gradient) on the private rows for ``epochs`` epochs."""
    torch = require("torch", "llm")
    opacus = require("opacus", "llm")
    n = len(rows)
    if n < 2:
        raise ValueError("stage 2 needs at least 2 private rows")
    batch_size = min(batch_size, n)
    dataset = _Rows(*collate(rows, pad_id))
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=False,
        generator=torch.Generator().manual_seed(seed * 2 + 1),
    )
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # secure-RNG advice and hook-mode notices
        engine = opacus.PrivacyEngine(accountant=accountant)
        module, opt, dp_loader = engine.make_private_with_epsilon(
            module=model, optimizer=opt, data_loader=loader, target_epsilon=epsilon,
            target_delta=delta, epochs=epochs, max_grad_norm=max_grad_norm,
            poisson_sampling=True, noise_generator=torch.Generator().manual_seed(seed * 2 + 2),
        )
    losses: list[float] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "full backward hook ... no inputs require gradients"
        _dp_epochs(epochs, dp_loader, physical_batch_size, opt, module, alpha, losses)
    realised = float(engine.get_epsilon(delta))
    module._close()  # remove Opacus' hooks: the model is used plainly for sampling and scoring
    history = getattr(engine.accountant, "history", [])
    return DPResult(
        epsilon=realised, delta=delta, noise_multiplier=float(opt.noise_multiplier),
        sample_rate=float(1.0 / len(loader)), steps=int(sum(h[2] for h in history)) if history else 0,
        accountant=accountant,
        loss_first=losses[0] if losses else float("nan"),
        loss_last=sum(losses[-5:]) / max(1, len(losses[-5:])),
    )


def _dp_epochs(epochs, dp_loader, physical_batch_size, opt, module, alpha, losses):
    from opacus.utils.batch_memory_manager import BatchMemoryManager

    for _ in range(epochs):
        with BatchMemoryManager(data_loader=dp_loader, max_physical_batch_size=physical_batch_size,
                                optimizer=opt) as memory_loader:
            for ids, mask, pos, groups in memory_loader:
                if ids.shape[0] == 0:  # an empty Poisson batch still takes a (noise-only) step
                    opt.zero_grad(set_to_none=True)
                    opt.step()
                    continue
                ids, mask, pos, groups = _trim(ids, mask, pos, groups)
                loss = weighted_loss(_Forward.logits(module, ids, mask, pos), ids, groups,
                                     alpha).mean()
                loss.backward()
                opt.step()
                opt.zero_grad(set_to_none=True)
                losses.append(float(loss.detach()))


def book_dp_sgd(ledger, result: DPResult, what: str, target_epsilon: float,
                max_grad_norm: float) -> None:
    """Check the realised ε of a DP-SGD run against its target and book it (one (ε, δ) entry).

    Opacus calibrates the noise to the target, so a realised ε above it is a bug, never a user
    error: the run fails rather than book more than it was given.
    """
    if result.epsilon > target_epsilon * (1 + 1e-9):
        raise RuntimeError(f"Opacus realised ε={result.epsilon:.4g} above its target "
                           f"{target_epsilon:.4g}")
    ledger.approx(
        f"{what} ({result.steps} steps, q={result.sample_rate:.4g}, "
        f"σ={result.noise_multiplier:.4g}, C={max_grad_norm}) via Opacus {result.accountant}",
        result.epsilon, result.delta, mechanism="dp-sgd",
        noise_multiplier=result.noise_multiplier, sample_rate=result.sample_rate,
        steps=result.steps, max_grad_norm=max_grad_norm, accountant=result.accountant,
        target_epsilon=target_epsilon,
    )
