"""Labelled image datasets: MNIST (offline asset), sklearn digits (bundled, tiny), CIFAR-10 (hub).

Every bundle holds ``uint8`` arrays ``[N, H, W, C]`` with integer labels in ``private_labels`` /
``eval_labels``; the schema (shape and class names) is public. Class proportions are not declared
public for these sets: a method that needs class sizes buys them with budget or assumes uniform.
"""

from __future__ import annotations

import gzip
import pickle

import numpy as np

from dparena.assets import AssetStore
from dparena.datasets.base import DatasetBundle, SubsampledDataset
from dparena.datasets.schema import ImageSchema
from dparena.errors import AssetError
from dparena.io import cached_arrays, offline
from dparena.types import Modality

DIGIT_NAMES = tuple(str(d) for d in range(10))
CIFAR10_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                 "truck")


class ImageDataset(SubsampledDataset):
    """Shared subsampling of image splits: ``n_private`` / ``n_eval`` images (None = all)."""

    modality = Modality.IMAGE
    extra = "image"


class MNIST(ImageDataset):
    """MNIST digits, 28×28 grey: private = the 50,000 training images, eval = the 10,000 test images.

    The carrier pickle (the classic 50k/10k/10k split, pixels stored as value/256) is converted once
    to an npz next to the cached asset; later loads read the npz after checking its arrays against
    their pinned sha256 (a damaged npz is rebuilt, never used). ``n_private``, ``n_eval``:
    subsample sizes. Class proportions are not public: a method assumes uniform or buys a DP count.
    """

    description = "MNIST handwritten digits 28x28 (50,000 private / 10,000 eval), 10 classes"
    version = "1"
    public_data = True
    N_PRIVATE = 50_000
    schema = ImageSchema(28, 28, 1, DIGIT_NAMES)

    def assets(self) -> list[str]:
        return ["mnist-pkl"]

    def load(self, store: AssetStore) -> DatasetBundle:
        arrays = _mnist_npz(store)
        return self.subsampled_bundle(arrays["train_x"], arrays["train_y"], arrays["test_x"],
                            arrays["test_y"])


#: sha256 of the converted MNIST arrays (see :func:`_arrays_sha256`): the conversion of the pinned
#: pickle is deterministic, so its result is pinned too and the npz cache is verified on every load
MNIST_ARRAYS_SHA256 = "ec2e1c7dd6c50edf252cb9ffe3a051c95ceca925025aeadffc5e5e73bae62570"


def _mnist_npz(store: AssetStore) -> dict[str, np.ndarray]:
    """The MNIST arrays, from the npz cache next to the asset when it holds exactly the pinned
    arrays; a missing, unreadable or altered cache is rebuilt from the (verified) pickle."""
    source = store.path("mnist-pkl")  # verified against its sha256
    npz = source.with_name(f"mnist-{store.asset('mnist-pkl').sha256[:12]}.npz")

    def convert() -> dict[str, np.ndarray]:
        with gzip.open(source, "rb") as fh:
            (train_x, train_y), _valid, (test_x, test_y) = pickle.load(fh, encoding="latin1")

        def to_uint8(x):
            return np.clip(np.rint(x * 256.0), 0, 255).astype(np.uint8).reshape(-1, 28, 28, 1)

        arrays = {"train_x": to_uint8(train_x), "train_y": train_y.astype(np.int64),
                  "test_x": to_uint8(test_x), "test_y": test_y.astype(np.int64)}
        if _arrays_sha256(arrays) != MNIST_ARRAYS_SHA256:  # pragma: no cover - a broken conversion
            raise AssetError("mnist: converting the pickle gave unexpected arrays; report this")
        return arrays

    return cached_arrays(npz, convert, check=lambda a: _arrays_sha256(a) == MNIST_ARRAYS_SHA256)


def _arrays_sha256(arrays: dict[str, np.ndarray]) -> str:
    """sha256 over each array's name, dtype, shape and bytes, in name order."""
    import hashlib

    digest = hashlib.sha256()
    for key in sorted(arrays):
        arr = np.ascontiguousarray(arrays[key])
        digest.update(f"{key}:{arr.dtype}:{arr.shape};".encode())
        digest.update(memoryview(arr).cast("B"))
    return digest.hexdigest()


class Digits(ImageDataset):
    """scikit-learn's bundled 8×8 digits (1,797 images, 16 grey levels scaled to 0..255).

    A fixed split (seeded by ``split_seed``): 1,297 private and 500 eval images. For tests and
    quick experiments; needs no download.
    """

    description = "scikit-learn 8x8 digits (1,297 private / 500 eval), 10 classes; for tests"
    version = "1"
    public_data = True
    N_PRIVATE = 1_297
    schema = ImageSchema(8, 8, 1, DIGIT_NAMES)
    extra = "tabular"  # scikit-learn ships the data

    def load(self, store: AssetStore) -> DatasetBundle:
        from dparena.errors import require

        datasets = require("sklearn.datasets", "tabular")
        raw = datasets.load_digits()
        images = np.clip(np.rint(raw.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)[..., None]
        labels = raw.target.astype(np.int64)
        order = np.random.default_rng(20240501).permutation(len(images))
        priv, ev = order[: self.N_PRIVATE], order[self.N_PRIVATE:]
        return self.subsampled_bundle(images[priv], labels[priv], images[ev], labels[ev])


class CIFAR10(ImageDataset):
    """CIFAR-10, 32×32 colour: private = the 50,000 training images, eval = the 10,000 test images.

    Read by torchvision from ``$DPARENA_HOME/cifar10`` (downloaded there on first use when a network
    is available and :func:`dparena.io.offline` is False). Offline and not cached, loading fails with one
    line saying where to put it.
    """

    description = "CIFAR-10 32x32 colour (50,000 private / 10,000 eval), 10 classes; needs a download"
    version = "1"
    public_data = True
    N_PRIVATE = 50_000
    schema = ImageSchema(32, 32, 3, CIFAR10_NAMES)

    def load(self, store: AssetStore) -> DatasetBundle:
        from dparena.errors import require

        tv = require("torchvision.datasets", "image")
        root = store.home / "cifar10"
        try:
            download = not offline()
            train = tv.CIFAR10(root, train=True, download=download)
            test = tv.CIFAR10(root, train=False, download=download)
        except Exception as exc:  # noqa: BLE001 - urllib/tarfile errors vary
            raise AssetError(
                f"cifar10: could not load or download CIFAR-10 ({type(exc).__name__}); place the "
                f"python version 'cifar-10-batches-py' folder under {root} and try again"
            ) from None
        return self.subsampled_bundle(np.asarray(train.data, dtype=np.uint8),
                            np.asarray(train.targets, dtype=np.int64),
                            np.asarray(test.data, dtype=np.uint8),
                            np.asarray(test.targets, dtype=np.int64))
