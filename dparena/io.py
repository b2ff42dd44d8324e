"""Files and the network switch, each written once: atomic file writes, atomic folder builds,
cache-or-compute of arrays, and the offline switch.

* :func:`write_atomic` fills a temporary file beside the target (``.tmp-<name>.…``) and renames it
  over the target in one step, so a reader sees the old file or the new one, never part of one; a
  failed write leaves the target as it was and no temporary file behind. The file gets the mode a
  plain ``open()`` would give (``0o666 & ~umask``) unless a ``mode`` is given; ``fsync=True``
  flushes it to disk before the rename (for state that must survive a power cut, such as PE
  checkpoints).
* :func:`create_once` creates a file that must never change once made (a secret key): it becomes
  visible only whole, and when several processes race, the first one's content wins.
* :func:`build_folder` / :func:`build_folder_once` build a folder in a temporary sibling and
  rename it into place.
* :func:`cached_arrays` reads an array (or named arrays) from an ``.npy`` / ``.npz`` cache file or
  computes and stores it.
* :func:`offline` says whether dparena may use the network.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

TMP_PREFIX = ".tmp-"  # every temporary file or folder this module makes starts with it

#: values of DPARENA_OFFLINE (and HF_HUB_OFFLINE) that mean "the network may be used"
ONLINE_VALUES = frozenset({"", "0", "false", "no", "off"})


def offline() -> bool:
    """True when dparena must not use the network: ``DPARENA_OFFLINE`` (or the Hugging Face hub's
    own ``HF_HUB_OFFLINE``) is set to anything but empty, ``0``, ``false``, ``no`` or ``off``
    (case and surrounding spaces ignored). Then hub models are looked up in the local cache only,
    CIFAR-10 is not downloaded, the ``datasets`` library runs offline, and a missing file fails
    with one line saying where to put it."""
    return any(os.environ.get(name, "").strip().lower() not in ONLINE_VALUES
               for name in ("DPARENA_OFFLINE", "HF_HUB_OFFLINE"))


def umask() -> int:
    """This process's umask (read without changing it where Linux tells it)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_atomic(path: str | Path, writer: Callable[[Path], Any], *, fsync: bool = False,
                 mode: int | None = None) -> Path:
    """``writer(tmp)`` fills a temporary file beside ``path`` (same suffix, so numpy and torch
    keep the name), which then replaces ``path`` in one rename. The file's mode is ``mode``, or
    what a plain ``open()`` would give; ``fsync`` flushes it to disk first. Returns ``path``."""
    path = Path(path)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f"{TMP_PREFIX}{path.name}.",
                                suffix=path.suffix)
    tmp = Path(name)
    try:
        os.fchmod(fd, 0o666 & ~umask() if mode is None else mode)
        os.close(fd)
        fd = -1
        writer(tmp)
        if fsync:
            _fsync(tmp)
        os.replace(tmp, path)
    finally:
        if fd >= 0:
            os.close(fd)
        tmp.unlink(missing_ok=True)
    return path


def write_text_atomic(path: str | Path, text: str) -> Path:
    """:func:`write_atomic` of a text (UTF-8), creating the parent folder if needed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def create_once(path: str | Path, data: bytes, mode: int = 0o600) -> bool:
    """Create ``path`` holding ``data`` unless it exists; True if this call created it.

    The file appears only whole and fsynced (a complete temporary file hard-linked into place);
    of processes racing to create it, only the first link succeeds and the others keep its
    content. Where the filesystem has no hard links, an exclusive create (``O_EXCL``) decides
    instead; a reader may then briefly see the file shorter than ``data``.
    """
    path = Path(path)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f"{TMP_PREFIX}{path.name}.")
    tmp = Path(name)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)
            return True
        except FileExistsError:
            return False  # another process made it first: theirs stands
        except OSError:  # no hard links on this filesystem: exclusive create instead
            return _create_exclusive(path, data, mode)
    finally:
        tmp.unlink(missing_ok=True)


def _create_exclusive(path: Path, data: bytes, mode: int) -> bool:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        return False
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    return True


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def build_folder(folder: str | Path, build: Callable[[Path], Any],
                 complete: Callable[[Path], bool]) -> Path:
    """``folder``, built by ``build(tmp)`` in a temporary sibling and renamed into place, unless
    ``complete(folder)`` says it is already there. If the rename fails because another process put
    a complete folder there first, that one is kept; a failed build leaves nothing behind."""
    folder = Path(folder)
    if complete(folder):
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f"{TMP_PREFIX}{folder.name}."))
    try:
        build(tmp)
        try:
            os.replace(tmp, folder)
        except OSError:  # another process finished first: keep its copy
            if not complete(folder):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def build_folder_once(folder: str | Path, marker: str, build: Callable[[Path], Any]) -> Path:
    """:func:`build_folder`, complete once ``folder/marker`` exists."""
    return build_folder(folder, build, lambda f: (f / marker).exists())


def save_arrays(path: str | Path, array: Any = None, **arrays: Any) -> Path:
    """Write one array as ``.npy`` or keyword arrays as ``.npz`` (uncompressed) atomically,
    creating the parent folder if needed."""
    import numpy as np

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if array is not None:
        return write_atomic(path, lambda tmp: np.save(tmp, array))
    return write_atomic(path, lambda tmp: np.savez(tmp, **arrays))


def cached_arrays(path: str | Path | None, compute: Callable[[], Any],
                  check: Callable[[Any], bool] = lambda _: True) -> Any:
    """``compute()`` (an array, or a dict of named arrays), kept in the cache file ``path``
    (``.npy`` for an array, ``.npz`` for a dict: the suffix says which): a stored value that reads whole and passes
    ``check`` is returned instead of computing; a torn, unreadable or failing file is computed
    again and replaced. ``path`` None: computed every time, nothing stored.

    The caller's file name must identify everything the value depends on (a content hash of the
    inputs, the model's checksum), so a stale entry is never hit.
    """
    import numpy as np

    if path is None:
        return compute()
    path = Path(path)
    if path.exists():
        try:
            with open(path, "rb") as fh:
                loaded = np.load(fh, allow_pickle=False)
                if isinstance(loaded, np.lib.npyio.NpzFile):
                    with loaded:
                        loaded = {k: loaded[k] for k in loaded.files}
            if isinstance(loaded, dict) == (path.suffix == ".npz") and check(loaded):
                return loaded
        except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile):
            pass  # a torn file: compute again
    value = compute()
    if isinstance(value, dict):
        save_arrays(path, **value)
    else:
        save_arrays(path, value)
    return value
