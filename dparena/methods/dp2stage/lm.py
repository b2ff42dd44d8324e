"""Language models for DP-2Stage: ``tiny`` (CI), ``smollm2`` (offline default with LoRA), ``gpt2``.

* ``tiny``: a random-init GPT-2 (2 layers, width 64) with a byte-level BPE tokenizer trained on
  text generated from the PUBLIC schema only (uniform draws of every column, serialized in every
  format, a fixed seed): it needs no download, its vocabulary is small (so per-sample gradients of
  the embedding stay cheap), every byte is covered (an out-of-distribution table still tokenizes),
  and reading no private row it costs no privacy.
* ``smollm2``: SmolLM2-135M-Instruct from the asset store (a GGUF inside a registry wheel). It is
  dequantized once and saved as a plain transformers folder next to the asset, then loaded from
  there; LoRA adapters (peft) on the attention projections are the only trained parameters.
* ``gpt2``: the paper's model through transformers from a local cache or the hub (GPU users);
  offline it fails with one line. Full fine-tuning (as in the paper), or LoRA with ``lora_r > 0``
  (``fan_in_fan_out`` for GPT-2's Conv1D).

Weight initialisation runs inside ``torch.random.fork_rng`` seeded from the run seed, so it is
reproducible and leaves the global generator untouched.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from dparena.errors import AssetError, ConfigError, require
from dparena.llm.smollm2 import smollm2_folder

MODELS = ("tiny", "smollm2", "gpt2")
# where ``gpt2`` comes from: the hub id (or its local cache); tests point it at a random-init tiny
# GPT-2 folder of the same architecture
GPT2_SOURCE = "gpt2"
EOS = "<|endoftext|>"


@dataclass
class LM:
    """A causal LM with its fast tokenizer (which must give character offsets)."""

    model: Any
    tokenizer: Any
    name: str
    bos_id: int
    eos_id: int
    pad_id: int
    max_positions: int


def _torch():
    return require("torch", "llm")


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
    torch = _torch()
    transformers = require("transformers", "llm")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if name == "tiny":
            tok = schema_tokenizer(schema, store=store)
            eos = tok.convert_tokens_to_ids(EOS)
            cfg = transformers.GPT2Config(
                vocab_size=len(tok), n_positions=512, n_embd=n_embd, n_layer=n_layer,
                n_head=max(1, n_embd // 32), bos_token_id=eos, eos_token_id=eos,
                pad_token_id=eos, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
            )
            model = transformers.GPT2LMHeadModel(cfg)
            return LM(model, tok, name, eos, eos, eos, 512)
        if name == "gpt2":
            try:
                tok = transformers.AutoTokenizer.from_pretrained(
                    GPT2_SOURCE, local_files_only=local_only)
                model = transformers.AutoModelForCausalLM.from_pretrained(
                    GPT2_SOURCE, local_files_only=local_only)
            except Exception as exc:  # noqa: BLE001 - offline or no cache: one clear line
                raise AssetError(
                    "gpt2 weights are not in the local Hugging Face cache and the hub is not "
                    "reachable; run once with network access or use model='smollm2' or 'tiny'"
                ) from exc
            eos = tok.eos_token_id
            model.config.pad_token_id = eos
            if lora_r > 0:
                model = _lora(model, lora_r, lora_alpha, ["c_attn"], fan_in_fan_out=True)
            return LM(model, tok, name, eos, eos, eos, model.config.n_positions)
        folder = smollm2_folder(store)
        tok = transformers.AutoTokenizer.from_pretrained(folder)
        model = transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
        eos = tok.eos_token_id
        bos = tok.bos_token_id if tok.bos_token_id is not None else eos
        model = _lora(model, lora_r, lora_alpha, ["q_proj", "v_proj"], fan_in_fan_out=False)
        return LM(model, tok, name, bos, eos, eos, 2048)


def _lora(model, r: int, alpha: int, targets: list[str], fan_in_fan_out: bool):
    peft = require("peft", "llm")
    cfg = peft.LoraConfig(r=r, lora_alpha=alpha, target_modules=targets, lora_dropout=0.0,
                          fan_in_fan_out=fan_in_fan_out, bias="none")
    return peft.get_peft_model(model, cfg)


def trainable_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def reference_lm(store=None) -> LM:
    """SmolLM2-135M-Instruct without adapters, frozen: the fixed scorer of fluency-perplexity."""
    torch = _torch()
    transformers = require("transformers", "llm")
    folder = smollm2_folder(store)
    tok = transformers.AutoTokenizer.from_pretrained(folder)
    model = transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    model.requires_grad_(False)
    eos = tok.eos_token_id
    bos = tok.bos_token_id if tok.bos_token_id is not None else eos
    return LM(model, tok, "smollm2", bos, eos, eos, 2048)
