"""Local transformers causal LMs with batched, seeded sampling.

Prompts are rendered with the tokenizer's chat template when it has one (else the message contents
joined by blank lines), left-padded into batches and decoded by an explicit sampling loop over the
model's key/value cache. Each prompt gets its own ``torch.Generator`` seeded from the caller's
``numpy`` generator, and each token is drawn by inverting the (nucleus-truncated) CDF with one
uniform from that prompt's generator — so a prompt's completion does not depend on which other
prompts share its batch (up to floating-point differences of padded attention), and the same rng
state gives the same texts.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from dparena.errors import require
from dparena.io import offline
from dparena.llm.base import LLM, LLMError, Prompt, as_messages, check_sampling, per_prompt

if TYPE_CHECKING:
    import torch


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
        ids = enc["input_ids"].to(self.device)
        mask = enc["attention_mask"].to(self.device)
        gens = [torch.Generator(device="cpu").manual_seed(s) for s in seeds]
        eos = torch.tensor(self.eos_ids, dtype=torch.long, device=self.device)
        n = len(texts)
        done = torch.zeros(n, dtype=torch.bool, device=self.device)
        produced = torch.zeros(n, dtype=torch.long)
        new_tokens = []
        with torch.inference_mode():
            positions = (mask.cumsum(-1) - 1).clamp(min=0)
            extra = {"logits_to_keep": 1} if self._keeps_logits else {}
            result = self.model(input_ids=ids, attention_mask=mask, position_ids=positions,
                                use_cache=True, **extra)
            past = result.past_key_values
            logits = result.logits[:, -1, :]
            for step in range(steps):
                token = _sample(logits.float(), temperature, top_p, gens)
                token = torch.where(done, torch.full_like(token, self.tokenizer.pad_token_id),
                                    token)
                new_tokens.append(token)
                live = ~done
                produced += live.long().cpu()
                done = done | torch.isin(token, eos) | (
                    torch.tensor([step + 1 >= lim for lim in limits], device=self.device))
                if bool(done.all()):
                    break
                mask = torch.cat([mask, torch.ones((n, 1), dtype=mask.dtype,
                                                   device=self.device)], dim=1)
                positions = positions[:, -1:] + 1
                result = self.model(input_ids=token[:, None], attention_mask=mask,
                                    position_ids=positions, past_key_values=past, use_cache=True)
                past = result.past_key_values
                logits = result.logits[:, -1, :]
        self.tokens_generated += int(produced.sum())
        if not new_tokens:
            return [""] * n
        gen = torch.stack(new_tokens, dim=1).cpu()
        out = []
        for row, lim in zip(gen.tolist(), limits, strict=True):
            row = row[:lim]
            cut = next((k for k, t in enumerate(row) if t in self.eos_ids), len(row))
            out.append(self.tokenizer.decode(row[:cut], skip_special_tokens=True).strip())
        return out


_TOPK = 256


def _sample(logits, temperature: float, top_p: float, gens) -> torch.Tensor:
    """One token per row: greedy at temperature 0, else inverse-CDF sampling of the tempered,
    nucleus-truncated distribution with one uniform from the row's own generator."""
    import torch

    if temperature == 0:
        return logits.argmax(dim=-1)
    probs = torch.softmax(logits.double() / temperature, dim=-1)
    vocab = probs.shape[-1]
    u = torch.cat([torch.rand(1, generator=g, dtype=torch.float64) for g in gens]).to(probs.device)
    if top_p >= 1:  # no truncation: invert the CDF in vocabulary order
        cum = probs.cumsum(dim=-1)
        pick = torch.searchsorted(cum, (u * cum[:, -1]).unsqueeze(-1))
        return pick.clamp(max=vocab - 1).squeeze(-1)
    # the nucleus usually lies within the top few hundred tokens: rows whose top-K mass reaches
    # top_p sort only those (the same prefix as a full sort), the other rows sort everything;
    # the choice depends on the row alone, so batching does not change it
    out = torch.empty(probs.shape[0], dtype=torch.long, device=probs.device)
    small = torch.zeros(probs.shape[0], dtype=torch.bool, device=probs.device)
    if vocab > _TOPK:
        top_p_vals, top_idx = probs.topk(_TOPK, dim=-1)
        small = top_p_vals.sum(dim=-1) >= top_p
        if bool(small.any()):
            out[small] = _nucleus_pick(top_p_vals[small], top_idx[small], u[small], top_p)
    if not bool(small.all()):
        sorted_p, sorted_idx = probs[~small].sort(dim=-1, descending=True)
        out[~small] = _nucleus_pick(sorted_p, sorted_idx, u[~small], top_p)
    return out


def _nucleus_pick(sorted_p, sorted_idx, u, top_p: float):
    """Inverse-CDF draw from the smallest prefix of the sorted probabilities whose mass reaches
    ``top_p`` (the first token always stays)."""
    cum = sorted_p.cumsum(dim=-1)
    keep = (cum - sorted_p) < top_p
    kept = sorted_p * keep
    cum = kept.cumsum(dim=-1)
    import torch

    pick = torch.searchsorted(cum, (u * cum[:, -1]).unsqueeze(-1)).clamp(max=cum.shape[-1] - 1)
    return sorted_idx.gather(-1, pick).squeeze(-1)
