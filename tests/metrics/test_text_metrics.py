"""Text metrics on sentence embeddings: embedding-fid, precision-recall and downstream accuracy."""

import numpy as np
import pytest

from dparena.datasets import datasets
from dparena.metrics import metrics
from dparena.metrics.base import EvalData, MetricContext
from dparena.metrics.fid import frechet_distance
from dparena.metrics.text import text_features
from dparena.types import Synthetic


@pytest.fixture(scope="module")
def reviews(assets):
    return datasets.create("rotten-tomatoes", n_private=300, n_eval=200).load(assets)


def _score(name, data, labels, b, tmp_path, **params):
    real = EvalData(b.eval, b.schema, b.eval_labels)
    ctx = MetricContext(seed=0, dataset="rotten-tomatoes", dataset_version="1", cache_dir=tmp_path)
    out = metrics.create(name, **params).compute(Synthetic(data, labels=labels), real, ctx)
    return {v.name: v.value for v in out}


def test_embedding_fid_is_the_frechet_distance_of_the_embeddings(reviews, tmp_path):
    b = reviews
    got = _score("embedding-fid", b.private[:100], b.private_labels[:100], b, tmp_path)
    x = text_features(b.private[:100], None).astype(np.float64)
    y = text_features(b.eval, None).astype(np.float64)
    want = frechet_distance(x.mean(0), np.cov(x, rowvar=False), y.mean(0), np.cov(y, rowvar=False))
    assert got["embedding-fid"] == pytest.approx(want, rel=1e-6)
    assert got["embedding-fid/n"] == 100
    # real reviews are much closer to real reviews than off-domain sentences are
    junk = [f"the invoice number {i} is due on monday at the main office" for i in range(100)]
    far = _score("embedding-fid", junk, np.zeros(100, np.int64), b, tmp_path)
    assert far["embedding-fid"] > 2 * got["embedding-fid"]
    assert (tmp_path / "text-embeddings").is_dir()  # the eval split is embedded once, cached


def test_precision_recall_on_texts(reviews, tmp_path):
    b = reviews
    real_like = _score("precision-recall", b.private[:150], b.private_labels[:150], b, tmp_path)
    one = _score("precision-recall", [b.private[0]] * 150, b.private_labels[:150], b, tmp_path)
    assert real_like["precision-recall/recall"] > 0.5
    assert one["precision-recall/recall"] < 0.1  # a single repeated text covers nothing


def test_downstream_accuracy_on_texts_tracks_label_quality(reviews, tmp_path):
    b = reviews
    good = _score("downstream-accuracy", b.private, b.private_labels, b, tmp_path)
    shuffled = np.random.default_rng(0).permutation(b.private_labels)
    bad = _score("downstream-accuracy", b.private, shuffled, b, tmp_path)
    single = _score("downstream-accuracy", b.private[:10], np.zeros(10, np.int64), b, tmp_path)
    assert good["downstream-accuracy"] > 0.7 and bad["downstream-accuracy"] < 0.6
    assert single["downstream-accuracy"] == pytest.approx(np.mean(b.eval_labels == 0))


def test_mauve_separates_real_from_off_domain_text(reviews, tmp_path):
    pytest.importorskip("mauve")
    b = reviews
    same = _score("mauve", b.private[:150], b.private_labels[:150], b, tmp_path)
    junk = [f"the invoice number {i} is due on monday at office {i % 7}" for i in range(150)]
    far = _score("mauve", junk, np.zeros(150, np.int64), b, tmp_path)
    assert 0.0 < far["mauve"] < 0.2 < 0.8 < same["mauve"] <= 1.0
    again = _score("mauve", b.private[:150], b.private_labels[:150], b, tmp_path)
    assert again["mauve"] == same["mauve"]  # seeded k-means
