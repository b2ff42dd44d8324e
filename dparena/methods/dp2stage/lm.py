"""Language models for DP-2Stage: ``tiny`` (CI), ``smollm2`` (offline default with LoRA), ``gpt2``.

``smollm2`` and ``gpt2`` (the paper's model) come from :func:`dparena.lm.model.load_pretrained`.
``tiny`` is DP-2Stage's own: a random-init GPT-2 (2 layers, width 64) with a byte-level BPE
tokenizer trained on text generated from the PUBLIC schema only (uniform draws of every column,
serialized in every format, a fixed seed): it needs no download, its vocabulary is small (so
per-sample gradients of the embedding stay cheap), every byte is covered (an out-of-distribution
table still tokenizes), and reading no private row it costs no privacy. Its weights are drawn
inside ``torch.random.fork_rng`` seeded from the run seed.
"""

from __future__ import annotations

import numpy as np

from dparena.errors import ConfigError, require
from dparena.lm.model import LM, PRETRAINED, load_pretrained

MODELS = ("tiny", *PRETRAINED)
EOS = "<|endoftext|>"


def schema_tokenizer(schema, vocab_size: int = 1536, n_rows: int = 400, store=None):
    """A byte-level BPE tokenizer trained on public text only.

    The corpus: ``n_rows`` uniform draws from the public schema serialized in every format, plus
    the public out-of-distribution table (German credit, serialized "great"), so that the same
    tokenizer serves DP-Standard and both DP-2Stage variants (perplexities stay comparable) and the
    stage-1 OOD rows are not 4x longer than the private ones.
    """
    tokenizers = require("tokenizers", "llm")
    transformers = require("transformers", "llm")
    import hashlib
    import json

    from dparena.io import write_atomic
    from dparena.methods.dp2stage.pseudo import uniform_rows
    from dparena.methods.dp2stage.serialize import FORMATS, Serializer

    key = json.dumps({"schema": schema.to_dict(), "vocab": vocab_size, "rows": n_rows, "v": 2},
                     sort_keys=True)
    from dparena.assets import AssetStore

    store = store or AssetStore()
    cache = (store.home / "cache" / "dp2stage"
             / f"tokenizer-{hashlib.sha256(key.encode()).hexdigest()[:20]}.json")
    if cache.exists():
        return transformers.PreTrainedTokenizerFast(tokenizer_file=str(cache), eos_token=EOS,
                                                    bos_token=EOS, pad_token=EOS)
    rng = np.random.default_rng(0)  # part of the tokenizer's definition, not of a run
    frame = uniform_rows(schema, n_rows, rng)
    corpus = []
    for fmt in FORMATS:
        ser = Serializer(schema, fmt)
        corpus += [ser.serialize(r)[0] for r in frame.to_dict("records")]
    from dparena.methods.dp2stage.pseudo import german_table

    german, german_schema = german_table(store.path("german-data"))
    ger = Serializer(german_schema, "great")
    corpus += [ger.serialize(r)[0] for r in german.to_dict("records")]
    tok = tokenizers.Tokenizer(tokenizers.models.BPE())
    # words (with their leading space) stay whole so keys and categories can become one token;
    # separators are split off; then bytes are mapped to printable symbols (GPT-2 style)
    pre = tokenizers.pre_tokenizers
    tok.pre_tokenizer = pre.Sequence([
        pre.Split(tokenizers.Regex(r" ?[^\s,.:]+| ?[,.:]|\s+"), behavior="isolated"),
        pre.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = tokenizers.decoders.ByteLevel()
    trainer = tokenizers.trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=[EOS], show_progress=False,
        initial_alphabet=tokenizers.pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(corpus, trainer=trainer)
    cache.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(cache, lambda tmp: tok.save(str(tmp)))
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS,
                                                bos_token=EOS, pad_token=EOS)
    return fast


def load_lm(name: str, schema, seed: int, store=None, lora_r: int = 8, lora_alpha: int = 16,
            n_layer: int = 2, n_embd: int = 64, local_only: bool = False) -> LM:
    """Build or load the model ``name`` (one of :data:`MODELS`).

    ``local_only`` makes ``gpt2`` look only in the local Hugging Face cache (no hub request).
    """
    if name not in MODELS:
        raise ConfigError(f"unknown model {name!r}; use one of {', '.join(MODELS)}")
    if name != "tiny":
        return load_pretrained(name, seed, store=store, lora_r=lora_r, lora_alpha=lora_alpha,
                               local_only=local_only)
    torch = require("torch", "llm")
    transformers = require("transformers", "llm")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        tok = schema_tokenizer(schema, store=store)
        eos = tok.convert_tokens_to_ids(EOS)
        cfg = transformers.GPT2Config(
            vocab_size=len(tok), n_positions=512, n_embd=n_embd, n_layer=n_layer,
            n_head=max(1, n_embd // 32), bos_token_id=eos, eos_token_id=eos,
            pad_token_id=eos, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
        )
        model = transformers.GPT2LMHeadModel(cfg)
        return LM(model, tok, name, eos, eos, eos, 512)
