"""Aug-PE's text APIs on top of any :class:`~dparena.llm.LLM` (Xie et al., ICML 2024, Sec. 3).

``random_api`` writes fresh texts of a class from public knowledge only: the schema's label phrase
("a fresh movie review"), its domain, and for diversity a public subtopic and a writer persona drawn
per prompt (Aug-PE's random prompts name a subcategory and a writer role). ``variation_api``
rewrites a synthetic text in one of two ways (Aug-PE, Sec. 3.2 and App. C):

* **fill-in-the-blanks**: each whitespace-separated word is replaced by ``_`` independently with
  probability ``p``, and the model is asked to fill the blanks and return the whole text;
* **paraphrase**: the model rewrites the text in a tone drawn from :data:`TONES`.

Both ask for a target length of ``len(words) + round(N(0, word_count_std²))`` words (at least
``min_words``; Aug-PE's length variation), and cap the completion at
``ceil(tokens_per_word * target)`` tokens (at most ``max_new_tokens``).

**Degree schedule.** A degree ``d`` lies in [0, 1]. Fill-in-the-blanks blanks words with probability
``p = d``; paraphrase samples at temperature ``T = t_min + d (t_max - t_min)``. A PE run lowers ``d``
over its iterations to make smaller changes as the population converges. ``mode = "mixed"`` draws
one of the two per sample. Every random choice (personas, subtopics, tones, blanks, lengths, and the
LLM's sampling) comes from the ``rng`` passed in.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from dparena.datasets.schema import TextSchema
from dparena.errors import ConfigError
from dparena.llm import LLM, load_llm
from dparena.methods.pe.api import API

#: tones of the paraphrase variation (one drawn per sample)
TONES = ("in a casual tone", "in a formal tone", "in a more enthusiastic tone",
         "in a more reserved tone", "in plain, simple words", "in a vivid, descriptive style",
         "more concisely", "in a conversational style")
#: writer personas of random prompts (one drawn per prompt)
PERSONAS = ("a professional critic", "an ordinary reader", "a long-time enthusiast",
            "a journalist", "a student", "a specialist in the field", "a first-time writer",
            "a blogger")
BLANK = "_"
MODES = ("fill-in-blanks", "paraphrase", "mixed")


def blank_words(text: str, p: float, rng: np.random.Generator) -> tuple[str, np.ndarray]:
    """``text`` with each word replaced by ``_`` with probability ``p``; returns the masked text
    and the boolean mask over its words."""
    words = text.split()
    mask = rng.random(len(words)) < p
    return " ".join(BLANK if m else w for w, m in zip(words, mask, strict=True)), mask


class LLMTextAPI(API):
    """Aug-PE's random and variation APIs for a labelled text dataset with a public ``schema``.

    ``llm`` is an :class:`~dparena.llm.LLM` or a name for :func:`~dparena.llm.load_llm`.
    """

    name = "llm-text"

    def __init__(self, llm: LLM | str, schema: TextSchema, *, mode: str = "fill-in-blanks",
                 temperature: float = 1.0, top_p: float = 1.0,
                 paraphrase_temperatures: tuple[float, float] = (0.6, 1.2),
                 word_count_std: float = 5.0, min_words: int = 5, tokens_per_word: float = 2.0,
                 max_new_tokens: int | None = None, personas: Sequence[str] = PERSONAS,
                 tones: Sequence[str] = TONES):
        if not isinstance(schema, TextSchema):
            raise ConfigError("the text API needs a dataset with a TextSchema")
        if mode not in MODES:
            raise ConfigError(f"variation mode must be one of {MODES} (got {mode!r})")
        lo, hi = paraphrase_temperatures
        if not 0 <= lo <= hi:
            raise ConfigError("paraphrase_temperatures must be (t_min, t_max), 0 <= t_min <= t_max")
        if word_count_std < 0 or min_words < 1 or tokens_per_word <= 0:
            raise ConfigError("word_count_std >= 0, min_words >= 1, tokens_per_word > 0 required")
        if not personas or not tones:
            raise ConfigError("personas and tones must be non-empty")
        if isinstance(llm, str):  # a model directory, hub id or "openai:MODEL"
            llm = load_llm(llm)
        self.llm = llm
        self.schema = schema
        self.mode = mode
        self.temperature = temperature
        self.top_p = top_p
        self.paraphrase_temperatures = (float(lo), float(hi))
        self.word_count_std = word_count_std
        self.min_words = min_words
        self.tokens_per_word = tokens_per_word
        self.max_new_tokens = max_new_tokens or math.ceil(tokens_per_word * schema.max_words)
        self.personas = tuple(personas)
        self.tones = tuple(tones)

    # -- prompts (public knowledge + synthetic samples only) ------------------------------------
    def _check_label(self, label: int) -> None:
        if not 0 <= int(label) < self.schema.num_classes:
            raise ConfigError(f"label {label} is not in 0..{self.schema.num_classes - 1}")

    def random_prompts(self, label: int, n: int, rng: np.random.Generator) -> list[str]:
        """``n`` prompts for fresh texts of class ``label``, each with a drawn persona/subtopic."""
        self._check_label(label)
        s = self.schema
        prompts = []
        for _ in range(n):
            persona = self.personas[rng.integers(len(self.personas))]
            topic = (f" Subject: {s.subtopics[rng.integers(len(s.subtopics))]}."
                     if s.subtopics else "")
            prompts.append(f"You are {persona}. Write {s.describe(label)}.{topic} Reply with the "
                           f"{s.domain} only, in at most {s.max_words} words.")
        return prompts

    def target_words(self, text: str, rng: np.random.Generator) -> int:
        """Aug-PE's length variation: the text's word count plus rounded Gaussian noise."""
        noise = rng.normal(0.0, self.word_count_std) if self.word_count_std > 0 else 0.0
        return int(min(max(self.min_words, len(text.split()) + round(noise)),
                       self.schema.max_words))

    def variation_prompts(self, samples: Sequence[str], labels: np.ndarray, degree: float,
                          rng: np.random.Generator) -> tuple[list[str], list[float], list[int]]:
        """Per sample: the prompt, its sampling temperature and its target word count."""
        self.validate_degrees([degree])
        if len(labels) != len(samples):
            raise ConfigError(f"{len(samples)} samples but {len(labels)} labels")
        s = self.schema
        lo, hi = self.paraphrase_temperatures
        prompts, temps, targets = [], [], []
        for text, label in zip(samples, labels, strict=True):
            self._check_label(int(label))
            mode = self.mode if self.mode != "mixed" else MODES[int(rng.integers(2))]
            target = self.target_words(text, rng)
            what = s.describe(int(label))
            if mode == "fill-in-blanks":
                masked, _ = blank_words(text, degree, rng)
                prompts.append(f"Here is {what} in which some words were replaced by blanks "
                               f"({BLANK}):\n{masked}\nFill in the blanks and write the complete "
                               f"{s.domain} in about {target} words. Reply with the text only.")
                temps.append(self.temperature)
            else:
                tone = self.tones[rng.integers(len(self.tones))]
                prompts.append(f"Rewrite {what} {tone}, in about {target} words, keeping what it "
                               f"says:\n{text}\nReply with the rewritten text only.")
                temps.append(lo + degree * (hi - lo))
            targets.append(target)
        return prompts, temps, targets

    # -- the API -------------------------------------------------------------------------------
    def _tokens(self, words: int) -> int:
        return max(1, min(self.max_new_tokens, math.ceil(self.tokens_per_word * words)))

    def _finish(self, texts: list[str]) -> list[str]:
        return [self.schema.truncate(t.strip().strip('"').strip()) for t in texts]

    def random_api(self, label: int, n: int, rng: np.random.Generator) -> list[str]:
        prompts = self.random_prompts(label, n, rng)
        out = self.llm.generate(prompts, temperature=self.temperature, top_p=self.top_p,
                                max_new_tokens=self._tokens(self.schema.max_words), rng=rng)
        return self._finish(out)

    def variation_api(self, samples: Sequence[str], labels: np.ndarray, degree: float,
                      rng: np.random.Generator) -> list[str]:
        prompts, temps, targets = self.variation_prompts(samples, np.asarray(labels), degree, rng)
        out: list[str] = [""] * len(prompts)
        # one LLM call per distinct temperature (at most two: fill-in-blanks and paraphrase)
        for temp in sorted(set(temps)):
            idx = [i for i, t in enumerate(temps) if t == temp]
            got = self.llm.generate([prompts[i] for i in idx], temperature=temp, top_p=self.top_p,
                                    max_new_tokens=[self._tokens(targets[i]) for i in idx],
                                    rng=rng)
            for i, text in zip(idx, got, strict=True):
                out[i] = text
        return self._finish(out)

    def validate_degrees(self, degrees: Sequence[float]) -> None:
        """Degrees must be numbers in [0, 1] (a blank probability / a temperature position)."""
        bad = [d for d in degrees
               if not isinstance(d, int | float | np.floating) or not 0.0 <= float(d) <= 1.0]
        if bad:
            raise ConfigError(f"text variation degrees must lie in [0, 1] (blank probability / "
                              f"temperature position); got {bad[0]!r}")
