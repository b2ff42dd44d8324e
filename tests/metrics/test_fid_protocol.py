"""FID against the private split, the PE paper's protocol (microsoft/DPSDA ``ComputeFID`` with
``Inception(res=32)``), beside the default eval-split FID."""

from __future__ import annotations

import numpy as np
import pytest

from dparena.errors import ConfigError
from dparena.metrics import metrics
from dparena.metrics.base import EvalData, MetricContext
from dparena.types import Synthetic


@pytest.fixture(scope="module")
def digits(assets):
    from dparena.datasets import datasets

    return datasets.create("digits", n_private=12, n_eval=12).load(assets)


def test_private_reference_reads_the_private_split_and_names_its_columns(digits, tmp_path):
    from dparena.embeddings import inception
    from dparena.metrics.fid import fid_from_features

    fid = metrics.create("fid", reference="private")
    assert fid.needs_private and fid.headline() == ["fid-private"]
    assert not metrics.create("fid").needs_private
    syn = Synthetic(digits.eval[:10], labels=digits.eval_labels[:10])
    real = EvalData(digits.eval, digits.schema, digits.eval_labels, private=digits.private)
    values = {v.name: v.value for v in fid.compute(syn, real, MetricContext(cache_dir=tmp_path))}
    assert set(values) == {"fid-private", "fid-private/n", "fid-private/n_ref"}
    ref = inception.inception_features(digits.private).astype(np.float64)
    expect = fid_from_features(inception.inception_features(syn.data), ref.mean(0),
                               np.cov(ref, rowvar=False))
    assert values["fid-private"] == pytest.approx(max(expect, 0.0), rel=1e-9)
    assert values["fid-private/n_ref"] == len(digits.private)
    # nothing computed from the private images is left in the cache
    key = inception.array_key(inception.check_images(digits.private))
    assert not [p for p in tmp_path.rglob("*") if key in p.name]
    with pytest.raises(Exception, match="private split"):
        fid.compute(syn, EvalData(digits.eval, digits.schema), MetricContext(cache_dir=tmp_path))


def test_pre_resize_is_dpsda_inception_res_preprocessing():
    from cleanfid.resize import make_resizer

    from dparena.metrics.fid import pre_resize

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    resizer = make_resizer(library="PIL", quantize_after=False, filter="bicubic",
                           output_size=(32, 32))
    expect = np.stack([np.around(np.clip(resizer(x), 0, 255)).astype(np.uint8) for x in images])
    np.testing.assert_array_equal(pre_resize(images, 32), expect)
    assert pre_resize(images[:, :32, :32], 32) is not None  # already 32²: unchanged
    np.testing.assert_array_equal(pre_resize(images[:, :32, :32], 32), images[:, :32, :32])


def test_bad_parameters_are_config_errors():
    with pytest.raises(ConfigError, match="reference"):
        metrics.create("fid", reference="train")
    with pytest.raises(ConfigError, match="resolution"):
        metrics.create("fid", resolution=2)
