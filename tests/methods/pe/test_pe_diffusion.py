"""PE's diffusion and stable-diffusion APIs on tiny random-init models of the real architectures.

Every test runs the real diffusers code path (UNet2DModel + DDIM/DDPM scheduler, the Stable
Diffusion text2img/img2img pipelines); nothing is mocked. Images are sklearn's bundled digits.
"""

import string

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from dparena.datasets.schema import ImageSchema  # noqa: E402
from dparena.errors import AssetError, ConfigError, SchemaError  # noqa: E402
from dparena.methods.pe.apis.diffusion import (  # noqa: E402
    API_CLASSES,
    DiffusionAPI,
    StableDiffusionAPI,
    to_model_space,
    to_uint8,
)
from tests.paths import ROOT  # noqa: E402

DIGITS = tuple(str(d) for d in range(10))
RGB16 = ImageSchema(16, 16, 3, DIGITS)
GREY8 = ImageSchema(8, 8, 1, DIGITS)


def tiny_unet(**overrides):
    """A 2-level UNet2DModel (about 180k parameters) at 16×16."""
    cfg = dict(sample_size=16, in_channels=3, out_channels=3, block_out_channels=(16, 32),
               layers_per_block=1, down_block_types=("DownBlock2D", "AttnDownBlock2D"),
               up_block_types=("AttnUpBlock2D", "UpBlock2D"), norm_num_groups=8)
    cfg.update(overrides)
    return cfg


def tiny_api(schema=RGB16, schedule=None, unet=None, **kwargs):
    model = {"unet": unet or tiny_unet(), "scheduler": schedule or {"num_train_timesteps": 1000}}
    kwargs.setdefault("num_inference_steps", 10)
    return DiffusionAPI(schema=schema, model=model, device="cpu", **kwargs)


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits

    raw = load_digits()
    images = np.clip(np.rint(raw.images * (255 / 16)), 0, 255).astype(np.uint8)[..., None]
    return images[:12], raw.target[:12].astype(np.int64)


def test_random_api_shape_dtype_and_seeded_determinism():
    api = tiny_api(batch_size=2)  # 5 images in batches of 2, 2, 1
    torch.manual_seed(123)  # the global RNG must not matter
    a = api.random_api(3, 5, np.random.default_rng(7))
    torch.manual_seed(999)
    b = api.random_api(3, 5, np.random.default_rng(7))
    c = api.random_api(3, 5, np.random.default_rng(8))
    assert a.shape == (5, 16, 16, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    assert len({a[i].tobytes() for i in range(5)}) == 5  # every image has its own noise
    assert api.random_api(0, 0, np.random.default_rng(0)).shape == (0, 16, 16, 3)


def test_variation_is_sdedit_small_degrees_stay_close(digits):
    # 8×8 grey digits through a 16×16 RGB model: resized and converted both ways
    images, labels = digits
    api = tiny_api(schema=GREY8, num_inference_steps=20)
    dist = {}
    for degree in (0.1, 0.3, 1.0):
        out = api.variation_api(images, labels, degree, np.random.default_rng(0))
        assert out.shape == images.shape and out.dtype == np.uint8
        dist[degree] = np.abs(out.astype(float) - images).mean()
    assert dist[0.1] < dist[0.3] < dist[1.0]
    assert dist[0.1] < 0.5 * dist[1.0]
    again = api.variation_api(images, labels, 0.3, np.random.default_rng(0))
    other = api.variation_api(images, labels, 0.3, np.random.default_rng(1))
    assert np.array_equal(again, api.variation_api(images, labels, 0.3, np.random.default_rng(0)))
    assert not np.array_equal(again, other)


def test_variation_starts_from_the_noised_input_at_the_right_timestep(digits):
    # SDEdit by hand: add_noise at the first of the last k timesteps, then k DDIM steps
    images, labels = digits
    api = tiny_api(schema=GREY8, num_inference_steps=10)
    ours = api.variation_api(images[:4], labels[:4], 0.3, np.random.default_rng(5))

    sched = api.scheduler
    sched.set_timesteps(10)
    steps = sched.timesteps[-3:]
    seed = int(np.random.default_rng(5).integers(0, 2**63 - 1))
    gen = torch.Generator().manual_seed(seed)
    x0 = to_model_space(images[:4], 3, (16, 16), "cpu")
    x = sched.add_noise(x0, torch.randn(x0.shape, generator=gen), steps[:1].repeat(4))
    with torch.no_grad():
        for t in steps:
            x = sched.step(api.unet(x, t).sample, t, x, eta=0.0, generator=gen).prev_sample
    assert np.array_equal(ours, to_uint8(x, GREY8.shape))


def test_pixel_conversions():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, size=(3, 8, 8, 3), dtype=np.uint8)
    x = to_model_space(rgb, 3, (8, 8), "cpu")
    assert x.shape == (3, 3, 8, 8) and float(x.min()) >= -1 and float(x.max()) <= 1
    assert np.array_equal(to_uint8(x, (8, 8, 3)), rgb)  # exact round trip
    grey = rng.integers(0, 256, size=(3, 8, 8, 1), dtype=np.uint8)
    assert np.array_equal(to_uint8(to_model_space(grey, 3, (8, 8), "cpu"), (8, 8, 1)), grey)
    # RGB -> grey is BT.601 luma
    luma = to_uint8(to_model_space(rgb, 1, (8, 8), "cpu"), (8, 8, 1))[..., 0]
    expect = rgb.astype(float) @ np.array([0.299, 0.587, 0.114])
    assert np.abs(luma - expect).max() <= 1
    # up to 32×32 and back: a smooth image survives
    smooth = np.broadcast_to(np.linspace(0, 255, 8).astype(np.uint8)[None, :, None, None],
                             (2, 8, 8, 1)).copy()
    up = to_model_space(smooth, 1, (32, 32), "cpu")
    assert up.shape == (2, 1, 32, 32)
    back = to_uint8(up, (8, 8, 1)).astype(int)
    assert np.abs(back - smooth).max() <= 8 and np.abs(back - smooth)[:, 1:-1].max() <= 1


def test_class_conditional_unet_uses_the_label():
    api = tiny_api(unet=tiny_unet(num_class_embeds=10))
    a = api.random_api(2, 3, np.random.default_rng(0))
    b = api.random_api(7, 3, np.random.default_rng(0))
    assert not np.array_equal(a, b)  # same noise, other class embedding
    assert np.array_equal(a, api.random_api(2, 3, np.random.default_rng(0)))
    varied = api.variation_api(a, np.array([2, 2, 7]), 0.5, np.random.default_rng(1))
    assert varied.shape == a.shape
    # an ImageNet-style model with more classes than the dataset needs a class map
    with pytest.raises(ConfigError, match="class_map"):
        tiny_api(unet=tiny_unet(num_class_embeds=12))
    big = tiny_api(unet=tiny_unet(num_class_embeds=12), class_map="random")
    assert big.random_api(0, 2, np.random.default_rng(0)).shape == (2, 16, 16, 3)
    mapped = tiny_api(unet=tiny_unet(num_class_embeds=12),
                      class_map=[[11]] * 5 + [[0, 1]] * 5)
    assert set(mapped._model_classes(np.array([0, 0, 4]), np.random.default_rng(0))) == {11}
    with pytest.raises(ConfigError, match="class_map"):
        tiny_api(class_map="identity")  # unconditional model
    with pytest.raises(ConfigError, match="class_map"):
        tiny_api(unet=tiny_unet(num_class_embeds=12), class_map=[[12]] * 10)


def test_ddpm_scheduler_and_learned_variance_models(digits):
    images, labels = digits
    # improved-diffusion style: the UNet also predicts the variance (6 output channels)
    api = tiny_api(schema=GREY8, unet=tiny_unet(out_channels=6), schedule={
        "num_train_timesteps": 400, "beta_schedule": "squaredcos_cap_v2",
        "timestep_spacing": "linspace"})
    assert api.learned_variance
    assert api.random_api(1, 2, np.random.default_rng(0)).shape == (2, 8, 8, 1)
    ddpm = tiny_api(schema=GREY8, scheduler="ddpm")
    a = ddpm.variation_api(images[:3], labels[:3], 0.5, np.random.default_rng(2))
    assert np.array_equal(a, ddpm.variation_api(images[:3], labels[:3], 0.5,
                                                np.random.default_rng(2)))
    eta = tiny_api(schema=GREY8, eta=1.0)
    assert eta.variation_api(images[:3], labels[:3], 0.5, np.random.default_rng(2)).shape == (
        3, 8, 8, 1)


def test_validate_degrees_and_bad_parameters(digits):
    api = tiny_api(num_inference_steps=100)
    api.validate_degrees([0.98 - 0.02 * i for i in range(20)])  # the paper's CIFAR-10 schedule
    api.validate_degrees([1.0, 0.005])  # 0.5 steps rounds half up to 1
    api.validate_degrees(list(np.linspace(0.6, 0.98, 20, dtype=np.float32)))  # numpy numbers
    for bad in ([0.0], [1.5], [-0.1], ["0.5"], [True], [0.004], "0.5"):
        with pytest.raises(ConfigError):
            api.validate_degrees(bad)
    images, labels = digits
    with pytest.raises(ConfigError, match="SDEdit strength"):
        tiny_api(schema=GREY8).variation_api(images, labels, 2.0, np.random.default_rng(0))
    with pytest.raises(SchemaError):
        tiny_api().variation_api(images, labels, 0.5, np.random.default_rng(0))  # 8x8 vs 16x16
    with pytest.raises(ConfigError, match="scheduler"):
        DiffusionAPI(schema=RGB16, model={"unet": tiny_unet()}, scheduler="euler", device="cpu")
    with pytest.raises(ConfigError, match="batch_size"):
        tiny_api(batch_size=0)
    with pytest.raises(ConfigError, match="num_inference_steps"):
        tiny_api(num_inference_steps=2000)
    with pytest.raises(ConfigError, match="label"):
        tiny_api().random_api(10, 1, np.random.default_rng(0))


def test_local_model_directories_load_like_the_in_memory_model(tmp_path):
    from diffusers import DDIMScheduler, DDPMPipeline

    ref = tiny_api(init_seed=3)
    expect = ref.random_api(4, 2, np.random.default_rng(0))
    # a bare model folder (as google/ddpm-cifar10-32: config.json + weights + scheduler_config.json)
    flat = tmp_path / "flat"
    ref.unet.save_pretrained(flat)
    DDIMScheduler.from_config(ref.scheduler.config).save_pretrained(flat)
    api = DiffusionAPI(schema=RGB16, model=str(flat), num_inference_steps=10, device="cpu")
    assert np.array_equal(api.random_api(4, 2, np.random.default_rng(0)), expect)
    # a saved pipeline (unet/ and scheduler/ subfolders)
    pipe_dir = tmp_path / "pipe"
    DDPMPipeline(unet=ref.unet, scheduler=ref.scheduler).save_pretrained(pipe_dir)
    api = DiffusionAPI(schema=RGB16, model=str(pipe_dir), num_inference_steps=10, device="cpu")
    assert np.array_equal(api.random_api(4, 2, np.random.default_rng(0)), expect)
    # weights without a noise schedule: the schedule must be given
    bare = tmp_path / "bare"
    ref.unet.save_pretrained(bare)
    with pytest.raises(ConfigError, match="scheduler_config"):
        DiffusionAPI(schema=RGB16, model=str(bare), device="cpu")


@pytest.mark.parametrize("cls,model", [(DiffusionAPI, "google/ddpm-cifar10-32"),
                                       (StableDiffusionAPI, "CompVis/stable-diffusion-v1-4")])
def test_offline_hub_id_fails_with_one_line(cls, model, monkeypatch, tmp_path):
    monkeypatch.setenv("DPARENA_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))  # an empty Hugging Face cache
    with pytest.raises(AssetError) as err:
        cls(schema=RGB16, model=model, device="cpu")
    msg = str(err.value)
    assert "\n" not in msg and model in msg and "/path/to/dir" in msg
    with pytest.raises(AssetError, match="does not exist"):
        cls(schema=RGB16, model=str(tmp_path / "missing"), device="cpu")


# ----------------------------------------------------------------------------- stable diffusion

TOKENS = (["<|startoftext|>", "<|endoftext|>"] + list(string.ascii_lowercase + string.digits)
          + [c + "</w>" for c in string.ascii_lowercase + string.digits])


def tiny_sd_model():
    """Tiny random Stable Diffusion components (a character-level CLIP tokenizer, no files)."""
    return {
        "tokenizer": {"vocab": TOKENS, "model_max_length": 32},
        "text_encoder": dict(vocab_size=len(TOKENS), hidden_size=16, intermediate_size=32,
                             num_hidden_layers=1, num_attention_heads=2,
                             max_position_embeddings=32, bos_token_id=0, eos_token_id=1,
                             pad_token_id=1, projection_dim=16),
        "unet": dict(sample_size=8, in_channels=4, out_channels=4, block_out_channels=(8, 16),
                     layers_per_block=1, cross_attention_dim=16, attention_head_dim=2,
                     norm_num_groups=4,
                     down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                     up_block_types=("UpBlock2D", "CrossAttnUpBlock2D")),
        "vae": dict(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8, 16),
                    layers_per_block=1, norm_num_groups=4, sample_size=16,
                    down_block_types=("DownEncoderBlock2D",) * 2,
                    up_block_types=("UpDecoderBlock2D",) * 2),
        "scheduler": dict(num_train_timesteps=1000, beta_schedule="scaled_linear",
                          beta_start=0.00085, beta_end=0.012, clip_sample=False,
                          set_alpha_to_one=False, steps_offset=1),
    }


@pytest.fixture(scope="module")
def sd_api():
    return StableDiffusionAPI(schema=GREY8, model=tiny_sd_model(), num_inference_steps=4,
                              batch_size=3, device="cpu",
                              prompt_template="a handwritten digit {label}")


def test_stable_diffusion_random_and_variation(sd_api, digits):
    assert sd_api.prompts[7] == "a handwritten digit 7"
    assert (sd_api.width, sd_api.height) == (16, 16)  # unet 8 × vae factor 2
    a = sd_api.random_api(7, 4, np.random.default_rng(0))
    assert a.shape == (4, 8, 8, 1) and a.dtype == np.uint8
    assert np.array_equal(a, sd_api.random_api(7, 4, np.random.default_rng(0)))
    assert not np.array_equal(a, sd_api.random_api(7, 4, np.random.default_rng(1)))
    assert not np.array_equal(a, sd_api.random_api(1, 4, np.random.default_rng(0)))  # prompt
    images, labels = digits
    v = sd_api.variation_api(images[:4], labels[:4], 0.5, np.random.default_rng(0))
    assert v.shape == (4, 8, 8, 1) and v.dtype == np.uint8
    assert np.array_equal(v, sd_api.variation_api(images[:4], labels[:4], 0.5,
                                                  np.random.default_rng(0)))
    assert not np.array_equal(v, sd_api.variation_api(images[:4], labels[:4], 1.0,
                                                      np.random.default_rng(0)))


def test_stable_diffusion_parameters_are_checked(sd_api):
    sd_api.validate_degrees([1.0, 0.25])  # floor(4 × 0.25) = 1 step
    with pytest.raises(ConfigError, match="re-runs no step"):
        sd_api.validate_degrees([0.2])  # floor(0.8) = 0
    with pytest.raises(ConfigError, match="prompt"):
        StableDiffusionAPI(schema=GREY8, model=tiny_sd_model(), prompts={"0": "zero"},
                           device="cpu")
    with pytest.raises(ConfigError, match="label"):
        StableDiffusionAPI(schema=GREY8, model=tiny_sd_model(), prompt_template="a photo",
                           device="cpu")
    api = StableDiffusionAPI(schema=GREY8, model=tiny_sd_model(), device="cpu",
                             prompts=[f"digit {d}" for d in range(10)])
    assert api.prompts[3] == "digit 3"


def test_api_table_names():
    assert API_CLASSES == {"diffusion": DiffusionAPI, "stable-diffusion": StableDiffusionAPI}


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_fp16_path_is_deterministic(digits):
    images, labels = digits
    api = DiffusionAPI(schema=GREY8, model={"unet": tiny_unet(), "scheduler": {}},
                       num_inference_steps=10, device="cuda", fp16=True)
    assert api.unet.dtype == torch.float16
    a = api.variation_api(images, labels, 0.5, np.random.default_rng(0))
    assert np.array_equal(a, api.variation_api(images, labels, 0.5, np.random.default_rng(0)))
    assert api.random_api(1, 3, np.random.default_rng(0)).shape == (3, 8, 8, 1)


def test_paper_suite_api_params_build_and_its_degrees_validate():
    import tomllib

    from dparena.methods.pe.apis.improved_diffusion import adm_config, cosine_schedule

    suite = tomllib.loads((ROOT / "benchmarks/suites/"
                           "paper-pe-cifar10.toml").read_text())
    params = suite["section"][0]["methods"][0]["params"]
    assert params["api"] == "diffusion" and len(params["degrees"]) == params["iterations"] + 1
    api_params = dict(params["api_params"])
    assert "improved-diffusion-imagenet64" in api_params.pop("model")
    api_params["device"] = "cpu"
    # the suite's settings on a tiny stand-in for the converted ImageNet model (1,000 classes,
    # 4,000-step cosine schedule, learned variance, 4 attention heads)
    tiny = adm_config(image_size=16, model_channels=32, num_res_blocks=1, channel_mult=(1, 2),
                      attention_resolutions=(8,))
    api = DiffusionAPI(schema=ImageSchema(32, 32, 3, tuple("abcdefghij")),
                       model={"unet": tiny, "scheduler": cosine_schedule()}, **api_params)
    api.validate_degrees(params["degrees"][1:])
    api.scheduler.set_timesteps(100)
    assert api.scheduler.timesteps[0] == 3999 and api.scheduler.timesteps[-1] == 0  # linspace
    out = api.variation_api(np.zeros((2, 32, 32, 3), np.uint8), np.array([0, 9]), 0.6,
                            np.random.default_rng(0))
    assert out.shape == (2, 32, 32, 3)


# ----------------------------------------------------------------------------- improved-diffusion


def _random_adm():
    """A tiny random ADM UNet (OpenAI's guided-diffusion code, the improved-diffusion layout)."""
    unet_mod = pytest.importorskip("guided_diffusion.unet")
    torch.manual_seed(0)
    ref = unet_mod.UNetModel(image_size=16, in_channels=3, model_channels=32, out_channels=6,
                             num_res_blocks=2, attention_resolutions=(2, 4), channel_mult=(1, 2, 2),
                             num_classes=10, num_heads=4, use_scale_shift_norm=True).eval()
    with torch.no_grad():  # ADM zero-initialises output convs: randomise everything
        for name, p in ref.named_parameters():
            p.normal_(0, 1.0 if ".qkv." in name else 0.1)  # sharp attention: heads matter
    arch = dict(image_size=16, model_channels=32, num_res_blocks=2, channel_mult=[1, 2, 2],
                attention_resolutions=[8, 4], num_heads=4, num_classes=10)
    return ref, arch


def test_improved_diffusion_checkpoint_converts_exactly():
    from dparena.methods.pe.apis import improved_diffusion as adm

    ref, arch = _random_adm()
    unet = adm.convert(ref.state_dict(), **arch).eval()
    x = torch.randn(3, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    t, y = torch.tensor([5, 500, 999]), torch.tensor([1, 2, 9])
    with torch.no_grad():
        expect = ref(x, t, y=y)
        got = unet(x, t, class_labels=y).sample
        error = (got - expect).abs().max()
        assert error < 1e-5 * expect.abs().max()
        adm.set_heads(unet, 2)  # the head count matters: UNet2DModel's own would be wrong
        assert (unet(x, t, class_labels=y).sample - expect).abs().max() > 100 * error
    with pytest.raises(ConfigError, match="does not place"):
        adm.convert({**ref.state_dict(), "extra.weight": torch.zeros(1)}, **arch)


def test_converted_improved_diffusion_model_runs_in_the_api(tmp_path):
    from dparena.methods.pe.apis import improved_diffusion as adm

    ref, arch = _random_adm()
    ckpt = tmp_path / "model.pt"
    torch.save(ref.state_dict(), ckpt)
    import json

    assert adm.main([str(ckpt), str(tmp_path / "out"), json.dumps(arch)]) == 0
    api = DiffusionAPI(schema=GREY8, model=str(tmp_path / "out"), class_map="random",
                       num_inference_steps=8, device="cpu")
    assert api.learned_variance and api.scheduler.config.num_train_timesteps == 4000
    assert {m.heads for m in api.unet.modules() if hasattr(m, "to_q")} == {4}
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.allclose(api.unet(x, 7, class_labels=torch.tensor([0, 3])).sample,
                              ref(x, torch.tensor([7, 7]), y=torch.tensor([0, 3])),
                              rtol=1e-4, atol=1e-4)
    out = api.random_api(2, 3, np.random.default_rng(0))
    assert out.shape == (3, 8, 8, 1)
