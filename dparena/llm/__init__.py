"""Language models queried as black boxes: ``generate(prompts, ...) -> list[str]``.

Two backends share the :class:`~dparena.llm.base.LLM` interface: local transformers causal LMs
(:mod:`dparena.llm.hf`) and OpenAI-compatible chat-completions endpoints (:mod:`dparena.llm.openai`).
Heavy libraries are imported inside the backends.
"""

from dparena.llm.base import LLM, LLMError, Prompt, load_llm

__all__ = ["LLM", "LLMError", "Prompt", "load_llm"]
