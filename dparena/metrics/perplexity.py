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

    As the DP-2Stage reference defines it (ft_opacus.py ``compute_disentangled_loss``): each
    group's token CEs are pooled over the whole scored set (not averaged per row or per batch),
    then exponentiated; the real rows are the eval split (Adult: the test set, the reference's
    ``--validation_file`` in its full configuration); the first token of a row is not scored (the
    reference tokenizes rows without BOS, so it is never predicted; dparena's rows start with BOS
    and that one prediction is left out); "other" holds the separators, prefixes and the
    end-of-row token. Differences that remain:

    * rows: the first ``max_rows`` eval rows (default 2000; ``max_rows = 0``: all), the reference
      scores the whole test split (16,281 rows);
    * end of row: dparena scores exactly one end-of-row token per row. The reference appends none
      but pads each batch of 32 with EOS and keeps the padding in its labels, so a row shorter
      than its batch's longest scores its end plus one EOS-after-EOS prediction per further pad,
      and the longest row of each batch scores no end at all; those predictions land in "other"
      and in its total;
    * "all" is key + value + other; the reference's total also counts those padding predictions;
    * groups: dparena assigns a token to the group holding most of its characters in the
      serializer's spans; the reference labels tokens by id (the key-value separator, the field
      separator, the "The" prefix, EOS and BOS are "other", the rest alternate key / value at each
      separator). On well-formed rows with GPT-2's tokenizer the two agree; they differ where a
      value contains a separator token or BPE merges a separator with its neighbours;
    * shuffled order: a permutation per row seeded by the run (the reference uses Python's global
      ``random``).

    Version 2: the first token is no longer scored (version 1 scored it as a key token).
    """

    modality = Modality.TABULAR
    description = "exp(mean token CE) of the method's own LM on real eval rows (key/value/other/all)"
    extra = "llm"
    version = "2"
    direction = Direction.MINIMIZE

    def __init__(self, max_rows: int | None = 2000):
        self.max_rows = max_rows  # None or 0: every eval row

    def headline(self) -> list[str]:
        return ["perplexity/value"]

    def compute(self, synthetic: Synthetic, real: EvalData, ctx: MetricContext) -> list[MetricValue]:
        scorer = synthetic.extras.get("lm_scorer")
        if scorer is None:
            return []
        frame = real.data
        if self.max_rows and len(frame) > self.max_rows:
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

    def __init__(self, max_texts: int = 500, max_tokens: int = 256, batch_size: int = 8):
        self.max_texts, self.max_tokens, self.batch_size = max_texts, max_tokens, batch_size

    def compute(self, synthetic: Synthetic, real: EvalData, ctx: MetricContext) -> list[MetricValue]:
        from dparena.lm.model import reference_lm

        lm = reference_lm()
        texts = [str(t) for t in list(synthetic.data)[: self.max_texts]]
        ce, n = score_texts(lm, texts, self.max_tokens, self.batch_size)
        return [self.value("fluency-perplexity", math.exp(ce / n) if n else math.nan)]


def score_texts(lm, texts: list[str], max_tokens: int, batch_size: int) -> tuple[float, int]:
    """Summed next-token CE and token count of ``texts`` under ``lm`` (bos-prefixed, truncated)."""
    from dparena.lm.loss import IGNORE, score_rows

    enc = lm.tokenizer(texts, add_special_tokens=False)["input_ids"]
    rows = [([lm.bos_id, *ids[: max_tokens]], [IGNORE] + [0] * len(ids[: max_tokens]))
            for ids in enc]
    sums = score_rows(lm.model, rows, lm.pad_id, batch_size)
    return float(sums[0, 0]), int(sums[0, 1])
