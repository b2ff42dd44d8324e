"""The Private Evolution loop, modality-agnostic (images here, text in Aug-PE).

Iterations are numbered t = 0, 1, ..., T. Every schedule has T + 1 entries and entry t is used at
iteration t — there is no hidden shift:

* iteration 0 draws the initial population P_0 with ``random_api`` (``population_sizes[0]``
  samples; ``degrees[0]`` must be 0 because ``random_api`` takes no degree);
* iteration t ≥ 1 releases one DP histogram of the private votes over P_{t-1} (per class), selects
  from it and builds P_t (``population_sizes[t]`` samples) from variations of degree
  ``degrees[t]`` (lookahead variations also use ``degrees[t]``).

So T histograms are released, each of L2 sensitivity 1: μ = √T/σ GDP in total
(Lin et al., ICLR 2024, Alg. 1 and Thm. 1; accountant in :mod:`dparena.privacy.accountants`).
Each class votes only over its own synthetic samples; one private record belongs to one class, so
the per-iteration release over all classes still has sensitivity 1.

Checkpoints. Given a path (the harness passes ``<store folder>/work/<run key>/pe-checkpoint.npz``,
outside the published ``artifacts/``), the state after each iteration is written there: the
populations, the RNG's bit-generator state, the ledger entries and events so far, a format version
and a fingerprint of the run's inputs. A run restarted with the same inputs resumes after its last
completed iteration and produces bit-identical output; the harness deletes the work folder once
the run is recorded as ok or invalid, so only a failed or killed run leaves a checkpoint behind.

The fingerprint is an HMAC-SHA256 of the private embeddings and labels and the public settings,
keyed by this machine's secret ``$DPARENA_HOME/secrets/checkpoint.key``
(:mod:`dparena.privacy.secret`), which is never stored next to a checkpoint: without the key, a
checkpoint's holder cannot test whether a given dataset was the input. The file holds no pickle
(JSON and plain ``.npy`` arrays, :mod:`dparena.methods.pe.checkpoint`); version and fingerprint are
checked before any array is read, and a torn, foreign or other-input file is ignored (the run
starts over). A population type that cannot be stored without pickle runs without a checkpoint.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dparena.errors import ConfigError
from dparena.methods.base import allocate
from dparena.methods.pe import checkpoint as ckpt
from dparena.methods.pe import histogram
from dparena.methods.pe.api import API
from dparena.methods.pe.embeddings import Embedder
from dparena.methods.pe.population import concat, payload, take
from dparena.privacy import Ledger
from dparena.privacy.ledger import LedgerEntry

log = logging.getLogger(__name__)

CHECKPOINT_VERSION = 2  # 2: JSON + .npy (no pickle), HMAC fingerprint


def schedule(value: float | int | Sequence[float] | None, iterations: int, what: str,
             default: float | None = None, integer: bool = False,
             zero_first: bool = False) -> tuple:
    """A per-iteration schedule of length T + 1 (entry t used at iteration t).

    A scalar means "the same at every iteration" (with entry 0 set to 0 when ``zero_first``).
    Raises ConfigError on a wrong length, a negative or non-finite entry, or (``zero_first``) a
    non-zero entry 0.
    """
    if value is None:
        if default is None:
            raise ConfigError(f"{what} is required (a number or a list of {iterations + 1})")
        value = default
    if isinstance(value, int | float) and not isinstance(value, bool):
        values = [value] * (iterations + 1)
        if zero_first:
            values[0] = 0
    else:
        try:
            values = list(value)  # type: ignore[arg-type]
        except TypeError:
            raise ConfigError(f"{what} must be a number or a list, got {value!r}") from None
        if len(values) != iterations + 1:
            raise ConfigError(
                f"{what} has {len(values)} entries but iterations={iterations} needs "
                f"{iterations + 1} (entry t is used at iteration t, t = 0..{iterations})"
            )
    out = []
    for i, v in enumerate(values):
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v < 0:
            raise ConfigError(f"{what}[{i}] must be a finite number >= 0, got {v!r}")
        if integer and (float(v) != int(v) or v < 1):
            raise ConfigError(f"{what}[{i}] must be a positive integer, got {v!r}")
        out.append(int(v) if integer else float(v))
    if zero_first and out[0] != 0:
        raise ConfigError(
            f"{what}[0] belongs to iteration 0, the random_api draw, which takes no degree; set it "
            f"to 0 (entry t is used at iteration t)"
        )
    return tuple(out)


@dataclass(frozen=True)
class PEConfig:
    """The engine's settings; schedules are validated here, before any data is touched."""

    iterations: int
    population_sizes: tuple[int, ...]
    degrees: tuple[float, ...]
    num_nearest_neighbors: int = 1
    distance: str = "l2"
    lookahead: int = 0
    threshold: float = 0.0
    selection: str = "sample"
    variations: int = 1
    initial_variations: int = 0
    keep_selected: bool = False
    batch_size: int = 1024

    def __post_init__(self) -> None:
        if not isinstance(self.iterations, int) or self.iterations < 1:
            raise ConfigError(f"iterations must be an integer >= 1 (got {self.iterations!r})")
        object.__setattr__(self, "population_sizes", schedule(
            self.population_sizes, self.iterations, "population_sizes", integer=True))
        object.__setattr__(self, "degrees", schedule(
            self.degrees, self.iterations, "degrees", zero_first=True))
        if not isinstance(self.num_nearest_neighbors, int) or self.num_nearest_neighbors < 1:
            raise ConfigError("num_nearest_neighbors must be an integer >= 1")
        if self.distance not in histogram.METRICS:
            raise ConfigError(f"distance must be one of {list(histogram.METRICS)}")
        if not isinstance(self.lookahead, int) or self.lookahead < 0:
            raise ConfigError("lookahead must be an integer >= 0 (0 = no lookahead)")
        if not math.isfinite(self.threshold) or self.threshold < 0:
            raise ConfigError("threshold must be a finite number >= 0")
        if self.selection not in histogram.SELECTIONS:
            raise ConfigError(f"selection must be one of {list(histogram.SELECTIONS)}")
        for key in ("variations", "initial_variations"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"{key} must be an integer >= 0")
        if self.variations == 0 and not self.keep_selected:
            raise ConfigError("variations = 0 needs keep_selected = true (else the next population "
                              "is empty)")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ConfigError("batch_size must be an integer >= 1")
        if self.selection == "rank":  # rank selection picks distinct samples of the population
            for t in range(1, self.iterations + 1):
                have = self.population_size(t - 1)
                if self.population_sizes[t] > have:
                    raise ConfigError(
                        f"rank selection picks population_sizes[{t}] = "
                        f"{self.population_sizes[t]} distinct samples from a population of {have} "
                        f"(population_sizes[{t - 1}] x {self._fold(t - 1)}); lower it or raise "
                        "variations")

    def _fold(self, t: int) -> int:
        """Samples per selected one in the population after iteration t."""
        if t == 0:
            return 1 + self.initial_variations
        return self.variations + int(self.keep_selected)

    def population_size(self, t: int) -> int:
        """How many samples the population after iteration t holds (the voting candidates of
        iteration t + 1): N_t times the fold."""
        return self.population_sizes[t] * self._fold(t)

    @property
    def output_size(self) -> int:
        """Samples returned: the N_T selected ones with ``keep_selected``, else the final
        population of N_T · ``variations`` variations."""
        n = self.population_sizes[self.iterations]
        return n if self.keep_selected else n * self.variations


@dataclass
class PEState:
    """What a checkpoint holds: the populations after iteration ``iteration``.

    ``fingerprint`` is the keyed HMAC of the run's inputs ("" for a run without a checkpoint).
    """

    fingerprint: str
    iteration: int
    populations: dict[int, Any]
    rng_state: dict
    entries: list[dict] = field(default_factory=list)
    events: list[dict] = field(default_factory=list)
    version: int = CHECKPOINT_VERSION


class PrivateEvolution:
    """Runs PE: ``api`` makes samples, ``embedder`` embeds them, ``config`` says how."""

    def __init__(self, api: API, embedder: Embedder, config: PEConfig):
        self.api = api
        self.embedder = embedder
        self.config = config
        api.validate_degrees(config.degrees[1:])

    def run(self, private_emb: np.ndarray, private_labels: np.ndarray,
            proportions: np.ndarray, sigma: float, rng: np.random.Generator, ledger: Ledger,
            checkpoint: Path | None = None,
            on_iteration: Callable[[int, PEState], None] | None = None,
            noise=None) -> tuple[Any, np.ndarray, list[dict]]:
        """Evolve the populations; returns (final samples, int64 labels, event log).

        ``private_emb`` are the private samples' embeddings (the only private input besides their
        labels); ``proportions`` the class fractions of every population (public or already paid
        for); ``sigma`` the noise of each histogram. One Gaussian ledger entry is booked per
        histogram release (iterations 1..T).
        """
        cfg = self.config
        labels = np.asarray(private_labels, dtype=np.int64)
        if len(labels) != len(private_emb):
            raise ValueError("one label per private embedding is needed")
        if not sigma > 0:
            raise ValueError("sigma must be > 0")
        classes = len(proportions)
        key = self._key(checkpoint)
        checkpoint = checkpoint if key is not None else None
        fingerprint = (self._fingerprint(private_emb, labels, proportions, sigma, rng, key)
                       if key is not None else "")
        state = self._load(checkpoint, fingerprint)
        if state is None:
            state = self._initial(fingerprint, proportions, rng)
            checkpoint = self._save(checkpoint, state)
            if on_iteration:
                on_iteration(0, state)
        else:
            rng.bit_generator.state = state.rng_state
            for item in state.entries:
                ledger.record(LedgerEntry(**item))
            log.info("PE: resumed after iteration %d from %s", state.iteration, checkpoint)
        by_class = [np.flatnonzero(labels == c) for c in range(classes)]
        for t in range(state.iteration + 1, cfg.iterations + 1):
            sizes = allocate(cfg.population_sizes[t], proportions)
            degree = cfg.degrees[t]
            new: dict[int, Any] = {}
            for c in range(classes):
                pop = state.populations.get(c)
                if sizes[c] == 0:
                    continue
                if pop is None or len(pop) == 0:  # nothing to vote on: start this class afresh
                    new[c] = self.api.random_api(c, int(sizes[c]), rng)
                    state.events.append({"iteration": t, "class": c, "event": "empty-redraw"})
                    continue
                emb = self._embed(pop, c, degree, rng)
                votes = histogram.vote_histogram(private_emb[by_class[c]], emb,
                                                 k=min(cfg.num_nearest_neighbors, len(pop)),
                                                 metric=cfg.distance, batch_size=cfg.batch_size)
                noisy = histogram.add_noise(votes, sigma, rng if noise is None else noise)
                counts = histogram.threshold(noisy, cfg.threshold)
                idx, fell_back = histogram.select(counts, int(sizes[c]), rng, cfg.selection)
                if fell_back:
                    log.warning("PE iteration %d class %d: every thresholded count is 0; "
                                "selecting uniformly", t, c)
                    state.events.append({"iteration": t, "class": c, "event": "uniform-fallback"})
                selected = take(pop, idx)
                # the last iteration with keep_selected returns the selected samples themselves
                # (Aug-PE's output), so their variations would be wasted work
                folds = 0 if (cfg.keep_selected and t == cfg.iterations) else cfg.variations
                new[c] = self._grow(selected, c, folds, cfg.keep_selected, degree, rng)
                state.events.append({"iteration": t, "class": c, "event": "selected",
                                     "nonzero_bins": int(np.count_nonzero(counts)),
                                     "distinct_selected": int(len(np.unique(idx)))})
            entry = ledger.gaussian(f"PE histogram, iteration {t} of {cfg.iterations}", sigma=sigma,
                                    sensitivity=1.0, iteration=t)
            state.entries.append(asdict(entry))
            state.populations = new
            state.iteration = t
            state.rng_state = rng.bit_generator.state
            checkpoint = self._save(checkpoint, state)
            if on_iteration:
                on_iteration(t, state)
        parts, out_labels = [], []
        for c in range(classes):
            pop = state.populations.get(c)
            if pop is not None and len(pop):
                parts.append(pop)
                out_labels.append(np.full(len(pop), c, dtype=np.int64))
        return concat(parts), np.concatenate(out_labels), state.events

    # -- pieces ---------------------------------------------------------------------------------

    def _initial(self, fingerprint: str, proportions: np.ndarray,
                 rng: np.random.Generator) -> PEState:
        cfg = self.config
        sizes = allocate(cfg.population_sizes[0], proportions)
        pops = {}
        for c, n in enumerate(sizes):
            if n > 0:
                fresh = self.api.random_api(c, int(n), rng)
                pops[c] = self._grow(fresh, c, cfg.initial_variations, True, cfg.degrees[1], rng)
        return PEState(fingerprint=fingerprint, iteration=0, populations=pops,
                       rng_state=rng.bit_generator.state)

    def _grow(self, selected: Any, label: int, folds: int, keep: bool, degree: float,
              rng: np.random.Generator) -> Any:
        """The next population: ``folds`` variations of every selected sample (fold by fold, as
        the reference's ``next_variation_api_fold``), then the selected samples once each when
        ``keep``."""
        labels = np.full(len(selected), label, dtype=np.int64)
        parts = [self.api.variation_api(selected, labels, degree, rng) for _ in range(folds)]
        if keep:
            parts.append(selected)
        return concat(parts)

    def _embed(self, pop: Any, label: int, degree: float, rng: np.random.Generator) -> np.ndarray:
        """Embedding of each synthetic sample; with lookahead L, the mean embedding of L variations
        of it at this iteration's degree (Lin et al., ICLR 2024, Sec. 3.3)."""
        if self.config.lookahead == 0:
            return self.embedder.embed(payload(pop))
        labels = np.full(len(pop), label, dtype=np.int64)
        total = None
        for _ in range(self.config.lookahead):
            emb = self.embedder.embed(payload(self.api.variation_api(pop, labels, degree, rng)))
            if total is None:
                total = emb.astype(np.float64)
            else:
                total += emb  # in place: the same sums as total + emb, one buffer fewer
        return (total / self.config.lookahead).astype(np.float32)

    @staticmethod
    def _key(path: Path | None) -> bytes | None:
        """The checkpoint HMAC key, or None (no checkpoint) without a path or a usable key."""
        if path is None:
            return None
        from dparena.privacy.secret import checkpoint_key

        try:
            return checkpoint_key()
        except (OSError, ValueError) as exc:
            log.warning("PE: no checkpoint key (%s); running without a checkpoint", exc)
            return None

    def _fingerprint(self, private_emb, labels, proportions, sigma, rng, key: bytes) -> str:
        """Identity of a run's inputs, so that a checkpoint from other inputs is never resumed: an
        HMAC-SHA256 keyed by the machine's secret checkpoint key (a plain hash of the private
        embeddings would let anyone holding the file test candidate datasets)."""
        h = hmac.new(key, b"dparena PE checkpoint fingerprint\0", hashlib.sha256)
        h.update(np.ascontiguousarray(private_emb).tobytes())
        h.update(labels.tobytes())
        h.update(np.asarray(proportions, dtype=np.float64).tobytes())
        h.update(repr((sigma, self.config, type(self.api).__qualname__, _plain(self.api),
                       type(self.embedder).__qualname__, _plain(self.embedder),
                       rng.bit_generator.state)).encode())
        return h.hexdigest()

    @staticmethod
    def _load(path: Path | None, fingerprint: str) -> PEState | None:
        """The checkpoint at ``path`` if it is whole and from these inputs (same fingerprint and
        version, checked before any array is read); None, and a log line, otherwise."""
        if path is None or not path.exists():
            return None
        try:
            fields = ckpt.read(path, CHECKPOINT_VERSION, fingerprint)
            if fields is None:
                log.info("PE: checkpoint %s is from other inputs or another version; starting "
                         "over", path)
                return None
            return PEState(fingerprint=fingerprint, iteration=int(fields["iteration"]),
                           populations=fields["populations"], rng_state=fields["rng_state"],
                           entries=list(fields["entries"]), events=list(fields["events"]))
        except Exception as exc:  # noqa: BLE001 - a torn or foreign file: start over
            log.warning("PE: ignoring unreadable checkpoint %s (%s: %s); starting over", path,
                        type(exc).__name__, exc)
            return None

    @staticmethod
    def _save(path: Path | None, state: PEState) -> Path | None:
        """Write ``state`` to ``path`` atomically; returns the path to keep checkpointing to, or
        None when the populations cannot be stored without pickle (logged; no file written)."""
        if path is None:
            return None
        fields = {"version": state.version, "fingerprint": state.fingerprint,
                  "iteration": state.iteration, "rng_state": state.rng_state,
                  "entries": state.entries, "events": state.events}
        try:
            ckpt.write(path, fields, state.populations)
        except ckpt.Unsupported as exc:
            log.warning("PE: these populations cannot be checkpointed without pickle (%s); "
                        "running without a checkpoint", exc)
            return None
        return path


def _plain(obj: Any) -> list[tuple[str, Any]]:
    """An object's plain settings (numbers, strings, tuples of them), for fingerprints; models,
    caches and other heavy attributes are left out (their repr may hold memory addresses)."""
    simple = (int, float, str, bool, type(None))

    def ok(v: Any) -> bool:
        return isinstance(v, simple) or (isinstance(v, tuple | list) and all(ok(x) for x in v))

    return sorted((k, v) for k, v in vars(obj).items() if not k.startswith("_") and ok(v))
