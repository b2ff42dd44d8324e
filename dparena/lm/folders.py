"""Model folders under ``$DPARENA_HOME/models/``, built once and shared by processes."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path


def build_folder_once(folder: Path, marker: str, build: Callable[[Path], None]) -> Path:
    """``folder``, built by ``build(tmp)`` in a temporary sibling and renamed into place unless
    ``folder/marker`` already exists; if another process finishes first, its copy is kept."""
    if (folder / marker).exists():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".part-"))
    try:
        build(tmp)
        try:
            tmp.rename(folder)
        except OSError:  # another process finished first: keep its copy
            if not (folder / marker).exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder
