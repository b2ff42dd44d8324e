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
* :func:`locked` holds a cross-process lock for a target (``fcntl.flock`` on a lock file beside
  it): the cache-or-compute helpers take it, so of two processes wanting the same missing entry
  the second waits for the first and reads its result instead of computing it again.
* :func:`read_parquet` reads a parquet file as a pandas frame without the exit-time abort of
  ``pandas.read_parquet`` (see there); every parquet read in dparena goes through it.
* :func:`offline` says whether dparena may use the network.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

TMP_PREFIX = ".tmp-"  # every temporary file or folder this module makes starts with it
LOCK_PREFIX = ".lock-"  # the lock file of target NAME is .lock-NAME beside it (while held)

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


def read_parquet(path: str | Path) -> Any:
    """``pandas.read_parquet(path)`` read on the calling thread. pandas hands pyarrow a Python file
    object, and pyarrow's I/O thread pool then races the interpreter's shutdown: about one exit in
    six aborts with "terminate called without an active exception" (exit -6 instead of the
    process's own code; apache/arrow#34314 and #50482, pyarrow 26.0.1 here). Reading without
    threads leaves no pool behind (``tests/test_io.py``)."""
    import pandas as pd

    return pd.read_parquet(path, engine="pyarrow", use_threads=False)


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


#: errors of a filesystem that offers no flock (some network filesystems): then no lock is held
#: and concurrent processes may both compute an entry (wasted work, never a torn file)
_NO_LOCKS = frozenset({errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL})


@contextmanager
def locked(target: str | Path) -> Iterator[None]:
    """Hold an exclusive lock for ``target`` across processes (and threads) while the block runs.

    The lock is ``fcntl.flock`` on ``.lock-<name>`` beside ``target`` (the folder is created); a
    second caller blocks until the first leaves the block. The lock file is removed on release;
    a waiter that then holds the removed file's lock notices (the path no longer names its file)
    and locks afresh, so two holders never overlap. A process killed while holding it releases it
    (the kernel drops the lock with the process). Not re-entrant: a block must not lock the same
    target again."""
    import fcntl

    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    lock = target.parent / f"{LOCK_PREFIX}{target.name}"
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666 & ~umask())
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError as exc:
            os.close(fd)
            if exc.errno not in _NO_LOCKS:
                raise
            fd = -1
        except BaseException:
            os.close(fd)
            raise
        if fd < 0:
            break  # no locks on this filesystem: run unlocked
        try:
            mine = os.fstat(fd)
            now = os.stat(lock)
            same = (mine.st_ino, mine.st_dev) == (now.st_ino, now.st_dev)
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # the holder before us removed this file: lock the current one
    if fd < 0:
        yield
        return
    try:
        yield
    finally:
        try:
            lock.unlink(missing_ok=True)
        finally:
            os.close(fd)


def build_folder(folder: str | Path, build: Callable[[Path], Any],
                 complete: Callable[[Path], bool]) -> Path:
    """``folder``, built by ``build(tmp)`` in a temporary sibling and renamed into place, unless
    ``complete(folder)`` says it is already there. Builders of one folder take turns
    (:func:`locked`): a second process waits for the first and keeps its folder. If the rename
    fails because another process put a complete folder there first, that one is kept; a failed
    build leaves nothing behind."""
    folder = Path(folder)
    if complete(folder):
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    with locked(folder):
        if complete(folder):  # built by the process we waited for
            return folder
        return _build_folder(folder, build, complete)


def _build_folder(folder: Path, build: Callable[[Path], Any],
                  complete: Callable[[Path], bool]) -> Path:
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
    inputs, the model's checksum), so a stale entry is never hit. Processes computing one entry
    take turns (:func:`locked`): a second one waits for the first and reads its file.
    """
    if path is None:
        return compute()
    path = Path(path)
    hit = _read_arrays(path, check)
    if hit is not None:
        return hit
    with locked(path):
        hit = _read_arrays(path, check)  # computed by the process we waited for
        if hit is not None:
            return hit
        value = compute()
        if isinstance(value, dict):
            save_arrays(path, **value)
        else:
            save_arrays(path, value)
    return value


def _read_arrays(path: Path, check: Callable[[Any], bool]) -> Any:
    """The arrays in ``path`` if it reads whole, has the kind its suffix says and passes
    ``check``; else None."""
    import numpy as np

    if not path.exists():
        return None
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
    return None
