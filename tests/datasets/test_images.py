"""Image datasets, the image schema and the image-capable `real` reference."""

import numpy as np
import pytest

from dparena.assets import AssetStore
from dparena.datasets import datasets
from dparena.datasets.schema import ImageSchema
from dparena.errors import AssetError, SchemaError
from dparena.methods import methods
from dparena.methods.base import Task
from dparena.privacy import Ledger
from dparena.types import Budget


@pytest.fixture(scope="module")
def mnist_small(assets):
    return datasets.create("mnist", n_private=600, n_eval=300).load(assets)


def test_mnist_splits_are_uint8_digits(mnist_small, assets):
    b = mnist_small
    assert b.private.shape == (600, 28, 28, 1) and b.private.dtype == np.uint8
    assert b.eval.shape == (300, 28, 28, 1)
    assert set(np.unique(b.private_labels)) == set(range(10))
    assert b.private.max() == 255 and b.private.min() == 0
    # strokes are a minority of pixels; the background is black
    assert 0.05 < (b.private > 127).mean() < 0.3
    full = datasets.create("mnist").load(assets)
    assert len(full.private) == 50_000 and len(full.eval) == 10_000
    assert np.bincount(full.eval_labels).tolist()[:3] == [980, 1135, 1032]  # the standard test set
    # subsamples are fixed by subsample_seed, not by the run
    again = datasets.create("mnist", n_private=600, n_eval=300).load(assets)
    assert np.array_equal(again.private, b.private)


def test_digits_is_bundled_and_split(assets):
    b = datasets.create("digits").load(assets)
    assert b.private.shape == (1297, 8, 8, 1) and b.eval.shape == (500, 8, 8, 1)
    assert datasets.create("digits").private_size(assets) == 1297


def test_cifar10_offline_fails_with_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("DPARENA_OFFLINE", "1")
    with pytest.raises(AssetError) as err:
        datasets.create("cifar10", n_private=10).load(AssetStore(tmp_path))
    msg = str(err.value)
    assert "\n" not in msg and "cifar-10-batches-py" in msg and str(tmp_path) in msg


def test_image_schema_conform_says_what_is_wrong():
    schema = ImageSchema(8, 8, 1, tuple("0123456789"))
    imgs = np.zeros((4, 8, 8), dtype=np.uint8)
    arr, lab = schema.conform(imgs, [0, 1, 2, 9])
    assert arr.shape == (4, 8, 8, 1) and lab.dtype == np.int64
    with pytest.raises(SchemaError, match=r"shape \[N, 8, 8, 1\]"):
        schema.conform(np.zeros((4, 9, 8, 1), np.uint8), [0, 0, 0, 0])
    with pytest.raises(SchemaError, match="uint8"):
        schema.conform(np.zeros((4, 8, 8, 1)), [0, 0, 0, 0])
    with pytest.raises(SchemaError, match="integer labels"):
        schema.conform(imgs, [0, 1, 2, 10])
    with pytest.raises(ValueError):
        ImageSchema(8, 8, 1, ("a", "b"), class_proportions=(0.2, 0.2))


def test_real_reference_copies_labelled_images(mnist_small):
    b = mnist_small
    task = Task(private=b.private, schema=b.schema, budget=Budget.non_private(), n_samples=50,
                seed=3, private_labels=b.private_labels)
    out = methods.create("real").generate(task, Ledger())
    assert out.data.shape == (50, 28, 28, 1) and out.labels.shape == (50,)
    # every returned image is a private image with its own label
    flat = b.private.reshape(len(b.private), -1)
    for img, lab in zip(out.data, out.labels, strict=True):
        hits = np.flatnonzero((flat == img.reshape(-1)).all(axis=1))
        assert lab in b.private_labels[hits]
