"""The LLM interface: the transformers backend on tiny random-init Llama / GPT-2 models, and the
OpenAI-compatible HTTP backend against a local fake server speaking the same protocol."""

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from dparena import torch_utils
from dparena.errors import ConfigError
from dparena.llm import LLMError, load_llm
from dparena.llm.openai import OpenAIChatLM

torch = pytest.importorskip("torch")

PROMPTS = ["Write a fresh movie review.", "Rewrite: the plot is thin and the jokes fall flat.",
           "hi", "Write a long news article about the economy and the government, please."]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    with torch_utils.one_thread(torch):
        yield


@pytest.fixture(scope="module", params=["llama", "gpt2"])
def tiny_dir(request, tmp_path_factory):
    from dparena.lm.tiny import make_tiny_causal_lm

    return make_tiny_causal_lm(tmp_path_factory.mktemp(request.param), request.param,
                               chat_template=request.param == "llama")


def test_greedy_decoding_matches_transformers_generate(tiny_dir):
    """Our KV-cache loop (left padding, explicit positions) = transformers' own greedy search."""
    lm = load_llm(str(tiny_dir), batch_size=4)
    ours = lm.generate(PROMPTS, temperature=0, max_new_tokens=12, rng=np.random.default_rng(0))
    for prompt, got in zip(PROMPTS, ours, strict=True):
        enc = lm.tokenizer(lm.render(prompt), return_tensors="pt",
                           add_special_tokens=not lm.use_chat)
        ref = lm.model.generate(**enc, do_sample=False, max_new_tokens=12,
                                eos_token_id=lm.eos_ids, pad_token_id=lm.tokenizer.pad_token_id)
        text = lm.tokenizer.decode(ref[0, enc["input_ids"].shape[1]:], skip_special_tokens=True)
        assert got == text.strip()


def test_sampling_is_seeded_and_independent_of_batching(tiny_dir):
    batched = load_llm(str(tiny_dir), batch_size=3)
    single = load_llm(str(tiny_dir), batch_size=1)
    kw = {"temperature": 1.0, "top_p": 0.95, "max_new_tokens": 16}
    a = batched.generate(PROMPTS, rng=np.random.default_rng(7), **kw)
    assert a == batched.generate(PROMPTS, rng=np.random.default_rng(7), **kw)
    assert a == single.generate(PROMPTS, rng=np.random.default_rng(7), **kw)
    assert a != batched.generate(PROMPTS, rng=np.random.default_rng(8), **kw)
    # a vanishing nucleus keeps only the most likely token: that is greedy decoding
    tiny_p = batched.generate(PROMPTS, rng=np.random.default_rng(1), temperature=1.0,
                              top_p=1e-9, max_new_tokens=10)
    assert tiny_p == batched.generate(PROMPTS, rng=np.random.default_rng(2), temperature=0,
                                      max_new_tokens=10)


def test_token_limits_and_chat_template(tiny_dir):
    lm = load_llm(str(tiny_dir), batch_size=4)
    before = lm.tokens_generated
    out = lm.generate(PROMPTS[:2], temperature=1.0, max_new_tokens=[1, 6],
                      rng=np.random.default_rng(0))
    assert len(out) == 2 and 2 <= lm.tokens_generated - before <= 7
    rendered = lm.render([{"role": "system", "content": "Be brief."},
                          {"role": "user", "content": "Hello"}])
    if lm.use_chat:
        assert rendered.startswith("<|im_start|>system\nBe brief.<|im_end|>")
        assert rendered.endswith("<|im_start|>assistant\n")
    else:
        assert rendered == "Be brief.\n\nHello\n"
    with pytest.raises(ConfigError, match="max_new_tokens"):
        lm.generate(PROMPTS, max_new_tokens=[3, 3], rng=np.random.default_rng(0))
    with pytest.raises(ConfigError, match="top_p"):
        lm.generate(PROMPTS, top_p=0.0, rng=np.random.default_rng(0))


def test_missing_model_is_one_line(tmp_path, monkeypatch):
    with pytest.raises(LLMError) as err:
        load_llm(str(tmp_path / "nothing-here"))
    assert "\n" not in str(err.value) and "nothing-here" in str(err.value)
    monkeypatch.setenv("DPARENA_OFFLINE", "1")  # a hub id not in the cache: no network attempt
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(LLMError, match="dparena-no-such-org/no-such-model"):
        load_llm("dparena-no-such-org/no-such-model")


# -- the HTTP backend ----------------------------------------------------------------------------

class FakeChatServer:
    """A loopback server speaking the chat-completions protocol. ``script`` lists the HTTP status
    of successive requests (then 200s); a 200 answers with the user message reversed."""

    def __init__(self, script=(), retry_after=None):
        self.script = list(script)
        self.retry_after = retry_after
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    server.requests.append({"path": self.path, "headers": dict(self.headers),
                                            "body": body})
                    status = server.script.pop(0) if server.script else 200
                if status != 200:
                    payload = json.dumps({"error": {"message": f"status {status}"}}).encode()
                    self.send_response(status)
                    if status == 429 and server.retry_after is not None:
                        self.send_header("Retry-After", str(server.retry_after))
                else:
                    text = body["messages"][-1]["content"][::-1]
                    payload = json.dumps({
                        "id": "x", "object": "chat.completion", "model": body["model"],
                        "choices": [{"index": 0, "finish_reason": "stop",
                                     "message": {"role": "assistant", "content": text}}],
                        "usage": {"completion_tokens": len(text.split())},
                    }).encode()
                    self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base_url(self):
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


def test_endpoint_request_format_and_order(monkeypatch):
    with FakeChatServer() as server:
        monkeypatch.setenv("DPARENA_OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
        lm = load_llm("openai:tiny-chat", concurrency=3)
        prompts = [f"prompt number {i}" for i in range(7)]
        out = lm.generate(prompts, temperature=0.7, top_p=0.9, max_new_tokens=[5] * 6 + [9],
                          rng=np.random.default_rng(0))
        assert out == [p[::-1] for p in prompts]  # answers come back in prompt order
        assert lm.tokens_generated == 7 * 3
        req = server.requests[0]
        assert req["path"] == "/v1/chat/completions"
        assert req["headers"]["Authorization"] == "Bearer sk-test"
        body = req["body"]
        assert body["model"] == "tiny-chat" and body["temperature"] == 0.7
        assert body["top_p"] == 0.9 and body["messages"][0]["role"] == "user"
        by_prompt = {r["body"]["messages"][0]["content"]: r["body"] for r in server.requests}
        assert by_prompt["prompt number 6"]["max_tokens"] == 9
        # per-request seeds come from the rng: same rng, same seeds
        seeds = [by_prompt[p]["seed"] for p in prompts]
        lm.generate(prompts, max_new_tokens=5, rng=np.random.default_rng(0))
        again = {r["body"]["messages"][0]["content"]: r["body"]["seed"]
                 for r in server.requests[7:]}
        assert [again[p] for p in prompts] == seeds and len(set(seeds)) == 7


@pytest.mark.parametrize("status", [500, 429])
def test_endpoint_retries_with_backoff(status):
    waits = []
    with FakeChatServer(script=[status, status], retry_after=0.25) as server:
        lm = OpenAIChatLM("m", base_url=server.base_url, max_retries=3, backoff_s=0.5,
                          sleep=waits.append)
        assert lm.generate(["abc"], rng=np.random.default_rng(0)) == ["cba"]
        assert len(server.requests) == 3
    # exponential backoff, or the server's Retry-After on 429
    assert waits == ([0.5, 1.0] if status == 500 else [0.25, 0.25])


def test_endpoint_gives_up_and_does_not_retry_client_errors():
    waits = []
    with FakeChatServer(script=[503] * 10) as server:
        lm = OpenAIChatLM("m", base_url=server.base_url, max_retries=2, backoff_s=0.1,
                          sleep=waits.append)
        with pytest.raises(LLMError) as err:
            lm.generate(["abc"], rng=np.random.default_rng(0))
        assert "after 3 attempts" in str(err.value) and "HTTP 503" in str(err.value)
        assert len(server.requests) == 3 and waits == [0.1, 0.2]
    with FakeChatServer(script=[400]) as server:
        lm = OpenAIChatLM("m", base_url=server.base_url, max_retries=5, sleep=waits.append)
        with pytest.raises(LLMError, match="refused the request .*HTTP 400: status 400"):
            lm.generate(["abc"], rng=np.random.default_rng(0))
        assert len(server.requests) == 1


def test_unreachable_endpoint_is_one_line():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    lm = OpenAIChatLM("m", base_url=f"http://127.0.0.1:{port}/v1", max_retries=1,
                      timeout_s=2, sleep=lambda _: None)
    with pytest.raises(LLMError) as err:
        lm.generate(["abc"], rng=np.random.default_rng(0))
    msg = str(err.value)
    assert "\n" not in msg and f"127.0.0.1:{port}" in msg and "DPARENA_OPENAI_BASE_URL" in msg


def test_openai_default_url_needs_a_key(monkeypatch):
    for var in ("DPARENA_OPENAI_BASE_URL", "DPARENA_OPENAI_API_KEY", "OPENAI_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        OpenAIChatLM("gpt-4o-mini")


@pytest.mark.parametrize("top_p", [1.0, 0.9, 0.5])
def test_sampler_draws_the_tempered_nucleus_distribution(top_p):
    """Frequencies of 40,000 draws vs the exact nucleus distribution (Holtzman et al. 2020):
    softmax(logits / T), restricted to the smallest top set of mass >= top_p, renormalised."""
    from dparena.lm.sample import sample_per_row

    vocab, temperature = 600, 0.7  # > 256 tokens: both the top-K and the full-sort paths run
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(vocab, generator=gen) * 2
    logits[:3] += torch.tensor([4.0, 3.5, 3.0])  # a peaked head (top-K path) ...
    flat = torch.zeros(vocab)  # ... and a flat row whose nucleus spans > 256 tokens (full sort)
    for row in (logits, flat):
        p = torch.softmax(row.double() / temperature, 0)
        order = p.argsort(descending=True)
        cum = p[order].cumsum(0)
        nucleus = order[: int((cum - p[order] < top_p).sum())]
        expected = torch.zeros(vocab, dtype=torch.float64)
        expected[nucleus] = p[nucleus] / p[nucleus].sum()
        gens = [torch.Generator().manual_seed(i) for i in range(4000)]
        draws = torch.cat([sample_per_row(row.expand(4000, vocab), temperature, top_p, gens)
                           for _ in range(10)])
        freq = torch.bincount(draws, minlength=vocab).double() / len(draws)
        assert set(draws.unique().tolist()) <= set(nucleus.tolist())
        assert (freq - expected).abs().max() < 0.012  # sd of a frequency <= 0.0025


def test_the_two_samplers_keep_their_own_nucleus_boundary():
    """DP-2Stage's batch sampler keeps a token whose preceding mass equals top_p exactly (as its
    own sampler did before the LM package), the per-row sampler drops it (as llm.hf did)."""
    import torch

    from dparena.lm.sample import nucleus, sample_batch

    sorted_p = torch.tensor([[0.5, 0.25, 0.25]], dtype=torch.float64)
    assert nucleus(sorted_p, 0.75).tolist() == [[True, True, False]]
    assert nucleus(sorted_p, 0.75, inclusive=True).tolist() == [[True, True, True]]
    logits = torch.log(torch.tensor([[0.5, 0.25, 0.25]]))
    gen = torch.Generator().manual_seed(0)
    picks = {int(sample_batch(logits, 1.0, 0.75, gen)) for _ in range(200)}
    assert picks == {0, 1, 2}
