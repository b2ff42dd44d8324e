"""Privacy audits: canaries, the attacks that guess their membership, and audits of a method.

Each audit inserts canaries into the private data at random, runs the method once (or R times),
guesses which canaries went in from the synthetic output, and turns the count of correct guesses
into a lower bound on ε and the p-value of the claimed ε with :mod:`dparena.privacy.audit`'s
statistics (one-run: Steinke, Nasr & Jagielski, NeurIPS 2023; multi-run: Clopper–Pearson). It runs
methods, so it lives beside the harness.

Canaries for tables ("rare-value canaries"): each canary is a private-looking row (the other
columns copied from a random private row) carrying one public category that no private row has,
distinct per canary. The attack counts synthetic rows with that category: any trace of the canary
in the output shows it was included. The auditor reads private data freely — an audit is a test of
the mechanism, not a release.

Canaries for images: each canary is an image of independent random black/white pixels with a
random public label — far from natural images and from each other. The attack measures the L2
distance from each canary to its nearest synthetic image and, abstaining on the middle, guesses IN
for the closest quarter of the canaries and OUT for the farthest quarter (the one-run analysis
allows any number r ≤ m of guesses). Only the one-run analysis is offered for images.

Canaries for texts: each canary is a sentence of random pseudo-words (lowercase letter strings no
language uses) with a random public label. The score is the largest share of the canary's words
found in one synthetic text: a generator that copies or memorises a private text reproduces them,
one that does not has no reason to. The guesses are ranked as for images (one-run analysis).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from dparena.datasets.schema import Categorical, ImageSchema, TableSchema, TextSchema
from dparena.errors import ConfigError
from dparena.methods.base import Task
from dparena.privacy.audit import (
    multi_run_lower_bound,
    multi_run_p_value,
    one_run_lower_bound,
    one_run_p_value,
)
from dparena.privacy.ledger import Ledger


@dataclass(frozen=True)
class Canary:
    column: str
    value: str


def rare_value_canaries(schema: TableSchema, private: pd.DataFrame, k: int | None,
                        rng: np.random.Generator) -> tuple[list[Canary], pd.DataFrame]:
    """Up to ``k`` canaries, each a distinct public category absent from the private rows."""
    pool = [Canary(c.name, v) for c in schema.columns
            if isinstance(c, Categorical) and c.name != schema.target
            for v in c.categories if not (private[c.name] == v).any()]
    if not pool:
        raise ConfigError("no public category is absent from the private data, so rare-value "
                          "canaries cannot be built; audit a smaller n_private subsample")
    order = rng.permutation(len(pool))
    chosen = [pool[i] for i in order[: (k or len(pool))]]
    base = private.iloc[rng.integers(0, len(private), len(chosen))].reset_index(drop=True).copy()
    for i, can in enumerate(chosen):
        base.loc[i, can.column] = can.value
    return chosen, base


def canary_scores(synthetic: pd.DataFrame, canaries: list[Canary]) -> np.ndarray:
    """How many synthetic rows carry each canary's rare value."""
    return np.array([int((synthetic[c.column] == c.value).sum()) for c in canaries])


@dataclass
class AuditResult:
    claimed_epsilon: float
    delta: float
    lower_bound: float
    confidence: float
    analysis: str  # "one-run" or "multi-run"
    attack: str
    canaries: int
    guesses: int
    correct: int
    runs: int
    p_value: float  # of the null "the mechanism is (claimed ε, δ)-DP"

    @property
    def failed(self) -> bool:
        """This audit alone exceeds the claimed ε at its confidence (a leaderboard applies
        Holm–Bonferroni over all its audits instead)."""
        return self.lower_bound > self.claimed_epsilon + 1e-9

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "failed": self.failed}


ATTACK = "rare-value canaries; score = synthetic rows carrying the canary's value; guess IN if > 0"


def audit_tabular(method, private: pd.DataFrame, schema: TableSchema, budget, n_samples: int,
                  seed: int, canaries: int | None = None, runs: int = 1,
                  confidence: float = 0.95) -> AuditResult:
    """Audit a tabular method: one run with m canaries (runs = 1) or R one-canary runs (runs > 1)."""
    def one(run_seed: int, k: int | None):
        rng = np.random.default_rng([seed, run_seed, 0xA0D17])
        chosen, rows = rare_value_canaries(schema, private, k, rng)
        included = rng.random(len(chosen)) < 0.5
        data = pd.concat([private, rows[included]], ignore_index=True)
        data = data.iloc[rng.permutation(len(data))].reset_index(drop=True)
        # N is the audit's own declared subsample size; the canaries it adds at random are the
        # neighbouring records the guarantee is about
        task = Task(private=data, schema=schema, budget=budget, n_samples=n_samples,
                    seed=int(rng.integers(2**31)), public_size=len(private))
        synthetic = method.generate(task, Ledger())
        guesses = canary_scores(synthetic.data, chosen) > 0
        return included, guesses

    if runs <= 1:
        included, guesses = one(0, canaries)
        m = len(included)
        v = int((included == guesses).sum())
        bound = one_run_lower_bound(m, m, v, budget.delta, confidence)
        return AuditResult(budget.epsilon, budget.delta, bound, confidence, "one-run", ATTACK,
                           m, m, v, 1,
                           p_value=one_run_p_value(m, m, v, budget.epsilon, budget.delta))
    fp = fn = n_in = n_out = 0
    for r in range(runs):
        included, guesses = one(r, 1)
        if included[0]:
            n_in += 1
            fn += int(not guesses[0])
        else:
            n_out += 1
            fp += int(guesses[0])
    bound = multi_run_lower_bound(fp, n_out, fn, n_in, budget.delta, confidence)
    return AuditResult(budget.epsilon, budget.delta, bound, confidence, "multi-run", ATTACK,
                       runs, runs, runs - fp - fn, runs,
                       p_value=multi_run_p_value(fp, n_out, fn, n_in, budget.epsilon,
                                                 budget.delta))


IMAGE_ATTACK = ("random-pattern image canaries; score = L2 distance to the nearest synthetic "
                "image; guess IN for the closest quarter, OUT for the farthest quarter")


def image_canaries(schema: ImageSchema, m: int, rng: np.random.Generator
                   ) -> tuple[np.ndarray, np.ndarray]:
    """``m`` canary images of independent random 0/255 pixels, each with a random public label."""
    pixels = (rng.random((m, *schema.shape)) < 0.5).astype(np.uint8) * 255
    return pixels, rng.integers(0, schema.num_classes, m).astype(np.int64)


def nearest_distances(queries: np.ndarray, synthetic: np.ndarray, batch: int = 1024) -> np.ndarray:
    """L2 distance from each query image to its nearest synthetic image (batched over synthetic)."""
    q = queries.reshape(len(queries), -1).astype(np.float64)
    best = np.full(len(q), np.inf)
    q2 = (q * q).sum(1)
    for start in range(0, len(synthetic), batch):
        s = synthetic[start:start + batch].reshape(-1, q.shape[1]).astype(np.float64)
        d2 = q2[:, None] - 2.0 * q @ s.T + (s * s).sum(1)[None, :]
        best = np.minimum(best, d2.min(axis=1))
    return np.sqrt(np.clip(best, 0.0, None))


TEXT_ATTACK = ("random pseudo-word text canaries; score = largest share of the canary's words "
               "in one synthetic text; guess IN for the top quarter, OUT for the bottom quarter")


def text_canaries(schema: TextSchema, m: int, rng: np.random.Generator,
                  words: int = 8) -> tuple[list[str], np.ndarray]:
    """``m`` canary texts of ``words`` random 7-letter pseudo-words, each with a random label."""
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    texts = [" ".join("".join(rng.choice(letters, 7)) for _ in range(min(words, schema.max_words)))
             for _ in range(m)]
    return texts, rng.integers(0, schema.num_classes, m).astype(np.int64)


def word_overlap(canaries: list[str], synthetic) -> np.ndarray:
    """For each canary, the largest share of its words found in a single synthetic text."""
    bags = [set(str(t).lower().split()) for t in synthetic]
    out = np.zeros(len(canaries))
    for i, canary in enumerate(canaries):
        words = canary.split()
        out[i] = max((sum(w in bag for w in words) / len(words) for bag in bags), default=0.0)
    return out


def _ranked_one_run(method, private, labels, canaries, canary_labels, schema, budget,
                    n_samples: int, rng: np.random.Generator, closeness, attack: str,
                    confidence: float) -> AuditResult:
    """Insert each canary with probability 1/2, run ``method`` once, rank the canaries by
    ``closeness(canaries, synthetic)`` and guess IN for the top quarter, OUT for the bottom one."""
    m = len(canaries)
    included = rng.random(m) < 0.5
    chosen = np.flatnonzero(included)
    if isinstance(private, np.ndarray):
        data = np.concatenate([private, np.asarray(canaries)[included]])
    else:
        data = list(private) + [canaries[i] for i in chosen]
    data_labels = np.concatenate([np.asarray(labels), canary_labels[included]])
    order = rng.permutation(len(data))
    data = data[order] if isinstance(data, np.ndarray) else [data[i] for i in order]
    task = Task(private=data, schema=schema, budget=budget, n_samples=n_samples,
                seed=int(rng.integers(2**31)), private_labels=data_labels[order],
                public_size=len(labels))  # the audit's declared size, canaries not counted
    synthetic = method.generate(task, Ledger())
    score = closeness(canaries, synthetic.data)
    k = m // 4
    ranked = np.argsort(-score, kind="stable")
    guessed_in, guessed_out = ranked[:k], ranked[m - k:]
    v = int(included[guessed_in].sum() + (~included[guessed_out]).sum())
    bound = one_run_lower_bound(m, 2 * k, v, budget.delta, confidence)
    return AuditResult(budget.epsilon, budget.delta, bound, confidence, "one-run", attack,
                       m, 2 * k, v, 1,
                       p_value=one_run_p_value(m, 2 * k, v, budget.epsilon, budget.delta))


def _check_canaries(m: int) -> int:
    if m < 4:
        raise ConfigError("a ranked audit needs at least 4 canaries (--canaries)")
    return m


def audit_images(method, private: np.ndarray, labels: np.ndarray, schema: ImageSchema, budget,
                 n_samples: int, seed: int, canaries: int | None = None,
                 confidence: float = 0.95) -> AuditResult:
    """One-run audit of an image method with random-pattern canaries (see the module docstring)."""
    m = _check_canaries(int(canaries or 100))
    rng = np.random.default_rng([seed, 0xA0D17, 1])
    images, canary_labels = image_canaries(schema, m, rng)

    def closeness(cans, synthetic):
        out = np.asarray(synthetic)
        return -nearest_distances(cans, out[..., None] if out.ndim == 3 else out)

    return _ranked_one_run(method, private, labels, images, canary_labels, schema, budget,
                           n_samples, rng, closeness, IMAGE_ATTACK, confidence)


def audit_texts(method, private: list[str], labels: np.ndarray, schema: TextSchema, budget,
                n_samples: int, seed: int, canaries: int | None = None,
                confidence: float = 0.95) -> AuditResult:
    """One-run audit of a text method with pseudo-word canaries (see the module docstring)."""
    m = _check_canaries(int(canaries or 40))
    rng = np.random.default_rng([seed, 0xA0D17, 2])
    texts, canary_labels = text_canaries(schema, m, rng)
    return _ranked_one_run(method, private, labels, texts, canary_labels, schema, budget,
                           n_samples, rng, word_overlap, TEXT_ATTACK, confidence)


def audit_run(method, private, schema, budget, seed: int, options: dict[str, Any],
              private_labels=None) -> AuditResult:
    """Audit ``method`` at ``budget`` on a random ``n_private`` subsample of the private data.

    Small subsamples leave many public categories unused, which rare-value canaries need; the DP
    guarantee being tested holds for every dataset, so auditing on a subsample is sound.
    """
    confidence = float(options.get("confidence") or 0.95)
    n = min(int(options.get("n_private") or len(private)), len(private))
    rng = np.random.default_rng([seed, 0x5AB])
    idx = np.sort(rng.choice(len(private), n, replace=False))
    n_samples = int(options.get("n_samples") or 5 * n)
    if isinstance(schema, ImageSchema | TextSchema):
        kind = "image" if isinstance(schema, ImageSchema) else "text"
        if private_labels is None:
            raise ConfigError(f"a {kind} audit needs the private labels")
        if int(options.get("runs") or 1) > 1:
            raise ConfigError(f"{kind} audits use the one-run analysis only; drop --runs")
        sub = (np.asarray(private)[idx] if kind == "image" else [private[i] for i in idx])
        audit = audit_images if kind == "image" else audit_texts
        return audit(method, sub, np.asarray(private_labels)[idx], schema, budget,
                     int(options.get("n_samples") or n), seed, canaries=options.get("canaries"),
                     confidence=confidence)
    if not isinstance(schema, TableSchema):
        raise ConfigError("privacy audits are implemented for tabular, image and text methods")
    sub = private.iloc[idx].reset_index(drop=True)
    return audit_tabular(method, sub, schema, budget, n_samples, seed,
                         canaries=options.get("canaries"), runs=int(options.get("runs") or 1),
                         confidence=confidence)
