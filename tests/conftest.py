import os
import shutil
import tempfile
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest  # noqa: E402

from dparena.assets import AssetStore, default_home  # noqa: E402
from dparena.datasets import datasets  # noqa: E402
from dparena.io import TMP_PREFIX  # noqa: E402

#: what a test session shares with the user's $DPARENA_HOME: pinned, verified-on-open content
#: (assets, the wheels they come from, models built once from them) and pure speed caches (XLA
#: compilations). Never shared: ``secrets/`` (each session makes its own checkpoint key) and
#: ``cache/`` (derived results such as dp2stage's stage-1 model, recomputed per session), so no
#: test outcome depends on what earlier runs left on this machine.
SHARED = ("assets", "wheels", "models", "hub", "hf-datasets", "cifar10", "jax-cache")


def _link_tree(src: Path, dst: Path) -> int:
    """Mirror ``src`` under ``dst``: folders made, files hard-linked (symlinked across
    filesystems), symlinks copied as they are; temporary files left by a killed write skipped.
    Nothing is copied, and no file of ``src`` is ever written: dparena replaces files (a new
    inode, renamed over the link) and deletes a damaged one by unlinking, both of which leave the
    user's copy alone. A test must not write into a shared file in place."""
    count = 0
    for root, dirs, files in os.walk(src):
        here, there = Path(root), dst / Path(root).relative_to(src)
        there.mkdir(parents=True, exist_ok=True)
        for name in [*dirs, *files]:
            source, target = here / name, there / name
            if source.is_symlink():
                os.symlink(os.readlink(source), target)
            elif name in files and not name.startswith(TMP_PREFIX):
                try:
                    os.link(source, target)
                except OSError:
                    target.symlink_to(source)
                count += 1
        dirs[:] = [d for d in dirs if not (here / d).is_symlink()]
    return count


def pytest_configure(config):
    """Point $DPARENA_HOME (this process and every subprocess a test starts) at a fresh home for
    the session whose shared content links to the user's cache (``SHARED``). An asset missing
    there is fetched into the session home (``dparena fetch`` fills the user's cache once)."""
    source = default_home()
    home = Path(tempfile.mkdtemp(prefix="dparena-test-home-"))
    for name in SHARED:
        if (source / name).is_dir():
            _link_tree(source / name, home / name)
    config._dparena_home = (home, os.environ.get("DPARENA_HOME"))
    os.environ["DPARENA_HOME"] = str(home)


def pytest_unconfigure(config):
    home, before = getattr(config, "_dparena_home", (None, None))
    if home is None:
        return
    if before is None:
        os.environ.pop("DPARENA_HOME", None)
    else:
        os.environ["DPARENA_HOME"] = before
    shutil.rmtree(home, ignore_errors=True)  # removes links, never what they point at


@pytest.fixture(scope="session")
def assets() -> AssetStore:
    """This session's asset home (see ``pytest_configure``): the user's verified files, linked;
    verified again on every open."""
    return AssetStore()


@pytest.fixture(scope="session")
def adult_full(assets):
    return datasets.create("adult").load(assets)


@pytest.fixture(scope="session")
def adult_small(assets):
    """A 3,000 / 3,000 row subsample of real Adult."""
    return datasets.create("adult", n_private=3000, n_eval=3000).load(assets)
