"""PE checkpoints: an HMAC fingerprint under a local secret key, no pickle, torn or foreign files
ignored, every population type resumed bit for bit, and nothing left behind by a harness run.

Every test here points ``$DPARENA_HOME`` at its own temporary folder (as tests/test_dp2stage.py
does), so the checkpoint key is never written into the user's real ``~/.cache/dparena``.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import stat

import pytest

from dparena.privacy.secret import checkpoint_key, checkpoint_key_path, load_or_create_key


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    """This test's own $DPARENA_HOME (the checkpoint key lives under it)."""
    path = tmp_path / "dparena-home"
    monkeypatch.setenv("DPARENA_HOME", str(path))
    return path


# -- the key -------------------------------------------------------------------------------------

def _key_in_child(_):
    return checkpoint_key()


def test_key_is_32_random_bytes_made_once_mode_0600_and_shared_by_racing_processes(home, tmp_path):
    path = checkpoint_key_path()
    assert path == home / "secrets" / "checkpoint.key"
    assert not path.exists()
    with mp.get_context("fork").Pool(4) as pool:  # racing first callers agree on one key
        keys = pool.map(_key_in_child, range(8))
    assert len(set(keys)) == 1 and len(keys[0]) == 32
    assert path.read_bytes() == keys[0] == checkpoint_key()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert os.listdir(path.parent) == ["checkpoint.key"]  # no temporary file left behind
    assert checkpoint_key(tmp_path / "elsewhere") != keys[0]  # random, not derived


def test_a_process_that_loses_the_race_adopts_the_winners_key(tmp_path, monkeypatch):
    path = tmp_path / "secrets" / "checkpoint.key"
    real_link = os.link

    def link_after_a_rival(src, dst):  # another process links its key first
        real_link_target = tmp_path / "rival"
        real_link_target.write_bytes(b"r" * 32)
        real_link(real_link_target, dst)
        real_link(src, dst)  # raises FileExistsError, as for the loser of a real race

    monkeypatch.setattr(os, "link", link_after_a_rival)
    assert load_or_create_key(path) == b"r" * 32
    assert sorted(os.listdir(path.parent)) == ["checkpoint.key"]


def test_a_damaged_or_readable_key_file_is_refused_or_tightened(tmp_path):
    path = tmp_path / "secrets" / "checkpoint.key"
    key = load_or_create_key(path)
    path.chmod(0o644)
    assert load_or_create_key(path) == key and stat.S_IMODE(path.stat().st_mode) == 0o600
    path.write_bytes(b"short")
    with pytest.raises(ValueError, match="checkpoint.key"):
        load_or_create_key(path)
