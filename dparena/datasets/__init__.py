"""The dataset registry. Entries are lazy so listing them imports nothing heavy.

Each entry is a name and the class that implements it; what it is (modality, description,
install extra) is written on the class, where `dparena list` reads it without importing.
"""

from __future__ import annotations

import functools
from typing import Any

from dparena.registry import Registry

datasets: Registry = Registry("dataset", "dparena.datasets.base:Dataset")

datasets.register_lazy("adult", "dparena.datasets.adult:Adult")
datasets.register_lazy("mnist", "dparena.datasets.images:MNIST")
datasets.register_lazy("digits", "dparena.datasets.images:Digits")
datasets.register_lazy("cifar10", "dparena.datasets.images:CIFAR10")
datasets.register_lazy("rotten-tomatoes", "dparena.datasets.text:RottenTomatoes")
datasets.register_lazy("news", "dparena.datasets.text:News")
datasets.register_lazy("yelp", "dparena.datasets.text:Yelp")
datasets.register_lazy("pubmed", "dparena.datasets.text:PubMed")
# bring your own data (docs/your-data.md): the public schema comes from the suite or a schema file
datasets.register_lazy("csv", "dparena.datasets.table_files:CSVTable")
datasets.register_lazy("image-folder", "dparena.datasets.image_folder:ImageFolder")
datasets.register_lazy("text-file", "dparena.datasets.text_files:TextFile")


def public_size(name: str, params: dict[str, Any]) -> int | None:
    """The public size N of dataset ``name``'s private split under ``params``
    (``Dataset.private_size``: its documentation, a declared size or the ``n_private`` subsample;
    never a count of the private rows), or None when it is not known here: a dataset this
    process does not register (a plugin not loaded), or the user's files with no declared size or
    an unreadable schema file; then the ``n_private`` subsample size, if the parameters give one.
    Never raises (a fact to show, not a check); cached per (name, params). The README's front
    table names N with it, and the leaderboards for runs that did not record theirs."""
    import json

    return _public_size(name, json.dumps(params, sort_keys=True, default=str))


@functools.lru_cache(maxsize=256)
def _public_size(name: str, params_json: str) -> int | None:
    import json

    params = json.loads(params_json)
    try:
        return datasets.create(name, **params).private_size(None)
    # a fact to show, never a reason to fail a page: any dataset that cannot say gives None
    except Exception:  # noqa: BLE001
        n = params.get("n_private")
        return n if isinstance(n, int) and not isinstance(n, bool) else None
