"""The metric interface: a small configured object that scores synthetic data against real eval data."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from dparena.types import Direction, MetricValue, Modality, Synthetic


@dataclass
class EvalData:
    """The real data a metric compares against (the eval split), with the public schema.

    ``private`` (the method's training split) is filled in only for metrics that declare
    ``needs_private = True`` (privacy-risk metrics such as DCR); it is None for every other metric.
    """

    data: Any
    schema: Any
    labels: Any = None
    private: Any = None


@dataclass
class MetricContext:
    """Where a metric may cache what it derives.

    ``cache_dir`` (the store's ``cache/``) holds derived values of one store's synthetic data.
    ``eval_cache_dir`` (``$DPARENA_HOME/cache/eval`` in the harness and ``dparena score``) holds
    derived values of the **eval split only** (Inception features and FID statistics, sentence
    embeddings), shared by every store on the machine and keyed by dataset name, version, the eval
    array's content hash and the network's checksum; nothing derived from the private split or a
    method's output goes there. None: the eval values go to ``cache_dir`` (if any).
    """

    seed: int = 0
    dataset: str = ""
    dataset_version: str = ""
    cache_dir: Path | None = None
    eval_cache_dir: Path | None = None

    @property
    def eval_dir(self) -> Path | None:
        """The folder for the eval split's derived values (see the class docstring)."""
        return self.eval_cache_dir if self.eval_cache_dir is not None else self.cache_dir


def eval_cache_home() -> Path:
    """``$DPARENA_HOME/cache/eval``: the machine-wide cache of eval-split features."""
    from dparena.assets import default_home

    return default_home() / "cache" / "eval"


class Metric(ABC):
    """A registered metric.

    ``direction`` tells whether larger is better for every value it returns; ``headline`` names the
    values shown on a leaderboard by default (others are stored and shown with ``--all-metrics``).
    """

    name: ClassVar[str] = ""
    modality: ClassVar[Any]  # a Modality or a tuple of them
    description: ClassVar[str] = ""
    extra: ClassVar[str] = ""
    version: ClassVar[str] = "1"
    direction: ClassVar[Direction] = Direction.MAXIMIZE
    # True only for metrics whose definition compares against the private (training) split; the
    # harness then passes it as ``EvalData.private`` and the docstring must say so
    needs_private: ClassVar[bool] = False

    def headline(self) -> list[str]:
        return [self.name]

    def supports(self, modality: Modality) -> bool:
        mods = self.modality if isinstance(self.modality, tuple) else (self.modality,)
        return modality in mods

    def value(self, name: str, value: float) -> MetricValue:
        return MetricValue(name, float(value), self.direction, self.version)

    @abstractmethod
    def compute(self, synthetic: Synthetic, real: EvalData, ctx: MetricContext) -> list[MetricValue]:
        """Score ``synthetic`` against ``real``."""
