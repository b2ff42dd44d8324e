"""Local transformers causal LMs with batched, seeded sampling.

Prompts are rendered with the tokenizer's chat template when it has one (else the message contents
joined by blank lines), left-padded into batches and decoded by :func:`dparena.lm.sample.decode`,
the shared loop over the model's key/value cache. Each prompt gets its own ``torch.Generator``
seeded from the caller's ``numpy`` generator, and each token is drawn by inverting the
(nucleus-truncated) CDF with one uniform from that prompt's generator
(:func:`dparena.lm.sample.sample_per_row`) — so a prompt's completion does not depend on which
other prompts share its batch (up to floating-point differences of padded attention), and the same
rng state gives the same texts.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from dparena.errors import require
from dparena.io import offline
from dparena.llm.base import LLM, LLMError, Prompt, as_messages, check_sampling, per_prompt
from dparena.lm.sample import decode, sample_per_row


class TransformersLM(LLM):
    """A causal LM from a local directory or a hub id (``AutoModelForCausalLM``).

    ``batch_size`` prompts are decoded together (sorted by length to limit padding);
    ``chat_template`` is "auto" (use it when the tokenizer has one), True or False;
    ``gguf_file`` loads a GGUF checkpoint inside ``model``'s directory (dequantised by transformers).
    A hub id is looked up in the local cache only when :func:`dparena.io.offline` says so.
    """

    def __init__(self, model: str | Path, *, batch_size: int = 8, device: str = "cpu",
                 dtype: str = "float32", chat_template: bool | str = "auto",
                 gguf_file: str | None = None, max_prompt_tokens: int | None = None,
                 local_files_only: bool | None = None):
        if batch_size < 1:
            from dparena.errors import ConfigError

            raise ConfigError(f"batch_size must be >= 1 (got {batch_size})")
        torch = require("torch", "text")
        transformers = require("transformers", "text")
        self.name = str(model)
        self.batch_size = batch_size
        self.device = torch.device(device)
        if local_files_only is None:  # a directory, or offline by request: never ask the hub
            local_files_only = Path(model).exists() or offline()
        local = local_files_only
        kwargs = {"local_files_only": local}
        if gguf_file:
            kwargs["gguf_file"] = gguf_file
        try:
            self.tokenizer = transformers.AutoTokenizer.from_pretrained(str(model), **kwargs)
            self.model = transformers.AutoModelForCausalLM.from_pretrained(
                str(model), dtype=getattr(torch, dtype), **kwargs)
        except OSError as exc:
            raise LLMError(f"could not load the language model {str(model)!r} "
                           f"({str(exc).splitlines()[0][:160]}); give a local directory or a "
                           f"cached hub id") from None
        self.model.to(self.device).eval()
        tok = self.tokenizer
        tok.padding_side = "left"
        tok.truncation_side = "left"
        if tok.pad_token_id is None:
            tok.pad_token = tok.eos_token
        self.use_chat = bool(tok.chat_template) if chat_template == "auto" else bool(chat_template)
        eos = {tok.eos_token_id} if tok.eos_token_id is not None else set()
        gen_eos = getattr(getattr(self.model, "generation_config", None), "eos_token_id", None)
        if gen_eos is not None:
            eos |= set(gen_eos) if isinstance(gen_eos, list | tuple) else {gen_eos}
        self.eos_ids = sorted(eos)
        self.max_positions = getattr(self.model.config, "max_position_embeddings", None) or \
            getattr(self.model.config, "n_positions", None)
        self.max_prompt_tokens = max_prompt_tokens
        import inspect

        # compute the prompt's logits at its last position only (as transformers' generate does)
        self._keeps_logits = "logits_to_keep" in inspect.signature(self.model.forward).parameters
        self.tokens_generated = 0
        self.seconds = 0.0

    def render(self, prompt: Prompt) -> str:
        """The text the model is conditioned on for ``prompt``."""
        messages = as_messages(prompt)
        if self.use_chat:
            return self.tokenizer.apply_chat_template(messages, tokenize=False,
                                                      add_generation_prompt=True)
        return "\n\n".join(m["content"] for m in messages) + "\n"

    def generate(self, prompts: Sequence[Prompt], *, temperature: float = 1.0, top_p: float = 1.0,
                 max_new_tokens: int | Sequence[int] = 64,
                 rng: np.random.Generator) -> list[str]:
        check_sampling(temperature, top_p)
        limits = per_prompt(max_new_tokens, len(prompts))
        texts = [self.render(p) for p in prompts]
        seeds = rng.integers(0, 2**63 - 1, size=len(prompts))
        lengths = [len(self.tokenizer(t, add_special_tokens=not self.use_chat)["input_ids"])
                   for t in texts]
        order = sorted(range(len(texts)), key=lambda i: (lengths[i], i))
        out: list[str] = [""] * len(texts)
        start = time.perf_counter()
        for b in range(0, len(order), self.batch_size):
            idx = order[b: b + self.batch_size]
            got = self._batch([texts[i] for i in idx], [int(seeds[i]) for i in idx],
                              [limits[i] for i in idx], temperature, top_p)
            for i, text in zip(idx, got, strict=True):
                out[i] = text
        self.seconds += time.perf_counter() - start
        return out

    def _batch(self, texts: list[str], seeds: list[int], limits: list[int], temperature: float,
               top_p: float) -> list[str]:
        import torch

        steps = max(limits)
        budget = self.max_prompt_tokens or (
            self.max_positions - steps if self.max_positions else None)
        if budget is not None and budget < 1:
            raise LLMError(f"max_new_tokens={steps} leaves no room for a prompt in a context of "
                           f"{self.max_positions} positions; lower it")
        enc = self.tokenizer(texts, return_tensors="pt", padding=True,
                             add_special_tokens=not self.use_chat,
                             truncation=budget is not None, max_length=budget)
        gens = [torch.Generator(device="cpu").manual_seed(s) for s in seeds]
        rows = decode(self.model, enc["input_ids"].to(self.device),
                      enc["attention_mask"].to(self.device), limits=limits,
                      pick=lambda logits: sample_per_row(logits, temperature, top_p, gens),
                      eos_ids=self.eos_ids, fill_id=self.tokenizer.pad_token_id,
                      last_logits_only=self._keeps_logits)
        self.tokens_generated += sum(len(row) for row in rows)
        eos = set(self.eos_ids)
        return [self.tokenizer.decode(row[:-1] if row and row[-1] in eos else row,
                                      skip_special_tokens=True).strip() for row in rows]
