"""PE at the paper's CIFAR-10 scale on a laptop's memory (issue 18, item 3).

DPImageBench reports PE on CIFAR-10 needing 183 GB and 12 hours on a GPU. This runs dparena's
engine (:class:`dparena.methods.pe.engine.PrivateEvolution`, the histogram of
:mod:`dparena.methods.pe.histogram`) on the paper's schedule: N = 50,000 synthetic samples per
iteration, 50,000 private samples, 10 classes, lookahead 8, 2,048-d embeddings, L2 votes, threshold
10, selection by sampling. Two iterations instead of T = 20 keep it short; every iteration does
the same work, so time and memory per iteration carry over to T = 20.

What is measured is the engine, not a foundation model: the API is a stand-in that draws random
32x32x3 images and varies them with uniform pixel noise of amplitude 64 x degree, and the embedder
is a stand-in too, a fixed random projection of the image subsampled to 8x8x3 (192 pixels) to
2,048-d float32. Both are fast, so the API and embedding columns are the stand-ins' costs (a real
API or Inception would add its own); the engine column (the rest of the iteration: the lookahead
mean, summed in float64 over the 8 embeddings, the nearest-neighbour votes, noise, threshold,
selection and bookkeeping) and the memory are the engine's.

Each size runs in a fresh Python process so that its peak resident memory (Linux VmHWM) is that
run's alone: the population, the lookahead variations and embeddings, the private embeddings
(50,000 x 2,048 float32 = 391 MiB) and the interpreter. Target: <= 4 GB at N = 50,000. The
scaling over N = 5,000 / 20,000 / 50,000 (one iteration each below 50,000) is printed and stated
in docs/performance.md.

Short settings: DPARENA_BENCH_PE_N (default 50000), DPARENA_BENCH_PE_ITERATIONS (default 2),
DPARENA_BENCH_PE_SCALES (default "5000,20000"; empty to skip the scaling runs).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from dparena.methods.pe.api import API
from dparena.methods.pe.embeddings import Embedder

CLASSES, LOOKAHEAD, DIM, SIDE = 10, 8, 2048, 32
TARGET_MB = 4096.0
N_PAPER = int(os.environ.get("DPARENA_BENCH_PE_N", "50000"))
ITERATIONS = int(os.environ.get("DPARENA_BENCH_PE_ITERATIONS", "2"))
SCALES = [int(n) for n in os.environ.get("DPARENA_BENCH_PE_SCALES", "5000,20000").split(",") if n]
RESULTS: dict[int, dict] = {}


class NoiseImages(API):
    """Stand-in API: uniform random images; a variation adds uniform noise of ±64·degree."""

    name = "noise-images"

    def random_api(self, label, n, rng):
        return rng.integers(0, 256, (n, SIDE, SIDE, 3), dtype=np.uint8)

    def variation_api(self, samples, labels, degree, rng):
        amp = max(1, int(round(64 * degree)))
        noise = rng.integers(-amp, amp + 1, samples.shape, dtype=np.int16)
        return np.clip(samples + noise, 0, 255).astype(np.uint8)


class Projection(Embedder):
    """Stand-in embedder: the image subsampled to 8x8x3, projected to 2,048-d by a fixed matrix."""

    name = "projection"

    def __init__(self):
        self.matrix = np.random.default_rng(1234).standard_normal((192, DIM)).astype(np.float32)

    def embed(self, data):
        pixels = np.ascontiguousarray(np.asarray(data)[:, ::4, ::4, :]).reshape(len(data), -1)
        return pixels.astype(np.float32) @ self.matrix


class Timed:
    """Wraps an API or embedder, adding the seconds spent in its calls to ``seconds``."""

    def __init__(self, inner, methods):
        self.inner, self.seconds = inner, 0.0
        for name in methods:
            setattr(self, name, self._timed(getattr(inner, name)))

    def _timed(self, fn):
        def call(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - t0
        return call


def _status_mb(key: str) -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024.0
    raise KeyError(key)


def measure(n: int, iterations: int) -> dict:
    """One engine run at N = ``n`` (private and synthetic), in this process."""
    from dparena.methods.pe.engine import PEConfig, PrivateEvolution
    from dparena.privacy import Ledger

    rss_start = _status_mb("VmRSS")
    rng = np.random.default_rng(0)
    api, embedder = NoiseImages(), Projection()
    t0 = time.perf_counter()
    private_labels = np.arange(n) % CLASSES
    private_emb = embedder.embed(api.random_api(0, n, rng))
    private_s = time.perf_counter() - t0
    rss_private = _status_mb("VmRSS")
    config = PEConfig(iterations=iterations, population_sizes=n,
                      degrees=[0.0] + [0.98 - 0.02 * t for t in range(iterations)],
                      num_nearest_neighbors=1, distance="l2", lookahead=LOOKAHEAD, threshold=10.0,
                      selection="sample")
    timed_api = Timed(api, ("random_api", "variation_api"))
    timed_emb = Timed(embedder, ("embed",))
    engine = PrivateEvolution(api, embedder, config)
    engine.api, engine.embedder = timed_api, timed_emb  # type: ignore[assignment]
    marks: list[tuple[float, float, float]] = []

    def on_iteration(t, state):
        marks.append((time.perf_counter(), timed_api.seconds, timed_emb.seconds))

    start = (time.perf_counter(), 0.0, 0.0)
    final, labels, _ = engine.run(private_emb, private_labels, np.full(CLASSES, 1 / CLASSES),
                                  sigma=5.0, rng=rng, ledger=Ledger(), on_iteration=on_iteration)
    assert len(final) == n and np.bincount(labels, minlength=CLASSES).min() == n // CLASSES
    rows = []
    for (t_prev, a_prev, e_prev), (t_now, a_now, e_now) in zip([start] + marks[:-1], marks,
                                                               strict=True):
        total, api_s, emb_s = t_now - t_prev, a_now - a_prev, e_now - e_prev
        rows.append({"total_s": total, "api_s": api_s, "embedding_s": emb_s,
                     "engine_s": total - api_s - emb_s})
    return {"n": n, "iterations": iterations, "initial": rows[0], "per_iteration": rows[1:],
            "private_embedding_s": private_s, "rss_start_mb": rss_start,
            "rss_after_private_mb": rss_private, "peak_rss_mb": _status_mb("VmHWM")}


def run_fresh(n: int, iterations: int) -> dict:
    """:func:`measure` in a new Python process (its own peak RSS)."""
    out = subprocess.run([sys.executable, __file__, str(n), str(iterations)], check=True,
                         capture_output=True, text=True, timeout=3600)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _mean(rows: list[dict], key: str) -> float:
    return float(np.mean([r[key] for r in rows]))


def _line(res: dict) -> str:
    it = res["per_iteration"]
    return (f"N = {res['n']:>6,}: {_mean(it, 'total_s'):7.1f} s/iteration (API "
            f"{_mean(it, 'api_s'):.1f}, embedding {_mean(it, 'embedding_s'):.1f}, engine "
            f"{_mean(it, 'engine_s'):.1f}), peak RSS {res['peak_rss_mb']:,.0f} MB (before the "
            f"first iteration {res['rss_after_private_mb']:,.0f} MB)")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="peak RSS needs Linux /proc")
def test_pe_paper_scale(benchmark):
    res = benchmark.pedantic(run_fresh, args=(N_PAPER, ITERATIONS), rounds=1, iterations=1)
    RESULTS[N_PAPER] = res
    it = res["per_iteration"]
    benchmark.extra_info.update(
        peak_rss_mb=res["peak_rss_mb"], seconds_per_iteration=_mean(it, "total_s"),
        api_s=_mean(it, "api_s"), embedding_s=_mean(it, "embedding_s"),
        engine_s=_mean(it, "engine_s"), private_embeddings_mb=N_PAPER * DIM * 4 / 2**20)
    print(f"\nPE, CIFAR-10 schedule (lookahead {LOOKAHEAD}, {DIM}-d, {CLASSES} classes, stand-in "
          f"API and embedder): {_line(res)} (target <= {TARGET_MB:,.0f} MB); T = 20 would take "
          f"about {20 * _mean(it, 'total_s') / 60:.0f} min")
    assert res["peak_rss_mb"] <= TARGET_MB


@pytest.mark.skipif(not sys.platform.startswith("linux") or not SCALES,
                    reason="peak RSS needs Linux /proc; DPARENA_BENCH_PE_SCALES is empty")
def test_pe_scaling(benchmark):
    """Time and memory vs N (one iteration each below the paper's N)."""
    def sweep():
        return {n: run_fresh(n, 1) for n in SCALES if n not in RESULTS}

    RESULTS.update(benchmark.pedantic(sweep, rounds=1, iterations=1))
    sizes = sorted(RESULTS)
    print("\nPE engine scaling (stand-in API and embedder):")
    for n in sizes:
        print("  " + _line(RESULTS[n]))
    if len(sizes) >= 2:
        lo, hi = RESULTS[sizes[0]], RESULTS[sizes[-1]]
        ratio = hi["n"] / lo["n"]
        for key in ("engine_s", "api_s", "embedding_s"):
            exponent = np.log(_mean(hi["per_iteration"], key) / _mean(lo["per_iteration"], key))
            benchmark.extra_info[f"{key}_exponent"] = float(exponent / np.log(ratio))
        growth = (hi["peak_rss_mb"] - lo["peak_rss_mb"]) / (hi["n"] - lo["n"]) * 1000
        benchmark.extra_info["peak_rss_mb_per_1000"] = growth
        print(f"  time ~ N^{benchmark.extra_info['engine_s_exponent']:.2f} for the engine "
              f"(N^2/classes distance pairs, linear lookahead sums), "
              f"N^{benchmark.extra_info['api_s_exponent']:.2f} for the API; memory grows "
              f"{growth:.1f} MB per 1,000 samples")


if __name__ == "__main__":
    print(json.dumps(measure(int(sys.argv[1]), int(sys.argv[2]))))
