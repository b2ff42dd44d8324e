"""Language models queried as black boxes: ``generate(prompts, ...) -> list[str]``.

Two backends share the :class:`~dparena.llm.base.LLM` interface: local transformers causal LMs
(:mod:`dparena.llm.hf`, sampling with :mod:`dparena.lm.sample`) and OpenAI-compatible
chat-completions endpoints (:mod:`dparena.llm.openai`). :func:`load_llm` picks one by name; the
backends import only :mod:`dparena.llm.base`, never this factory. Heavy libraries are imported
inside the backends.
"""

from __future__ import annotations

from typing import Any

from dparena.llm.base import LLM, LLMError, Prompt

__all__ = ["LLM", "LLMError", "Prompt", "load_llm"]


def load_llm(name: str, **kwargs: Any) -> LLM:
    """An LLM by name: ``openai`` / ``openai:MODEL`` is the HTTP endpoint backend (base URL and key
    from the environment); ``smollm2`` is the offline SmolLM2-135M-Instruct asset; anything else is
    a local directory or hub id for transformers; ``tiny`` / ``tiny-gpt2`` are the shared random-init
    tiny models of :func:`dparena.lm.tiny.tiny_folder` (noise-like text; for CI and quick suites)."""
    if name in ("tiny", "tiny-gpt2"):
        from dparena.lm.tiny import tiny_folder

        name = str(tiny_folder(name))
    if name == "smollm2":
        from dparena.lm.smollm2 import smollm2_folder

        name = str(smollm2_folder())
    if name == "openai" or name.startswith("openai:"):
        from dparena.llm.openai import OpenAIChatLM

        model = name.partition(":")[2] or kwargs.pop("model", None)
        return OpenAIChatLM(model=model, **kwargs)
    from dparena.llm.hf import TransformersLM

    return TransformersLM(name, **kwargs)
