"""PE diffusion API throughput on CPU: the API vs a bare sampling loop over the same UNet.

The bare loop is what the API must do anyway (Gaussian noise, UNet forward, scheduler step, for
every timestep); the API adds pixel conversion, resizing, batching and seeding. Both run in the same
session on a tiny random-init UNet2DModel (16×16, 2 levels, ~180k parameters) with one torch thread.
Reported: images/s of random_api and of variation_api at degree 0.5, and the throughput ratio
API / bare loop for random_api (target >= 0.9) on the minimum and the median of 7 rounds (on a
shared 2-core machine the minimum is the steadier of the two).
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from dparena.datasets.schema import ImageSchema  # noqa: E402
from dparena.methods.pe.apis.diffusion import DiffusionAPI  # noqa: E402

N, STEPS = 64, 20
UNET = dict(sample_size=16, in_channels=3, out_channels=3, block_out_channels=(16, 32),
            layers_per_block=1, down_block_types=("DownBlock2D", "AttnDownBlock2D"),
            up_block_types=("AttnUpBlock2D", "UpBlock2D"), norm_num_groups=8)
RESULTS: dict[str, float] = {}


@pytest.fixture(scope="module")
def api():
    torch.set_num_threads(1)
    return DiffusionAPI(schema=ImageSchema(16, 16, 3, tuple("0123456789")),
                        model={"unet": UNET, "scheduler": {}}, num_inference_steps=STEPS,
                        batch_size=N, device="cpu")


def test_bare_sampling_loop(benchmark, api):
    unet, sched = api.unet, api.scheduler

    def bare():
        gen = torch.Generator().manual_seed(0)
        sched.set_timesteps(STEPS)
        x = torch.randn((N, 3, 16, 16), generator=gen)
        with torch.inference_mode():
            for t in sched.timesteps:
                x = sched.step(unet(x, t).sample, t, x, generator=gen).prev_sample
        return x

    benchmark.pedantic(bare, rounds=7, iterations=1, warmup_rounds=1)
    RESULTS["bare"] = benchmark.stats.stats.median
    RESULTS["bare_min"] = benchmark.stats.stats.min
    benchmark.extra_info["images_per_s"] = N / RESULTS["bare"]


def test_random_api(benchmark, api):
    out = benchmark.pedantic(lambda: api.random_api(0, N, np.random.default_rng(0)), rounds=7,
                             iterations=1, warmup_rounds=1)
    assert out.shape == (N, 16, 16, 3)
    median, best = benchmark.stats.stats.median, benchmark.stats.stats.min
    benchmark.extra_info["images_per_s"] = N / median
    if "bare" in RESULTS:
        ratio_min, ratio_median = RESULTS["bare_min"] / best, RESULTS["bare"] / median
        benchmark.extra_info["throughput_ratio_vs_bare_min"] = ratio_min
        benchmark.extra_info["throughput_ratio_vs_bare_median"] = ratio_median
        print(f"\nrandom_api: {N / median:.1f} images/s at {STEPS} steps (bare loop "
              f"{N / RESULTS['bare']:.1f}); API / bare throughput {ratio_min:.3f} (min), "
              f"{ratio_median:.3f} (median)")


def test_variation_api(benchmark, api):
    images = np.random.default_rng(0).integers(0, 256, size=(N, 16, 16, 3), dtype=np.uint8)
    labels = np.zeros(N, dtype=np.int64)
    out = benchmark.pedantic(
        lambda: api.variation_api(images, labels, 0.5, np.random.default_rng(0)), rounds=7,
        iterations=1, warmup_rounds=1)
    assert out.shape == images.shape
    median = benchmark.stats.stats.median
    benchmark.extra_info["images_per_s"] = N / median
    print(f"\nvariation_api (degree 0.5 = {STEPS // 2} steps): {N / median:.1f} images/s")
