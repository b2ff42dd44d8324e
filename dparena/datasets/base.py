"""The dataset interface: a public description plus private / eval / public splits."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from dparena.assets import AssetStore
from dparena.errors import ConfigError
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
    public_size: int | None = None  # N under add/remove: Dataset.private_size, never len(private)

    @property
    def n_private(self) -> int:
        return len(self.private)


class Dataset(ABC):
    """A registered dataset. Subclasses set the class attributes and implement ``load``.

    Constructor keyword arguments are the dataset's parameters in a suite (e.g. subsample sizes);
    they are part of the run's identity, and so is ``version`` (read from the instance: a dataset
    read from the user's files derives it from those files, see ``datasets/files.py``).
    """

    name: ClassVar[str] = ""
    modality: ClassVar[Modality]
    description: ClassVar[str] = ""
    version: ClassVar[str] = "1"
    extra: ClassVar[str] = ""
    #: the records of the private split are themselves published (Adult, MNIST, Rotten Tomatoes):
    #: only then may a leaderboard show a non-private reference's samples (the ``real`` records).
    #: False for the user's own files and by default.
    public_data: ClassVar[bool] = False
    #: the dataset parameters under which a ``public_data`` dataset's records stay the published
    #: ones (subsample sizes and seeds, a documented split); any other parameter (a hub id, a
    #: path) may point at other records
    public_params: ClassVar[frozenset[str]] = frozenset(
        {"n_private", "n_eval", "subsample_seed", "split_seed", "split"})

    @classmethod
    def records_public(cls, params: Mapping[str, Any]) -> bool:
        """Whether the records under ``params`` are published ones: ``public_data`` declared on
        this class itself (a subclass reading other records is not public until it says so) and
        no parameter outside ``public_params``."""
        return cls.__dict__.get("public_data") is True and set(params) <= cls.public_params

    @property
    @abstractmethod
    def schema(self) -> Any:
        """The public schema (known without reading private data)."""

    @abstractmethod
    def load(self, store: AssetStore) -> DatasetBundle:
        """Read the splits (fetching assets through ``store`` as needed)."""

    def private_size(self, store: AssetStore) -> int:
        """The public dataset size N of the private split, from documentation or the suite's own
        subsample parameter — never counted from the private rows. Everything that depends on
        "n" uses it: δ rules such as 1/(n ln n), ``n_samples = "private"``, DP-SGD's sampling rate
        and steps, divisors of mean embeddings (dparena's neighbouring relation: add or remove one
        record, N public). The default is the class's documented ``N_PRIVATE``, or the
        ``n_private`` subsample size when that is smaller."""
        total = getattr(self, "N_PRIVATE", None)
        wanted = getattr(self, "n_private", None)
        if total is None and wanted is None:
            raise ConfigError(f"dataset {self.name!r} declares no public size of its private split "
                              "(set N_PRIVATE from its documentation, or n_private)")
        if total is None:
            return int(wanted)
        return int(min(wanted or total, total))

    def assets(self) -> list[str]:
        """Names of the assets ``load`` needs (for ``dparena fetch``)."""
        return []

    def check(self, store: AssetStore) -> None:
        """Raise the first mismatch between the data ``load`` would read and the public schema
        (a one-line DparenaError), before any run starts. Built-in datasets read pinned assets, so
        the default does nothing; datasets read from the user's files (``csv``, ``image-folder``,
        ``text-file``) read and check them here."""
        return None


class SubsampledDataset(Dataset):
    """A dataset with ``n_private`` / ``n_eval`` subsample parameters (None = the whole split).

    A subsample is drawn without replacement by a generator seeded with ``subsample_seed`` and a
    per-split salt (not the run's seed), so every run of a suite sees the same records.
    """

    def __init__(self, n_private: int | None = None, n_eval: int | None = None,
                 subsample_seed: int = 0):
        for key, value in (("n_private", n_private), ("n_eval", n_eval)):
            if value is not None and (not isinstance(value, int) or value < 2):
                raise ConfigError(f"{self.name}: {key} must be an integer >= 2 (got {value!r})")
        self.n_private = n_private
        self.n_eval = n_eval
        self.subsample_seed = subsample_seed

    def subsample_positions(self, total: int, n: int | None, salt: int) -> np.ndarray | None:
        """Sorted positions of an ``n``-record subsample of ``total``; None to keep them all."""
        if n is None or n >= total:
            return None
        rng = np.random.default_rng([self.subsample_seed, salt])
        return np.sort(rng.choice(total, size=n, replace=False))

    def subsampled_bundle(self, private, private_labels, evaluation, eval_labels) -> DatasetBundle:
        """Both labelled splits, each cut to its subsample (``n_private`` / ``n_eval``), as a
        bundle; the records are an array or a list, the labels an array."""
        splits = []
        for records, labels, n, salt in ((private, private_labels, self.n_private, 1),
                                         (evaluation, eval_labels, self.n_eval, 2)):
            idx = self.subsample_positions(len(records), n, salt)
            if idx is not None:
                records = (records[idx] if isinstance(records, np.ndarray)
                           else [records[i] for i in idx])
                labels = labels[idx]
            splits.append((records, labels))
        (private, private_labels), (evaluation, eval_labels) = splits
        return DatasetBundle(private=private, eval=evaluation, schema=self.schema,
                             private_labels=private_labels, eval_labels=eval_labels)
