"""Serialized rows as token rows with loss groups, and scoring real rows with the fine-tuned LM.

A token's group (key, value or other: :data:`~dparena.methods.dp2stage.serialize.GROUP_NAMES`)
comes from the serializer's character spans; the losses over groups are
:mod:`dparena.lm.loss`'s.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from dparena.lm.loss import IGNORE, score_rows
from dparena.methods.dp2stage.serialize import (
    GROUP_NAMES,
    OTHER,
    Serializer,
    Span,
    column_orders,
)


def token_groups(offsets: Sequence[tuple[int, int]], spans: Sequence[Span], text: str) -> list[int]:
    """The group of each token: the group holding most of its non-space characters.

    ``offsets`` is the tokenizer's character offset mapping for ``text``; ``spans`` the serializer's
    spans. Tokens made only of whitespace (or special tokens with an empty span) are OTHER; a tie
    between groups goes to the lowest group id (key before value before other).
    """
    char_group = np.full(len(text), OTHER, dtype=np.int64)
    for s in spans:
        char_group[s.start:s.end] = s.group
    is_space = np.fromiter((c.isspace() for c in text), dtype=bool, count=len(text))
    groups = []
    for start, end in offsets:
        g = char_group[start:end][~is_space[start:end]]
        groups.append(int(np.bincount(g, minlength=3).argmax()) if g.size else OTHER)
    return groups


def encode(tokenizer, texts: Sequence[str], spans: Sequence[Sequence[Span]], bos_id: int,
           eos_id: int) -> list[tuple[list[int], list[int]]]:
    """Token ids ``[bos] + text + [eos]`` and their groups (bos: IGNORE, eos: OTHER) per row."""
    enc = tokenizer(list(texts), add_special_tokens=False, return_offsets_mapping=True)
    out = []
    for ids, offs, text, sp in zip(enc["input_ids"], enc["offset_mapping"], texts, spans,
                                   strict=True):
        groups = token_groups(offs, sp, text)
        out.append(([bos_id, *ids, eos_id], [IGNORE, *groups, OTHER]))
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
        names = self.serializer.schema.names
        records = frame[names].to_dict("records")
        orders = column_orders(names, len(records), self.shuffle, np.random.default_rng(seed),
                               self.first, self.order)
        texts = [self.serializer.serialize(r, o) for r, o in zip(records, orders, strict=True)]
        rows = encode(self.lm.tokenizer, [t for t, _ in texts], [s for _, s in texts],
                      self.lm.bos_id, self.lm.eos_id)
        rows = [(ids, [IGNORE, IGNORE, *groups[2:]]) for ids, groups in rows]
        totals = score_rows(self.lm.model, rows, self.lm.pad_id, batch_size)
        return {GROUP_NAMES[g]: (float(totals[g, 0]), int(totals[g, 1])) for g in range(3)}
