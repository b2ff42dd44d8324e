"""Harness overhead: a run through the forked-worker runner vs the same run executed in-process.

Both are measured in the same session; the runner adds loading the dataset, forking a worker and
one SQLite transaction. Reported as the ratio and the absolute overhead per run (the overhead is
fixed, so the ratio only matters for runs that take well under a second)."""

import pytest

from dparena.assets import AssetStore
from dparena.harness.runner import Runner, execute, load_bundle
from dparena.harness.store import Store
from dparena.harness.suite import parse_suite

RAW = {
    "name": "perf", "seeds": [0], "epsilons": [1.0], "delta": 1e-5,
    "section": [{"dataset": "adult", "dataset_params": {"n_private": 5000, "n_eval": 5000},
                 "n_samples": 5000, "metrics": ["histogram-intersection", "pair-histogram-intersection"],
                 "methods": [{"name": "independent-marginals"}]}],
}
RESULTS: dict[str, float] = {}


@pytest.fixture(scope="module")
def spec():
    return parse_suite(RAW).specs[0]


def test_in_process(benchmark, spec, tmp_path):
    bundle = load_bundle(spec, AssetStore())
    rec = benchmark.pedantic(execute, args=(spec, bundle, tmp_path / "a", tmp_path / "c"),
                             rounds=5, iterations=1)
    assert rec.status == "ok"
    RESULTS["in_process"] = benchmark.stats.stats.median


def test_forked_runner(benchmark, spec, tmp_path):
    counter = iter(range(100))

    def once():
        store = Store(tmp_path / f"r{next(counter)}.sqlite")
        return Runner(store).run([spec])

    summary = benchmark.pedantic(once, rounds=5, iterations=1)
    assert summary.ok == 1
    RESULTS["runner"] = benchmark.stats.stats.median
    if "in_process" in RESULTS:
        ratio = RESULTS["runner"] / RESULTS["in_process"]
        overhead = RESULTS["runner"] - RESULTS["in_process"]
        benchmark.extra_info["overhead_ratio"] = ratio
        benchmark.extra_info["overhead_s"] = overhead
        print(f"\nrunner / in-process median time: {ratio:.2f}x ({overhead * 1000:.0f} ms per run)")
