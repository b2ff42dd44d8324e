"""Local secret keys, kept under ``$DPARENA_HOME/secrets/`` and never written next to what they
protect.

:func:`checkpoint_key` keys the HMAC that fingerprints a resumable method state (PE's checkpoint):
a file holding such a fingerprint tells nobody without the key anything about the private inputs,
while the same machine can still recognise its own checkpoints. The key is 32 bytes from
``os.urandom``, created on first use with mode 0600 in a 0700 folder. Processes that race to create
it agree on one key: each offers its candidate to :func:`dparena.io.create_once` (a complete,
fsynced temporary file hard-linked into place), which succeeds for the first process only; the
others read the winner's file. Deleting the key only makes existing checkpoints unrecognisable
(those runs start over).
"""

from __future__ import annotations

import contextlib
import os
import stat
import time
from pathlib import Path

from dparena.assets import default_home
from dparena.io import create_once

KEY_BYTES = 32


def checkpoint_key_path(home: Path | str | None = None) -> Path:
    """Where the checkpoint key lives: ``$DPARENA_HOME/secrets/checkpoint.key``."""
    return (Path(home) if home is not None else default_home()) / "secrets" / "checkpoint.key"


def checkpoint_key(home: Path | str | None = None) -> bytes:
    """This machine's checkpoint HMAC key (created on first use)."""
    return load_or_create_key(checkpoint_key_path(home))


def load_or_create_key(path: Path, nbytes: int = KEY_BYTES) -> bytes:
    """The ``nbytes``-byte key stored at ``path``, made from ``os.urandom`` if there is none.

    Race-safe: a new key becomes visible only whole (a hard link of a complete temporary file), and
    only the first process's link succeeds. A key file readable by others is tightened to 0600; one
    of the wrong length raises ValueError naming it.
    """
    path = Path(path)
    key = _read(path, nbytes)
    if key is not None:
        return key
    folder = path.parent
    if not folder.is_dir():
        folder.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(OSError):
            folder.chmod(0o700)
    create_once(path, os.urandom(nbytes), mode=0o600)  # the first process's key wins
    for _ in range(50):  # an exclusive create (no hard links) may still be being written
        try:
            key = _read(path, nbytes)
        except ValueError:
            if path.stat().st_size >= nbytes:
                raise
            key = None
        if key is not None:
            return key
        time.sleep(0.02)
    return _read(path, nbytes) or b""


def _read(path: Path, nbytes: int) -> bytes | None:
    try:
        mode = path.stat().st_mode
        key = path.read_bytes()
    except FileNotFoundError:
        return None
    if len(key) != nbytes:
        raise ValueError(f"the key file {path} holds {len(key)} bytes, not {nbytes}; delete it to "
                         f"make a new key (checkpoints made under the old one will not resume)")
    if stat.S_IMODE(mode) & 0o077:
        path.chmod(0o600)
    return key
