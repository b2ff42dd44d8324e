"""Tiny random-init causal LMs of real architectures, saved as ordinary model directories.

For tests, quick suites and benchmarks on machines without model weights: a byte-level BPE
tokenizer trained on a small corpus and a Llama or GPT-2 model with a few small layers, written with
``save_pretrained`` so every loader takes the same code path as for a real checkpoint. The output
is noise-like text; what is real is the code path and the cost per token.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from dparena.errors import ConfigError, require
from dparena.io import build_folder_once

#: ChatML, the template of SmolLM2-Instruct and many other instruction-tuned models
CHATML = ("{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
          "{{ message['content'] }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")

_CORPUS = (
    "A warm, funny and thoughtful film about growing up.",
    "The plot is thin and the jokes fall flat, but the cast tries hard.",
    "An absorbing documentary with a sharp eye for detail.",
    "Write a short movie review. Fill in the blanks in the following text.",
    "The government announced new measures on the economy on Tuesday.",
    "Officials said the talks would continue next week in the capital.",
    "Rewrite the following review in a casual tone, keeping its meaning.",
)


def make_tiny_causal_lm(directory: str | Path, arch: str = "llama", *, seed: int = 0,
                        vocab_size: int = 384, hidden: int = 64, layers: int = 2,
                        heads: int = 4, max_positions: int = 512,
                        corpus: Sequence[str] = _CORPUS, chat_template: bool = True) -> Path:
    """Write a random-init ``arch`` ("llama" or "gpt2") model and its tokenizer to ``directory``.

    The weights are drawn under ``torch.random.fork_rng`` seeded with ``seed`` (the global torch
    generator is restored afterwards). Returns the directory.
    """
    torch = require("torch", "text")
    transformers = require("transformers", "text")
    tokenizers = require("tokenizers", "text")
    if arch not in ("llama", "gpt2"):
        raise ConfigError(f"tiny LM architecture must be 'llama' or 'gpt2' (got {arch!r})")
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<pad>"]
    bpe = tokenizers.Tokenizer(tokenizers.models.BPE())
    bpe.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = tokenizers.decoders.ByteLevel()
    trainer = tokenizers.trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=specials, show_progress=False,
        initial_alphabet=tokenizers.pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator(list(corpus), trainer=trainer)
    eos = "<|im_end|>" if chat_template else "<|endoftext|>"
    tok = transformers.PreTrainedTokenizerFast(
        tokenizer_object=bpe, bos_token="<|endoftext|>", eos_token=eos, pad_token="<pad>",
        unk_token="<|endoftext|>")
    if chat_template:
        tok.chat_template = CHATML
    tok.save_pretrained(out)

    vocab = len(tok)
    ids = {"bos_token_id": tok.bos_token_id, "eos_token_id": tok.eos_token_id,
           "pad_token_id": tok.pad_token_id}
    if arch == "llama":
        config = transformers.LlamaConfig(
            vocab_size=vocab, hidden_size=hidden, intermediate_size=2 * hidden,
            num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=heads,
            max_position_embeddings=max_positions, tie_word_embeddings=True, **ids)
        cls = transformers.LlamaForCausalLM
    else:
        config = transformers.GPT2Config(
            vocab_size=vocab, n_embd=hidden, n_layer=layers, n_head=heads,
            n_positions=max_positions, **ids)
        cls = transformers.GPT2LMHeadModel
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = cls(config)
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    model.save_pretrained(out)
    return out


#: names of the shared tiny models (``load_llm("tiny")``, ``dp-finetune-lm`` with ``model="tiny"``)
TINY_NAMES = {"tiny": "llama", "tiny-gpt2": "gpt2"}


def tiny_folder(name: str = "tiny", store=None) -> Path:
    """The shared tiny model ``name`` ("tiny" = Llama with the ChatML template, "tiny-gpt2" = GPT-2
    without one), written once (seed 0, the public built-in corpus) under ``$DPARENA_HOME/models/``
    and reused."""
    from dparena.assets import AssetStore

    if name not in TINY_NAMES:
        raise ConfigError(f"unknown tiny model {name!r}; use one of {', '.join(TINY_NAMES)}")
    store = store or AssetStore()
    arch = TINY_NAMES[name]
    return build_folder_once(
        store.home / "models" / f"{name}-v1", "config.json",
        lambda tmp: make_tiny_causal_lm(tmp, arch, seed=0, chat_template=arch == "llama"))
