"""Empirical privacy auditing: canaries, membership guesses and lower bounds on ε.

One-run auditing (Steinke, Nasr & Jagielski, "Privacy Auditing with One (1) Training Run",
NeurIPS 2023): m canaries are each included in the private data independently with probability
1/2; after one run of the mechanism an attacker guesses membership for r of them and gets v right.
If the mechanism is (ε, δ)-DP, the number of correct guesses is, up to a δ-term, stochastically
dominated by Binomial(r, e^ε / (1 + e^ε)) (their Theorem 5.2). The p-value of observing ≥ v
correct guesses is therefore computable for any ε, and the largest ε that is rejected at the
stated confidence is a lower bound on the mechanism's true ε.

Multi-run auditing (the classic approach): R independent runs with one canary each, included with
probability 1/2; Clopper–Pearson upper bounds on the false-positive and false-negative rates give
ε ≥ log((1 − δ − FNR) / FPR) (and the symmetric term) at the stated confidence.

Each audit also reports the p-value of the claim "the mechanism is (claimed ε, δ)-DP": for one run
the p-value above at the claimed ε; for R runs the smallest 1 − confidence at which the
Clopper–Pearson bound exceeds the claimed ε (found by bisection and rounded up, so still a valid
p-value, since the bound grows as the confidence drops). A leaderboard holds many audits, so it
flags a run only when Holm–Bonferroni over all of them rejects its claim (``holm_bonferroni``):
one audit alone at 95% confidence would flag a correct mechanism 5% of the time.

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

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize, stats

from dparena.datasets.schema import Categorical, ImageSchema, TableSchema, TextSchema
from dparena.errors import ConfigError


def one_run_p_value(m: int, r: int, v: int, epsilon: float, delta: float) -> float:
    """P-value of v correct guesses out of r (m canaries) under the null '(ε, δ)-DP'."""
    if not 0 <= v <= r <= m:
        raise ValueError("need 0 <= v <= r <= m")
    q = 1.0 / (1.0 + math.exp(-epsilon))
    tail = float(stats.binom.sf(v - 1, r, q))  # P[Binomial(r, q) >= v]
    # the δ-term of Theorem 5.2: the worst average of P[v - i <= Binomial < v] / i over i
    pmf = stats.binom.pmf(np.arange(v - 1, -1, -1), r, q)  # P[B = v-1], P[B = v-2], ...
    alpha = float(np.max(np.cumsum(pmf) / np.arange(1, v + 1))) if v > 0 else 0.0
    return min(1.0, tail + 2.0 * m * delta * alpha)


def one_run_lower_bound(m: int, r: int, v: int, delta: float, confidence: float = 0.95) -> float:
    """Largest ε rejected at ``confidence`` by one_run_p_value (0 when nothing can be rejected)."""
    beta = 1.0 - confidence
    if r == 0 or one_run_p_value(m, r, v, 0.0, delta) >= beta:
        return 0.0
    hi = 1.0
    while one_run_p_value(m, r, v, hi, delta) < beta:
        hi *= 2.0
        if hi > 1e3:
            return math.inf
    return float(optimize.brentq(lambda e: one_run_p_value(m, r, v, e, delta) - beta, 0.0, hi,
                                 xtol=1e-6))


def clopper_pearson_upper(k: int, n: int, confidence: float) -> float:
    """One-sided Clopper–Pearson upper bound of a binomial proportion."""
    return _clopper_pearson_upper_at(k, n, 1.0 - confidence)


def _clopper_pearson_upper_at(k: int, n: int, alpha: float) -> float:
    """The upper bound at error level ``alpha`` (precise for tiny ``alpha``, unlike 1 − confidence)."""
    if n == 0 or k >= n:
        return 1.0
    return float(stats.beta.isf(alpha, k + 1, n - k))


def multi_run_lower_bound(fp: int, n_out: int, fn: int, n_in: int, delta: float,
                          confidence: float = 0.95) -> float:
    """ε lower bound from false positives / negatives over independent one-canary runs.

    Both rates are bounded simultaneously (Bonferroni: each at (1 + confidence) / 2).
    """
    return _multi_run_bound_at(fp, n_out, fn, n_in, delta, 1.0 - confidence)


def multi_run_p_value(fp: int, n_out: int, fn: int, n_in: int, epsilon: float,
                      delta: float) -> float:
    """P-value of the null '(ε, δ)-DP' for a multi-run audit.

    The smallest β = 1 − confidence at which multi_run_lower_bound exceeds ``epsilon``: the bound
    grows as β grows, so the tests are nested and this is a valid p-value. Bisection on log β,
    rounded up (the returned β rejects); 1.0 when even β = 1 rejects nothing.
    """
    def rejects(log_beta: float) -> bool:
        return _multi_run_bound_at(fp, n_out, fn, n_in, delta, math.exp(log_beta)) > epsilon

    lo, hi = math.log(1e-300), 0.0
    if not rejects(hi):
        return 1.0
    if rejects(lo):
        return 1e-300
    while hi - lo > 1e-9:  # relative precision of β
        mid = 0.5 * (lo + hi)
        lo, hi = (lo, mid) if rejects(mid) else (mid, hi)
    return math.exp(hi)


def _multi_run_bound_at(fp: int, n_out: int, fn: int, n_in: int, delta: float,
                        beta: float) -> float:
    fpr = _clopper_pearson_upper_at(fp, n_out, beta / 2.0)
    fnr = _clopper_pearson_upper_at(fn, n_in, beta / 2.0)
    bounds = [0.0]
    for a, b in ((fnr, fpr), (fpr, fnr)):
        if b > 0 and 1.0 - delta - a > 0:
            bounds.append(math.log((1.0 - delta - a) / b))
        elif b == 0 and 1.0 - delta - a > 0:
            bounds.append(math.inf)
    return max(bounds)


@dataclass(frozen=True)
class Canary:
    column: str
    value: str


def holm_bonferroni(p_values: Sequence[float], level: float = 0.05) -> list[bool]:
    """Which nulls Holm's step-down procedure rejects at family-wise error rate ``level``.

    The i-th smallest p-value is compared with level / (K − i + 1), K = len(p_values); the first
    one above its threshold stops the procedure, and it and every larger p-value are kept.
    """
    k = len(p_values)
    rejected = [False] * k
    for rank, i in enumerate(sorted(range(k), key=lambda j: p_values[j])):
        if p_values[i] > level / (k - rank):
            break
        rejected[i] = True
    return rejected


def stored_p_value(audit: dict[str, Any]) -> float | None:
    """The p-value of a stored audit (``AuditResult.to_dict()``); None when it cannot be known.

    Audits stored before dparena kept the p-value are recomputed from their canaries, guesses and
    correct guesses when one-run; a multi-run record kept only the correct count, not the false
    positives and negatives the p-value needs.
    """
    if audit.get("p_value") is not None:
        return float(audit["p_value"])
    if audit.get("analysis") == "one-run":
        return one_run_p_value(int(audit["canaries"]), int(audit["guesses"]),
                               int(audit["correct"]), float(audit["claimed_epsilon"]),
                               float(audit["delta"]))
    return None


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
    from dparena.methods.base import Task
    from dparena.privacy.ledger import Ledger

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
    from dparena.methods.base import Task
    from dparena.privacy.ledger import Ledger

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
