"""Sentence embeddings with the real all-MiniLM-L6-v2 asset."""

import numpy as np
import pytest

from dparena import torch_utils
from dparena.embeddings.text import embed_texts, load_text_encoder
from dparena.errors import ConfigError

torch = pytest.importorskip("torch")
pytest.importorskip("sentence_transformers")

TEXTS = ["A warm and funny film, one of the best comedies of the year.",
         "A hilarious, heartfelt movie: the funniest comedy this year.",
         "The central bank raised interest rates to curb inflation on Tuesday.",
         "Interest rates went up again as the central bank fought rising prices."]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    with torch_utils.one_thread(torch):
        yield


def test_shape_norm_and_similarity(assets):
    emb = embed_texts(TEXTS, assets, batch_size=3)
    assert emb.shape == (4, 384) and emb.dtype == np.float32
    assert np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    sim = emb @ emb.T
    assert sim[0, 1] > 0.6 and sim[2, 3] > 0.6  # paraphrases are close
    assert max(sim[0, 2], sim[0, 3], sim[1, 2], sim[1, 3]) < 0.2  # film vs central bank
    # batching does not change the numbers
    assert np.allclose(emb, embed_texts(TEXTS, assets, batch_size=1), atol=1e-5)
    assert embed_texts([], assets).shape == (0, 384)
    with pytest.raises(ConfigError, match="list of texts"):
        embed_texts("one string", assets)


def test_embedding_is_normalised_mean_pooling(assets):
    """The model card's definition: mean of the token embeddings over the attention mask,
    then L2 normalisation — computed here with plain transformers on the same folder."""
    from transformers import AutoModel, AutoTokenizer

    folder = assets.path("all-minilm-l6-v2")
    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModel.from_pretrained(folder).eval()
    enc = tok(TEXTS, padding=True, truncation=True, max_length=256, return_tensors="pt")
    with torch.inference_mode():
        hidden = model(**enc).last_hidden_state
    mask = enc["attention_mask"].unsqueeze(-1).float()
    mean = (hidden * mask).sum(1) / mask.sum(1)
    ref = torch.nn.functional.normalize(mean, dim=1).numpy()
    assert np.allclose(embed_texts(TEXTS, assets), ref, atol=1e-5)
    assert load_text_encoder(store=assets) is load_text_encoder(store=assets)  # loaded once
