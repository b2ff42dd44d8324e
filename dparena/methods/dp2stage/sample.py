"""Sampling rows from the fine-tuned LM, and scoring real rows with it (for the perplexity metric).

Generation is a plain key-value-cached loop (not ``transformers.generate``) so every draw comes
from a ``torch.Generator`` seeded from the run: temperature scaling, then nucleus (top-p)
filtering (Holtzman et al., ICLR 2020), then a multinomial draw. Prompts of the same token length
are batched together; a row ends at the end-of-text token or after ``max_new_tokens``.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from dparena.errors import require
from dparena.methods.dp2stage.loss import IGNORE, collate, encode, group_nll
from dparena.methods.dp2stage.serialize import GROUP_NAMES, Serializer, column_orders


def _filter_top_p(probs, top_p: float):
    torch = require("torch", "llm")
    if top_p >= 1.0:
        return probs
    sorted_p, order = probs.sort(dim=-1, descending=True)
    cum = sorted_p.cumsum(-1)
    drop = cum - sorted_p > top_p  # keep the smallest prefix whose mass reaches top_p
    sorted_p = sorted_p.masked_fill(drop, 0.0)
    out = torch.zeros_like(probs).scatter(-1, order, sorted_p)
    return out / out.sum(-1, keepdim=True)


def generate(lm, prompts: Sequence[str], *, temperature: float = 1.0, top_p: float = 1.0,
             batch_size: int = 64, max_new_tokens: int = 128, generator=None,
             deadline: float | None = None) -> list[str | None]:
    """Complete each prompt; returns the full texts (None for prompts not reached by the deadline)."""
    torch = require("torch", "llm")
    model = lm.model
    model.eval()
    enc = lm.tokenizer(list(prompts), add_special_tokens=False)["input_ids"]
    by_len: dict[int, list[int]] = defaultdict(list)
    for i, ids in enumerate(enc):
        by_len[len(ids)].append(i)
    out: list[str | None] = [None] * len(prompts)
    limit = lm.max_positions - 1
    with torch.no_grad():
        for length in sorted(by_len):
            members = by_len[length]
            for start in range(0, len(members), batch_size):
                if deadline is not None and time.monotonic() > deadline:
                    return out
                chunk = members[start:start + batch_size]
                ids = torch.tensor([[lm.bos_id, *enc[i]] for i in chunk], dtype=torch.long)
                b = ids.shape[0]
                new = torch.full((b, 0), lm.eos_id, dtype=torch.long)
                done = torch.zeros(b, dtype=torch.bool)
                past, step_in = None, ids
                pos = 0
                for _ in range(min(max_new_tokens, limit - ids.shape[1])):
                    positions = torch.arange(pos, pos + step_in.shape[1]).expand(b, -1)
                    mask = torch.ones((b, pos + step_in.shape[1]), dtype=torch.long)
                    res = model(input_ids=step_in, past_key_values=past, use_cache=True,
                                position_ids=positions, attention_mask=mask)
                    pos += step_in.shape[1]
                    past = res.past_key_values
                    logits = res.logits[:, -1].float() / max(temperature, 1e-6)
                    probs = _filter_top_p(torch.softmax(logits, -1), top_p)
                    nxt = torch.multinomial(probs, 1, generator=generator).squeeze(1)
                    nxt = torch.where(done, torch.full_like(nxt, lm.eos_id), nxt)
                    new = torch.cat([new, nxt[:, None]], 1)
                    done |= nxt == lm.eos_id
                    if bool(done.all()):
                        break
                    step_in = nxt[:, None]
                for row, i in zip(new.tolist(), chunk, strict=True):
                    cut = row.index(lm.eos_id) if lm.eos_id in row else len(row)
                    out[i] = prompts[i] + lm.tokenizer.decode(row[:cut], skip_special_tokens=False)
    return out


class LMScorer:
    """The fine-tuned LM with its serialization, for scoring real rows (never persisted)."""

    def __init__(self, lm, serializer: Serializer, shuffle: bool, first: str | None,
                 order: str = "sorted"):
        self.lm, self.serializer, self.shuffle, self.first = lm, serializer, shuffle, first
        self.order = order

    def group_nll(self, frame, seed: int = 0, batch_size: int = 64) -> dict[str, tuple[float, int]]:
        """Summed token cross-entropy and token count per group (key/value/other) over ``frame``.

        Rows are serialized exactly as in training (fixed order, or a seeded shuffle per row) and
        encoded ``[bos] + text + [eos]``. Scored: every text token but the first, and the end-of-row
        token (group "other"). The first text token (predicted from BOS alone) is left out as in
        the DP-2Stage reference, whose rows carry no BOS so their first token is never predicted.
        """
        torch = require("torch", "llm")
        names = self.serializer.schema.names
        records = frame[names].to_dict("records")
        orders = column_orders(names, len(records), self.shuffle, np.random.default_rng(seed),
                               self.first, self.order)
        texts = [self.serializer.serialize(r, o) for r, o in zip(records, orders, strict=True)]
        rows = encode(self.lm.tokenizer, [t for t, _ in texts], [s for _, s in texts],
                      self.lm.bos_id, self.lm.eos_id)
        rows = [(ids, [IGNORE, IGNORE, *groups[2:]]) for ids, groups in rows]
        totals = np.zeros((3, 2))
        self.lm.model.eval()
        with torch.no_grad():
            for start in range(0, len(rows), batch_size):
                ids, mask, pos, groups = collate(rows[start:start + batch_size], self.lm.pad_id)
                logits = self.lm.model(input_ids=ids, attention_mask=mask,
                                       position_ids=pos).logits
                totals += group_nll(logits, ids, groups)
        return {GROUP_NAMES[g]: (float(totals[g, 0]), int(totals[g, 1])) for g in range(3)}
