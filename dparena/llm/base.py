"""The LLM interface shared by the transformers and HTTP backends (the factory is
:func:`dparena.llm.load_llm`)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence

import numpy as np

from dparena.errors import ConfigError, DparenaError

#: a prompt: a user message, or a list of chat messages ``{"role": ..., "content": ...}``
Prompt = str | Sequence[Mapping[str, str]]


class LLMError(DparenaError):
    """A language model backend failed (unreachable endpoint, refused request, missing model)."""


def as_messages(prompt: Prompt) -> list[dict[str, str]]:
    """A prompt as chat messages (a bare string is one user message)."""
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    messages = [dict(m) for m in prompt]
    for m in messages:
        if set(m) != {"role", "content"} or not isinstance(m["content"], str):
            raise ConfigError("a chat message must be {'role': ..., 'content': str}")
    return messages


def per_prompt(value: int | Sequence[int], n: int, what: str = "max_new_tokens") -> list[int]:
    """Broadcast an int, or check a per-prompt sequence, of positive token limits."""
    values = [int(value)] * n if isinstance(value, int | np.integer) else [int(v) for v in value]
    if len(values) != n or any(v < 1 for v in values):
        raise ConfigError(f"{what} must be a positive integer or one per prompt ({n})")
    return values


def check_sampling(temperature: float, top_p: float) -> None:
    if not temperature >= 0:
        raise ConfigError(f"temperature must be >= 0 (got {temperature}); 0 means greedy")
    if not 0 < top_p <= 1:
        raise ConfigError(f"top_p must be in (0, 1] (got {top_p})")


class LLM(ABC):
    """A text generator. Every random choice comes from the ``rng`` passed to :meth:`generate`."""

    #: number of completion tokens produced so far (for throughput measurements)
    tokens_generated: int = 0

    @abstractmethod
    def generate(self, prompts: Sequence[Prompt], *, temperature: float = 1.0, top_p: float = 1.0,
                 max_new_tokens: int | Sequence[int] = 64,
                 rng: np.random.Generator) -> list[str]:
        """One completion per prompt, in order.

        ``temperature`` 0 decodes greedily; ``top_p`` < 1 samples from the nucleus (Holtzman et
        al., ICLR 2020); ``max_new_tokens`` is one limit or one per prompt.
        """
