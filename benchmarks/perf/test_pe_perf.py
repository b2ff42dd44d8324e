"""PE's voting histogram at 10k private × 10k synthetic samples (d = 784, MNIST-sized pixels).

Compares, in the same session, the engine's batched exact search
(:func:`dparena.methods.pe.histogram.vote_histogram`, memory O(batch × N_syn)) with a brute-force
numpy version that materialises the full N_priv × N_syn distance matrix. Reports the time ratio and
the peak resident memory each adds (Linux VmHWM, reset through /proc/self/clear_refs)."""

from __future__ import annotations

import numpy as np
import pytest

from dparena.methods.pe.histogram import vote_histogram

N_PRIV, N_SYN, DIM = 10_000, 10_000, 784
RESULTS: dict[str, float] = {}


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    return (rng.random((N_PRIV, DIM), dtype=np.float32),
            rng.random((N_SYN, DIM), dtype=np.float32))


def brute_force_votes(private: np.ndarray, synthetic: np.ndarray) -> np.ndarray:
    """The whole distance matrix at once, then argmin per private sample (k = 1)."""
    dist = ((private * private).sum(1)[:, None] - 2.0 * (private @ synthetic.T)
            + (synthetic * synthetic).sum(1)[None, :])
    return np.bincount(dist.argmin(axis=1), minlength=len(synthetic)).astype(np.float64)


def _status_mb(key: str) -> float | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def peak_extra_mb(fn, *args) -> float | None:
    """Peak resident memory added by ``fn(*args)`` above the resident size before it (Linux)."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")  # resets VmHWM to the current VmRSS
    except OSError:
        return None
    before = _status_mb("VmRSS")
    fn(*args)
    peak = _status_mb("VmHWM")
    return None if before is None or peak is None else peak - before


def test_engine_votes(benchmark, data):
    priv, syn = data
    hist = benchmark.pedantic(vote_histogram, args=(priv, syn), rounds=3, iterations=1)
    assert hist.sum() == pytest.approx(N_PRIV)
    RESULTS["engine"] = benchmark.stats.stats.median


def test_brute_force_votes(benchmark, data):
    priv, syn = data
    hist = benchmark.pedantic(brute_force_votes, args=(priv, syn), rounds=3, iterations=1)
    assert np.array_equal(hist, vote_histogram(priv, syn))  # same votes
    RESULTS["brute"] = benchmark.stats.stats.median
    if "engine" in RESULTS:
        ratio = RESULTS["brute"] / RESULTS["engine"]
        benchmark.extra_info["brute_over_engine_time"] = ratio
        print(f"\nbrute-force numpy / engine median time: {ratio:.2f}x "
              f"({RESULTS['brute']:.2f} s vs {RESULTS['engine']:.2f} s)")


def test_peak_memory(benchmark, data):
    priv, syn = data
    engine_mb = peak_extra_mb(vote_histogram, priv, syn)
    brute_mb = peak_extra_mb(brute_force_votes, priv, syn)
    if engine_mb is None or brute_mb is None:
        pytest.skip("peak RSS needs Linux /proc")
    benchmark.extra_info.update(engine_peak_mb=engine_mb, brute_peak_mb=brute_mb)
    print(f"\npeak memory added: engine {engine_mb:.0f} MB, brute force {brute_mb:.0f} MB "
          f"(the N_priv × N_syn float32 matrix alone is {N_PRIV * N_SYN * 4 / 2**20:.0f} MB)")
    # the engine's batches of 1,024 rows stay far below one full distance matrix
    assert engine_mb < N_PRIV * N_SYN * 4 / 2**20
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
