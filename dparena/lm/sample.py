"""Sampling from causal LMs: one key/value-cached decode loop and one nucleus (top-p) rule.

:func:`decode` is the generation loop of every local LM in dparena (DP-2Stage, dp-finetune-lm and
the transformers text backend :class:`dparena.llm.hf.TransformersLM`): it runs a (left-padded)
batch of prompts through the model once, then feeds back one drawn token per row, reusing the
key/value cache, until every row has drawn an end token or its token limit. It is written by hand
(not ``transformers.generate``) so that every draw comes from the caller's seeded
``torch.Generator``. Each step's token comes from a ``pick(logits) -> tokens`` function:

* :func:`sample_per_row` — temperature, then the nucleus, then one uniform per row from that row's
  own generator inverts the truncated CDF: a prompt's completion does not depend on which other
  prompts share its batch. Greedy at temperature 0. The text backend's sampler.
* :func:`sample_batch` — temperature, then the nucleus renormalised, then ``torch.multinomial``
  with one generator for the whole batch: the draw DP-2Stage and dp-finetune-lm have always made
  (their published numbers rest on it). Moving them to :func:`sample_per_row` would make their
  texts batch-independent, at the cost of new numbers (a method version bump).

Both truncate with :func:`nucleus`: the smallest top set of tokens whose mass reaches top_p
(Holtzman et al., "The Curious Case of Neural Text Degeneration", ICLR 2020).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Sequence

from dparena.errors import require

#: rows whose top-K mass reaches top_p sort only those K tokens (the nucleus usually lies there)
TOP_K = 256


def nucleus(sorted_p, top_p: float, inclusive: bool = False):
    """Which of the descending-sorted probabilities ``sorted_p`` [B, V] form the nucleus: the
    smallest prefix whose mass reaches ``top_p`` (the first token always stays). ``inclusive``
    also keeps a token whose preceding mass equals ``top_p`` exactly (DP-2Stage's sampler has
    always done so; the per-row sampler never has), so neither sampler's draws changed when
    they came to share this function."""
    before = sorted_p.cumsum(dim=-1) - sorted_p
    return before <= top_p if inclusive else before < top_p


def sample_per_row(logits, temperature: float, top_p: float, generators):
    """One token per row: greedy at temperature 0, else inverse-CDF sampling of the tempered,
    nucleus-truncated distribution (float64) with one uniform from the row's own generator."""
    torch = require("torch", "llm")
    if temperature == 0:
        return logits.argmax(dim=-1)
    probs = torch.softmax(logits.double() / temperature, dim=-1)
    vocab = probs.shape[-1]
    u = torch.cat([torch.rand(1, generator=g, dtype=torch.float64)
                   for g in generators]).to(probs.device)
    if top_p >= 1:  # no truncation: invert the CDF in vocabulary order
        cum = probs.cumsum(dim=-1)
        pick = torch.searchsorted(cum, (u * cum[:, -1]).unsqueeze(-1))
        return pick.clamp(max=vocab - 1).squeeze(-1)
    # rows whose top-K mass reaches top_p sort only those (the same prefix as a full sort), the
    # other rows sort everything; the choice depends on the row alone, so batching does not
    # change it
    out = torch.empty(probs.shape[0], dtype=torch.long, device=probs.device)
    small = torch.zeros(probs.shape[0], dtype=torch.bool, device=probs.device)
    if vocab > TOP_K:
        top_vals, top_idx = probs.topk(TOP_K, dim=-1)
        small = top_vals.sum(dim=-1) >= top_p
        if bool(small.any()):
            out[small] = _inverse_cdf(top_vals[small], top_idx[small], u[small], top_p)
    if not bool(small.all()):
        sorted_p, sorted_idx = probs[~small].sort(dim=-1, descending=True)
        out[~small] = _inverse_cdf(sorted_p, sorted_idx, u[~small], top_p)
    return out


def _inverse_cdf(sorted_p, sorted_idx, u, top_p: float):
    """The token at quantile ``u`` of the nucleus of the sorted probabilities."""
    torch = require("torch", "llm")
    kept = sorted_p * nucleus(sorted_p, top_p)
    cum = kept.cumsum(dim=-1)
    pick = torch.searchsorted(cum, (u * cum[:, -1]).unsqueeze(-1)).clamp(max=cum.shape[-1] - 1)
    return sorted_idx.gather(-1, pick).squeeze(-1)


def sample_batch(logits, temperature: float, top_p: float, generator):
    """One token per row from ``torch.multinomial`` over the tempered (float32), nucleus-truncated
    and renormalised distribution, with one ``generator`` for the whole batch."""
    torch = require("torch", "llm")
    probs = torch.softmax(logits / max(temperature, 1e-6), -1)
    if top_p < 1.0:
        sorted_p, order = probs.sort(dim=-1, descending=True)
        sorted_p = sorted_p.masked_fill(~nucleus(sorted_p, top_p, inclusive=True), 0.0)
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_p)
        probs = probs / probs.sum(-1, keepdim=True)
    return torch.multinomial(probs, 1, generator=generator).squeeze(1)


def decode(model, ids, mask, *, limits: Sequence[int], pick: Callable, eos_ids: Sequence[int],
           fill_id: int, last_logits_only: bool = False) -> list[list[int]]:
    """The tokens drawn after each row of the left-padded batch ``ids`` [B, T] (``mask`` 1 on real
    tokens): up to ``limits[i]`` of them, ending with the row's first token in ``eos_ids`` (kept).

    ``pick(logits)`` maps the float32 next-token logits [B, V] to one token per row. A row that has
    ended is fed ``fill_id`` from then on (its later draws are discarded); the loop stops when every
    row has ended. ``last_logits_only`` computes the prompt's logits at its last position only
    (``logits_to_keep``, as ``transformers.generate`` does; faster, equal up to the last bits).
    """
    torch = require("torch", "llm")
    n, steps = ids.shape[0], max(limits, default=0)
    if steps < 1:
        return [[] for _ in range(n)]
    device = ids.device
    eos = torch.tensor(list(eos_ids), dtype=torch.long, device=device)
    ends = torch.tensor(list(limits), device=device)
    done = torch.zeros(n, dtype=torch.bool, device=device)
    drawn = []
    with torch.inference_mode():
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        extra = {"logits_to_keep": 1} if last_logits_only else {}
        result = model(input_ids=ids, attention_mask=mask, position_ids=positions,
                       use_cache=True, **extra)
        for step in range(steps):
            token = pick(result.logits[:, -1, :].float())
            token = torch.where(done, torch.full_like(token, fill_id), token)
            drawn.append(token)
            done = done | torch.isin(token, eos) | (step + 1 >= ends)
            if bool(done.all()):
                break
            mask = torch.cat([mask, torch.ones((n, 1), dtype=mask.dtype, device=device)], dim=1)
            positions = positions[:, -1:] + 1
            result = model(input_ids=token[:, None], attention_mask=mask, position_ids=positions,
                           past_key_values=result.past_key_values, use_cache=True)
    stop = set(eos_ids)
    out = []
    for row, limit in zip(torch.stack(drawn, dim=1).tolist(), limits, strict=True):
        row = row[:limit]
        end = next((k for k, t in enumerate(row) if t in stop), len(row) - 1)
        out.append(row[:end + 1])
    return out


def generate(lm, prompts: Sequence[str], *, temperature: float = 1.0, top_p: float = 1.0,
             batch_size: int = 64, max_new_tokens: int = 128, generator=None,
             deadline: float | None = None) -> list[str | None]:
    """Complete each prompt with :class:`~dparena.lm.model.LM` ``lm`` (``[bos] + prompt``, drawn by
    :func:`sample_batch`); returns the full texts, None for prompts not reached by the deadline.

    Prompts of the same token length are batched together (no padding); a row ends at the end
    token, after ``max_new_tokens`` or at the model's context length.
    """
    torch = require("torch", "llm")
    lm.model.eval()
    enc = lm.tokenizer(list(prompts), add_special_tokens=False)["input_ids"]
    by_len: dict[int, list[int]] = defaultdict(list)
    for i, ids in enumerate(enc):
        by_len[len(ids)].append(i)
    out: list[str | None] = [None] * len(prompts)

    def pick(logits):
        return sample_batch(logits, temperature, top_p, generator)

    for length in sorted(by_len):
        members = by_len[length]
        for start in range(0, len(members), batch_size):
            if deadline is not None and time.monotonic() > deadline:
                return out
            chunk = members[start:start + batch_size]
            ids = torch.tensor([[lm.bos_id, *enc[i]] for i in chunk], dtype=torch.long)
            limit = min(max_new_tokens, lm.max_positions - 1 - ids.shape[1])
            rows = decode(lm.model, ids, torch.ones_like(ids), limits=[limit] * len(chunk),
                          pick=pick, eos_ids=[lm.eos_id], fill_id=lm.eos_id)
            for row, i in zip(rows, chunk, strict=True):
                text = row[:-1] if row and row[-1] == lm.eos_id else row
                out[i] = prompts[i] + lm.tokenizer.decode(text, skip_special_tokens=False)
    return out
