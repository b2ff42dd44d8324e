"""The Ray executor on a real local Ray instance gives the same records as the local executor."""

import os

import pytest

from dparena.harness.runner import RayRunner, Runner
from dparena.harness.store import Store
from dparena.harness.suite import parse_suite

ray = pytest.importorskip("ray")

RAW = {
    "name": "ray", "seeds": [0, 1], "epsilons": [1.0, 10.0], "delta": 1e-5,
    "section": [{"dataset": "adult", "dataset_params": {"n_private": 500, "n_eval": 500},
                 "n_samples": 400, "metrics": ["histogram-intersection", "pair-histogram-intersection"],
                 "methods": [{"name": "independent-marginals"}, {"name": "uniform"}]}],
}


@pytest.fixture(scope="module")
def local_ray(tmp_path_factory):
    os.environ["RAY_AUTH_MODE"] = "disabled"
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             _temp_dir=str(tmp_path_factory.mktemp("ray")))
    yield
    ray.shutdown()


def _values(store):
    return {(r.key, n): v.value for r in store.runs() for n, v in r.metrics.items()}


def test_ray_and_local_executors_agree(local_ray, tmp_path):
    specs = parse_suite(RAW).specs
    local, remote = Store(tmp_path / "local.sqlite"), Store(tmp_path / "ray.sqlite")
    Runner(local).run(specs)
    summary = RayRunner(remote).run(specs)
    assert summary.ok == len(specs) == 6
    assert _values(local) == _values(remote)
    assert {r.status for r in remote.runs()} == {"ok"}
    # resuming through Ray skips everything
    assert RayRunner(remote).run(specs).skipped == 6
