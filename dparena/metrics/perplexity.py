"""Perplexity metrics: a method's own LM on the real eval rows, and a reference LM on synthetic text.

Perplexity = exp(mean token cross-entropy) (Jelinek et al., 1977; the standard LM definition, as
used by DP-2Stage, Afonja et al., arXiv 2412.02467, §5 "perplexity on the real test set").
"""

from __future__ import annotations

import math

from dparena.metrics.base import EvalData, Metric, MetricContext
from dparena.types import Direction, MetricValue, Modality, Synthetic


class Perplexity(Metric):
    """The method's fine-tuned LM scored on the real eval rows serialized as in training.

    exp(mean token CE) over key tokens, value tokens, separator/other tokens and all of them
    (DP-2Stage reports the value perplexity: the headline). The LM comes from
    ``Synthetic.extras["lm_scorer"]`` (never persisted); methods without one report nothing, which
    the leaderboard shows as "n/a". Shuffled-order methods are scored on a seeded shuffle.
    """

    modality = Modality.TABULAR
    description = "exp(mean token CE) of the method's own LM on real eval rows (key/value/other/all)"
    extra = "llm"
    direction = Direction.MINIMIZE
    lower = 1.0

    def __init__(self, max_rows: int | None = 2000):
        self.max_rows = max_rows

    def headline(self) -> list[str]:
        return ["perplexity/value"]

    def compute(self, synthetic: Synthetic, real: EvalData, ctx: MetricContext) -> list[MetricValue]:
        scorer = synthetic.extras.get("lm_scorer")
        if scorer is None:
            return []
        frame = real.data
        if self.max_rows is not None and len(frame) > self.max_rows:
            frame = frame.iloc[: self.max_rows]  # eval rows are already a seeded subsample
        sums = scorer.group_nll(frame, seed=ctx.seed)
        out = []
        total_ce = sum(s for s, _ in sums.values())
        total_n = sum(n for _, n in sums.values())
        for group in ("key", "value", "other"):
            ce, n = sums[group]
            if n:
                out.append(self.value(f"perplexity/{group}", math.exp(ce / n)))
        if total_n:
            out.append(self.value("perplexity/all", math.exp(total_ce / total_n)))
        return out


class ValidityRate(Metric):
    """Share of generated rows that parse into a valid record of the public schema.

    Reported by LM-based generators in ``Synthetic.info["validity_rate"]``; others: n/a.
    """

    modality = Modality.TABULAR
    description = "Share of generated texts that parse into valid rows (LM-based methods)"
    extra = ""
    direction = Direction.MAXIMIZE
    lower, upper = 0.0, 1.0

    def compute(self, synthetic: Synthetic, real: EvalData, ctx: MetricContext) -> list[MetricValue]:
        rate = synthetic.info.get("validity_rate")
        return [] if rate is None else [self.value("validity", rate)]


class FluencyPerplexity(Metric):
    """Perplexity of synthetic text under a fixed reference LM (SmolLM2-135M-Instruct asset).

    exp(total token CE / total tokens) over the synthetic texts (each text scored on its own,
    starting after the model's BOS token). A fixed, public scorer: lower = more fluent English.
    """

    modality = Modality.TEXT
    description = "exp(mean token CE) of synthetic text under the fixed SmolLM2-135M reference LM"
    extra = "llm"
    direction = Direction.MINIMIZE
    lower = 1.0

    def __init__(self, max_texts: int = 500, max_tokens: int = 256, batch_size: int = 8):
        self.max_texts, self.max_tokens, self.batch_size = max_texts, max_tokens, batch_size

    def compute(self, synthetic: Synthetic, real: EvalData, ctx: MetricContext) -> list[MetricValue]:
        from dparena.methods.dp2stage.lm import reference_lm

        lm = reference_lm()
        texts = [str(t) for t in list(synthetic.data)[: self.max_texts]]
        ce, n = score_texts(lm, texts, self.max_tokens, self.batch_size)
        return [self.value("fluency-perplexity", math.exp(ce / n) if n else math.nan)]


def score_texts(lm, texts: list[str], max_tokens: int, batch_size: int) -> tuple[float, int]:
    """Summed next-token CE and token count of ``texts`` under ``lm`` (bos-prefixed, truncated)."""
    import torch

    from dparena.methods.dp2stage.loss import IGNORE, collate, group_nll

    enc = lm.tokenizer(texts, add_special_tokens=False)["input_ids"]
    rows = [([lm.bos_id, *ids[: max_tokens]], [IGNORE] + [0] * len(ids[: max_tokens]))
            for ids in enc]
    total, count = 0.0, 0
    lm.model.eval()
    with torch.no_grad():
        for start in range(0, len(rows), batch_size):
            ids, mask, pos, groups = collate(rows[start:start + batch_size], lm.pad_id)
            logits = lm.model(input_ids=ids, attention_mask=mask, position_ids=pos).logits
            sums = group_nll(logits, ids, groups)
            total += float(sums[0, 0])
            count += int(sums[0, 1])
    return total, count
