"""Paths the tests share: the repository root (tests live in sub-folders mirroring the package)."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
