"""The method interface: a generator that reads private data only through DP mechanisms."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from dparena.errors import ConfigError
from dparena.privacy import Ledger
from dparena.privacy.noise import SecureNoise, SeededNoise, make_noise
from dparena.types import Budget, Modality, Synthetic


@dataclass
class Task:
    """Everything a method may see: private and public splits, the public schema and the budget.

    The eval split is deliberately absent. ``rng`` is derived from the run's seed; methods must draw
    every random number from it (or from generators seeded by it).
    """

    private: Any
    schema: Any
    budget: Budget
    n_samples: int
    seed: int
    public: Any = None
    private_labels: Any = None
    workdir: Path | None = None
    public_size: int | None = None
    secure_noise: bool = False
    progress: Callable[[str, int, int], None] | None = None  # the harness's, see report()
    rng: np.random.Generator = field(init=False)
    noise: SeededNoise | SecureNoise = field(init=False)

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)
        self.noise = make_noise(self.secure_noise, self.rng)

    def report(self, stage: str, done: int, total: int) -> None:
        """Tell the harness how far a long method is (``"PE iteration", 3, 20``), for progress
        bars. Only positions in public schedules (iterations, DP-SGD steps), never a value
        computed from private data: the harness shows and logs what it gets."""
        if self.progress is not None:
            self.progress(stage, int(done), int(total))

    def size(self, method: str) -> int:
        """The public dataset size N (a ConfigError naming ``method`` when none was declared)."""
        if self.public_size is None or self.public_size < 1:
            raise ConfigError(f"{method} needs the public dataset size N (Task.public_size); it is "
                              "never read from the private split")
        return int(self.public_size)


class Method(ABC):
    """A registered synthetic-data method.

    Class attributes describe it for ``dparena list``; constructor keyword arguments are its
    parameters in a suite. ``is_dp`` is False for the non-private references (real data, uniform,
    public-only): they run once per seed without a budget, are shown as anchors and are never
    ranked against DP methods.
    """

    name: ClassVar[str] = ""
    modality: ClassVar[Modality | tuple[Modality, ...]]
    description: ClassVar[str] = ""
    extra: ClassVar[str] = ""
    version: ClassVar[str] = "1"
    is_dp: ClassVar[bool] = True
    # Synthetic.info is PUBLISHED (stored in the run record, shown by `dparena run`): every value in
    # it must be public (settings, σ, step counts) or post-processing of the DP release. The keys of
    # the latter are listed here; tests/privacy/test_info_published.py checks that every other value stays
    # the same when one private record changes (keys ending in "_s" are wall times, not covered).
    released_info: ClassVar[frozenset[str]] = frozenset()
    # the harness checks every output against the public schema and n_samples (a mismatch is a
    # failed run); True lets a method return FEWER valid records than n_samples (an LM keeps only
    # the rows that parse) — the run is ok, its shortfall stored in the record's info with a
    # warning — never more, and never invalid ones
    may_return_fewer: ClassVar[bool] = False
    # what one run needs, in Ray's terms (num_cpus, num_gpus, memory in bytes)
    resources: ClassVar[dict[str, float]] = {"num_cpus": 1}
    # whether a run's output is a function of its seed: False when the method draws noise that no
    # seed controls (AIM and MST: OpenDP's CSPRNG). The regression gate then judges a single run
    # of it by its wider unseeded band, as run-to-run noise is not a regression.
    reproducible: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "private" in cls.__dict__:  # a plugin written for dparena <= 0.2 would run as DP
            raise TypeError(f"{cls.__name__}: the class attribute `private` is now `is_dp` "
                            f"(`private` names the private data); rename it")

    def supports(self, modality: Modality) -> bool:
        mods = self.modality if isinstance(self.modality, tuple) else (self.modality,)
        return modality in mods

    @abstractmethod
    def generate(self, task: Task, ledger: Ledger) -> Synthetic:
        """Produce ``task.n_samples`` synthetic records, booking every private access in ``ledger``."""


def allocate(total: int, proportions: np.ndarray) -> np.ndarray:
    """Split ``total`` into integer class sizes ∝ ``proportions`` (largest remainder, ties to the
    lower class index); deterministic."""
    p = np.asarray(proportions, dtype=np.float64)
    p = p / p.sum() if p.sum() > 0 else np.full(len(p), 1.0 / len(p))
    raw = p * total
    sizes = np.floor(raw).astype(np.int64)
    rest = total - int(sizes.sum())
    if rest > 0:
        order = np.argsort(-(raw - sizes), kind="stable")[:rest]
        sizes[order] += 1
    return sizes
