"""Batching of token rows and the per-group losses of a causal LM.

A row is ``(token ids, groups)``: the group of each token as a prediction target, ``IGNORE`` for
positions without loss (the first token, a prompt, padding) and 0, 1 or 2 otherwise. DP-2Stage's
serializer assigns key (0), value (1) and other (2) tokens; dp-finetune-lm puts its text tokens in
group 1; the fluency scorer uses group 0 alone.

Loss per example i (DP-2Stage, Afonja et al., arXiv 2412.02467, Eq. 2 "weighted cross-entropy"):

    L_i = (1 - α) · (mean CE over key tokens + mean CE over separator/other tokens)
          + α · mean CE over value tokens

α < 0 selects plain causal-LM cross-entropy (mean over all predicted tokens of the row). A group a
row has no tokens of contributes 0. The batch loss is the mean of L_i over rows, which is what
Opacus' ``loss_reduction="mean"`` expects: each row's gradient depends on that row alone, so
clipping bounds one record's influence. The reference (ft_opacus.py
``compute_disentangled_loss_for_training``) instead pools each group's tokens over the whole
micro-batch before averaging, which makes a row's weight depend on the other rows' token counts;
under DP-SGD that would break the per-example sensitivity bound, so DP-SGD keeps per-row means.

:func:`causal_lm_loss` is the plain cross-entropy of non-private fine-tuning (DP-2Stage's stage 1;
the reference's stage 1 runs with ``--weighted_loss -1``, i.e. transformers' ``outputs.loss``):
the mean over every predicted token of the batch, pooled over rows.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

IGNORE = -1  # positions that are not predicted (the first token, a prompt, padding)


def collate(rows: Sequence[tuple[list[int], list[int]]], pad_id: int):
    """Right-padded tensors: input_ids, attention_mask, position_ids, groups [B, T]."""
    import torch

    length = max((len(ids) for ids, _ in rows), default=1)
    b = len(rows)
    ids = torch.full((b, length), pad_id, dtype=torch.long)
    groups = torch.full((b, length), IGNORE, dtype=torch.long)
    mask = torch.zeros((b, length), dtype=torch.long)
    for i, (row_ids, row_groups) in enumerate(rows):
        ids[i, : len(row_ids)] = torch.tensor(row_ids)
        groups[i, : len(row_groups)] = torch.tensor(row_groups)
        mask[i, : len(row_ids)] = 1
    positions = torch.arange(length).expand(b, length).contiguous()
    return ids, mask, positions, groups


def token_ce(logits, input_ids):
    """Cross-entropy of predicting token t+1 from position t: [B, T-1]."""
    import torch.nn.functional as F

    logp = F.log_softmax(logits[:, :-1].float(), dim=-1)
    return -logp.gather(-1, input_ids[:, 1:].unsqueeze(-1)).squeeze(-1)


def weighted_loss(logits, input_ids, groups, alpha: float):
    """Per-example DP-2Stage loss [B] (see the module docstring); α < 0 = plain CE."""
    import torch

    ce = token_ce(logits, input_ids)
    target_groups = groups[:, 1:]
    if alpha < 0:
        valid = (target_groups != IGNORE).float()
        return (ce * valid).sum(1) / valid.sum(1).clamp(min=1.0)
    means = []
    for g in range(3):
        m = (target_groups == g).float()
        means.append((ce * m).sum(1) / m.sum(1).clamp(min=1.0))
    key, value, other = means
    return (1.0 - alpha) * (key + other) + alpha * value + 0.0 * torch.zeros_like(key)


def causal_lm_loss(logits, input_ids, groups):
    """Plain causal-LM cross-entropy of a batch: mean over every predicted token of every row
    (pooled), as transformers computes it from ``labels`` with padding set to -100. For public
    data only (stage 1): a row's weight depends on the other rows' lengths."""
    ce = token_ce(logits, input_ids)
    valid = (groups[:, 1:] != IGNORE).float()
    return (ce * valid).sum() / valid.sum().clamp(min=1.0)


def group_nll(logits, input_ids, groups) -> np.ndarray:
    """Summed token CE and token counts per group: array [[sum_k, n_k], [sum_v, n_v], [sum_o, n_o]]."""
    ce = token_ce(logits, input_ids)
    target_groups = groups[:, 1:]
    out = np.zeros((3, 2))
    for g in range(3):
        m = target_groups == g
        out[g] = [float(ce[m].sum()), int(m.sum())]
    return out


def score_rows(model, rows: Sequence[tuple[list[int], list[int]]], pad_id: int,
               batch_size: int) -> np.ndarray:
    """:func:`group_nll` of ``rows`` under ``model`` (eval mode, no gradients), summed over
    batches of ``batch_size`` rows."""
    import torch

    totals = np.zeros((3, 2))
    model.eval()
    with torch.no_grad():
        for start in range(0, len(rows), batch_size):
            ids, mask, pos, groups = collate(rows[start:start + batch_size], pad_id)
            logits = model(input_ids=ids, attention_mask=mask, position_ids=pos).logits
            totals += group_nll(logits, ids, groups)
    return totals
