"""Core value types: modalities, privacy budgets, synthetic outputs and metric values."""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from typing import Any

from dparena.errors import ConfigError


class Modality(enum.StrEnum):
    TABULAR = "tabular"
    IMAGE = "image"
    TEXT = "text"


class Direction(enum.StrEnum):
    """Whether larger metric values are better: the one place that knows which way is better.

    Ranking, sorting, the regression gate, table headers and plot labels all ask it instead of
    writing out a sign.
    """

    MAXIMIZE = "maximize"
    MINIMIZE = "minimize"

    def better(self, a: float, b: float) -> bool:
        """Whether ``a`` is strictly better than ``b``."""
        return a > b if self is Direction.MAXIMIZE else a < b

    def gain(self, a: float, b: float) -> float:
        """How much better ``a`` is than ``b`` (negative when it is worse)."""
        return a - b if self is Direction.MAXIMIZE else b - a

    def best_first(self, value: float) -> float:
        """A sort key that puts the best values first."""
        return -value if self is Direction.MAXIMIZE else value

    def worse_interval(self, interval: tuple[float, float], than: tuple[float, float]) -> bool:
        """Whether every point of ``interval`` (low, high) is worse than every point of ``than``."""
        (low, high), (than_low, than_high) = interval, than
        return high < than_low if self is Direction.MAXIMIZE else low > than_high

    @property
    def arrow(self) -> str:
        return "↑" if self is Direction.MAXIMIZE else "↓"

    @property
    def phrase(self) -> str:
        return "higher is better" if self is Direction.MAXIMIZE else "lower is better"


@dataclass(frozen=True)
class Budget:
    """An (ε, δ) privacy budget. ε = inf is allowed only for non-private references."""

    epsilon: float
    delta: float

    def __post_init__(self) -> None:
        eps, delta = float(self.epsilon), float(self.delta)
        if math.isnan(eps) or eps <= 0:
            raise ConfigError(f"epsilon must be > 0 (got {self.epsilon}); use a positive number")
        if not 0.0 <= delta < 1.0 or math.isnan(delta):
            raise ConfigError(f"delta must satisfy 0 <= delta < 1 (got {self.delta})")
        object.__setattr__(self, "epsilon", eps)
        object.__setattr__(self, "delta", delta)

    @property
    def is_private(self) -> bool:
        return math.isfinite(self.epsilon)

    @classmethod
    def non_private(cls) -> Budget:
        return cls(math.inf, 0.0)


def resolve_delta(rule: float | str, n_private: int) -> float:
    """A suite's delta rule: a number, or "1/(n*ln(n))" of the private split's size n."""
    if isinstance(rule, int | float):
        return float(rule)
    text = str(rule).replace(" ", "").lower()
    if text in {"1/(n*ln(n))", "1/(nln(n))", "1/(n*log(n))", "1/(nlnn)"}:
        if n_private < 2:
            raise ConfigError("the delta rule 1/(n ln n) needs at least 2 private records")
        return 1.0 / (n_private * math.log(n_private))
    if text in {"1/n^2", "1/n**2"}:
        return 1.0 / n_private**2
    try:
        return float(text)
    except ValueError:
        raise ConfigError(
            f"unknown delta rule {rule!r}: use a number or '1/(n*ln(n))' or '1/n^2'"
        ) from None


@dataclass
class Synthetic:
    """What a method returns: the synthetic data plus optional extras for metrics.

    ``data`` is a pandas DataFrame for tables, a uint8 array [N, H, W, C] for images (with
    ``labels``), or a list of strings for text. ``extras`` carries method-specific objects a metric
    may use (e.g. the fine-tuned language model for perplexity); it is never persisted.

    ``info`` is PUBLISHED: stored in the run record and printed by ``dparena run``. Only public
    values (settings, σ, step counts) and post-processing of the DP release may go there — the
    method lists the keys of the latter in ``Method.released_info``; a test fails on any other
    value that moves when one private record changes. Never put an un-noised statistic of the
    private data (a training loss, a count, a mean) in it.
    """

    data: Any
    labels: Any = None
    extras: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.data)


@dataclass(frozen=True)
class MetricValue:
    """One number a metric produced, with the direction that makes it better."""

    name: str
    value: float
    direction: Direction
    version: str = "1"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": self.value,
            "direction": self.direction.value,
            "version": self.version,
        }
