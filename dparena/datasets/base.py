"""The dataset interface: a public description plus private / eval / public splits."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

from dparena.assets import AssetStore
from dparena.types import Modality


@dataclass
class DatasetBundle:
    """The splits of a dataset. ``schema`` is public; ``public`` is an optional public split."""

    private: Any
    eval: Any
    schema: Any
    public: Any = None
    private_labels: Any = None
    eval_labels: Any = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def n_private(self) -> int:
        return len(self.private)


class Dataset(ABC):
    """A registered dataset. Subclasses set the class attributes and implement ``load``.

    Constructor keyword arguments are the dataset's parameters in a suite (e.g. subsample sizes);
    they are part of the run's identity.
    """

    name: ClassVar[str] = ""
    modality: ClassVar[Modality]
    description: ClassVar[str] = ""
    version: ClassVar[str] = "1"
    extra: ClassVar[str] = ""

    @property
    @abstractmethod
    def schema(self) -> Any:
        """The public schema (known without reading private data)."""

    @abstractmethod
    def load(self, store: AssetStore) -> DatasetBundle:
        """Read the splits (fetching assets through ``store`` as needed)."""

    def private_size(self, store: AssetStore) -> int:
        """Number of private records (public knowledge; used by delta rules such as 1/(n ln n))."""
        return len(self.load(store).private)

    def assets(self) -> list[str]:
        """Names of the assets ``load`` needs (for ``dparena fetch``)."""
        return []
