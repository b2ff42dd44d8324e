"""An OpenAI-compatible chat-completions endpoint over HTTP (stdlib ``urllib`` only).

Works with the OpenAI API and with servers speaking the same protocol (vLLM, llama.cpp server,
Ollama, LiteLLM...). Configuration comes from arguments or the environment:

* ``DPARENA_OPENAI_BASE_URL`` — default ``https://api.openai.com/v1``; requests go to
  ``{base}/chat/completions``;
* ``DPARENA_OPENAI_API_KEY`` or ``OPENAI_API_KEY`` — sent as ``Authorization: Bearer``; required
  for the default OpenAI URL only;
* ``DPARENA_OPENAI_MODEL`` — default ``gpt-4o-mini``.

Requests run ``concurrency`` at a time; a request that fails with HTTP 408/409/429/5xx, a timeout
or a connection error is retried up to ``max_retries`` times with exponential backoff (honouring a
``Retry-After`` header, capped at ``backoff_max_s``). Each request carries a ``seed`` drawn from the
caller's rng, which deterministic servers honour; hosted models may still vary between calls.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from dparena.errors import ConfigError
from dparena.llm.base import LLM, LLMError, Prompt, as_messages, check_sampling, per_prompt

OPENAI_URL = "https://api.openai.com/v1"
RETRY_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})


class OpenAIChatLM(LLM):
    """Chat completions from an OpenAI-compatible HTTP endpoint."""

    def __init__(self, model: str | None = None, *, base_url: str | None = None,
                 api_key: str | None = None, concurrency: int = 4, timeout_s: float = 60.0,
                 max_retries: int = 5, backoff_s: float = 1.0, backoff_max_s: float = 30.0,
                 max_tokens_field: str = "max_tokens",
                 sleep: Callable[[float], None] = time.sleep):
        self.base_url = (base_url or os.environ.get("DPARENA_OPENAI_BASE_URL")
                         or OPENAI_URL).rstrip("/")
        self.api_key = (api_key or os.environ.get("DPARENA_OPENAI_API_KEY")
                        or os.environ.get("OPENAI_API_KEY"))
        self.model = model or os.environ.get("DPARENA_OPENAI_MODEL") or "gpt-4o-mini"
        if self.base_url == OPENAI_URL and not self.api_key:
            raise ConfigError("the OpenAI endpoint needs a key: set OPENAI_API_KEY (or "
                              "DPARENA_OPENAI_BASE_URL for a server that needs none)")
        if concurrency < 1 or max_retries < 0 or timeout_s <= 0:
            raise ConfigError("concurrency >= 1, max_retries >= 0 and timeout_s > 0 are required")
        self.name = f"openai:{self.model}"
        self.concurrency = concurrency
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.backoff_max_s = backoff_max_s
        self.max_tokens_field = max_tokens_field
        self._sleep = sleep
        self.tokens_generated = 0

    @property
    def url(self) -> str:
        return f"{self.base_url}/chat/completions"

    def generate(self, prompts: Sequence[Prompt], *, temperature: float = 1.0, top_p: float = 1.0,
                 max_new_tokens: int | Sequence[int] = 64,
                 rng: np.random.Generator) -> list[str]:
        check_sampling(temperature, top_p)
        limits = per_prompt(max_new_tokens, len(prompts))
        seeds = rng.integers(0, 2**31 - 1, size=len(prompts))
        bodies = [{"model": self.model, "messages": as_messages(p), "temperature": temperature,
                   "top_p": top_p, self.max_tokens_field: lim, "seed": int(s), "n": 1}
                  for p, lim, s in zip(prompts, limits, seeds, strict=True)]
        if not bodies:
            return []
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(bodies))) as pool:
            replies = list(pool.map(self._complete, bodies))
        self.tokens_generated += sum(tokens for _, tokens in replies)
        return [text for text, _ in replies]

    def _complete(self, body: dict) -> tuple[str, int]:
        """POST one request with retries; returns (content, completion tokens)."""
        data = json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        last = ""
        for attempt in range(self.max_retries + 1):
            wait = min(self.backoff_s * 2**attempt, self.backoff_max_s)
            try:
                req = urllib.request.Request(self.url, data=data, headers=headers, method="POST")
                with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                    payload = json.loads(resp.read().decode())
                return _content(payload)
            except urllib.error.HTTPError as exc:
                detail = _error_detail(exc)
                last = f"HTTP {exc.code}{': ' + detail if detail else ''}"
                if exc.code not in RETRY_STATUS:
                    raise LLMError(f"chat endpoint {self.url} refused the request ({last}); "
                                   f"check the model name, key and parameters") from None
                after = exc.headers.get("Retry-After") if exc.headers else None
                if after:
                    try:
                        wait = min(max(float(after), 0.0), self.backoff_max_s)
                    except ValueError:
                        pass
            except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as exc:
                reason = getattr(exc, "reason", exc)
                last = f"{type(reason).__name__}: {reason}"[:200]
            except (ValueError, KeyError, IndexError, TypeError) as exc:
                last = f"malformed reply ({type(exc).__name__})"
            if attempt < self.max_retries:
                self._sleep(wait)
        raise LLMError(f"chat endpoint {self.url} failed after {self.max_retries + 1} attempts "
                       f"({last}); check that the server is up and DPARENA_OPENAI_BASE_URL")


def _content(payload: dict) -> tuple[str, int]:
    message = payload["choices"][0]["message"]
    text = message.get("content") or ""
    usage = payload.get("usage") or {}
    return str(text).strip(), int(usage.get("completion_tokens") or 0)


def _error_detail(exc: urllib.error.HTTPError) -> str:
    try:
        body = json.loads(exc.read().decode() or "{}")
        err = body.get("error", body)
        return str(err.get("message", "") if isinstance(err, dict) else err)[:160]
    except Exception:  # noqa: BLE001 - the body is only a hint
        return ""
