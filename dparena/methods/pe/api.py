"""The black-box generator interface of Private Evolution.

An API produces samples without ever seeing private data: ``random_api`` draws fresh samples of a
class from public knowledge only (a class name, a prompt, a simulator's parameter space), and
``variation_api`` returns perturbed copies of given synthetic samples, ``degree`` saying how far.
Samples are whatever the modality uses (``uint8`` image arrays ``[n, H, W, C]``, lists of strings);
the engine treats them as opaque and only asks for embeddings.

Every random choice comes from the ``rng`` passed in (a ``numpy.random.Generator`` derived from the
run's seed), so a run is reproducible bit for bit. Degrees follow a schedule chosen by the method
and validated against the number of iterations before the run starts.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np


class API(ABC):
    """A foundation model or simulator queried as a black box."""

    #: name used in suites (``api = "drawtext"``)
    name: str = ""

    @abstractmethod
    def random_api(self, label: int, n: int, rng: np.random.Generator) -> Any:
        """``n`` fresh samples of class ``label`` (an index into the public label names)."""

    @abstractmethod
    def variation_api(self, samples: Any, labels: np.ndarray, degree: float,
                      rng: np.random.Generator) -> Any:
        """One variation of each sample (same order and count); larger ``degree`` = further away."""

    def validate_degrees(self, degrees: Sequence[float]) -> None:  # noqa: B027 - optional hook
        """Raise ``ConfigError`` if a degree schedule is invalid for this API (default: accept)."""
