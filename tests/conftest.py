import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest  # noqa: E402

from dparena.assets import AssetStore  # noqa: E402
from dparena.datasets import datasets  # noqa: E402


@pytest.fixture(scope="session")
def assets() -> AssetStore:
    """The user's asset cache ($DPARENA_HOME): fetched once per machine, verified on every open."""
    return AssetStore()


@pytest.fixture(scope="session")
def adult_full(assets):
    return datasets.create("adult").load(assets)


@pytest.fixture(scope="session")
def adult_small(assets):
    """A 3,000 / 3,000 row subsample of real Adult."""
    return datasets.create("adult", n_private=3000, n_eval=3000).load(assets)
