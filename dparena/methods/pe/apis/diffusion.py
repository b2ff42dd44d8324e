"""Diffusion-model APIs for Private Evolution: `diffusion` (DDPM/DDIM UNets), `stable-diffusion`.

PE (Lin et al., "Differentially Private Synthetic Data via Foundation Model APIs 1: Images",
ICLR 2024, Sec. 4 and App. D) uses a pre-trained diffusion model as a black box: ``random_api`` is
full reverse sampling from pure noise, ``variation_api`` is SDEdit (Meng et al., ICLR 2022):
noise the given image forward to an intermediate step and run the reverse process from there.

Constructor contract (how the ``pe-image`` method builds these; every argument is JSON-able so it
can come from a suite's ``api_params``; ``schema`` is the dataset's public
:class:`~dparena.datasets.schema.ImageSchema`, given by the method)::

    DiffusionAPI(schema=schema, model="google/ddpm-cifar10-32", scheduler="ddim",
                 num_inference_steps=100, batch_size=256, device="auto", fp16=False,
                 class_map=None, eta=0.0, scheduler_config=None, unet_subfolder=None,
                 local_files_only=None, init_seed=0)
    StableDiffusionAPI(schema=schema, model="CompVis/stable-diffusion-v1-4",
                       prompt_template="a photo of a {label}", prompts=None, guidance_scale=7.5,
                       num_inference_steps=50, width=None, height=None, batch_size=10,
                       device="auto", fp16=False, local_files_only=None, init_seed=0)

``model`` is a Hugging Face hub id, a local directory (``~`` expanded) in diffusers format, or a
dict of configs that builds a random-initialised model in memory (for tests; seeded by
``init_seed``). Offline, a hub id that is not in the local Hugging Face cache fails with one
:class:`~dparena.errors.AssetError` line naming the id and how to give a local directory.
``local_files_only`` None means :func:`dparena.io.offline` (``DPARENA_OFFLINE`` or ``HF_HUB_OFFLINE``).
OpenAI improved-/guided-diffusion checkpoints (the PE paper's ImageNet model) are converted to
such a directory by :mod:`dparena.methods.pe.apis.improved_diffusion`. ``class_map`` (class-conditional
UNets only): ``"identity"`` (default), ``"random"`` or one list of model class ids per label.
The ``pe-image`` method registers these classes under ``API_CLASSES``' names (``diffusion``,
``stable-diffusion``) and calls ``validate_degrees(degrees[1:])`` before the run.

Degree: for both APIs ``degree`` is the SDEdit strength ``s`` in (0, 1], the fraction of the
sampling schedule that is re-run. With ``num_inference_steps = K`` the image is noised to the
timestep at which the last ``k`` steps start and those ``k`` steps are run, ``k = ⌊s·K + ½⌋``
for ``diffusion`` and ``k = floor(s * K)`` for ``stable-diffusion`` (the diffusers img2img rule);
``validate_degrees`` rejects any degree with ``k = 0``. Larger degree = more noise = further from
the input. The paper's CIFAR-10 schedule (100 DDIM steps, 2..40 steps skipped, DPSDA
``variation_degrees=range(0, 42, 2)``) is ``degrees[1:] = [0.98, 0.96, ..., 0.60]`` here.

Pixels: ``uint8 [n, H, W, C]`` from/to the schema; the model sees ``[-1, 1]`` floats at its own
resolution (bilinear, antialiased resizing when the sizes differ) and channel count (grey is
repeated to RGB; RGB becomes grey by ITU-R BT.601 luma). Every random number (initial noise, SDEdit
noise, DDPM/DDIM-η noise, the model class drawn per sample) comes from the ``rng`` passed in: one
seed is drawn from it per call and seeds a ``torch.Generator`` on the model's device, so the same
rng state, batch size and device give the same images.
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dparena.errors import AssetError, ConfigError, require
from dparena.io import offline
from dparena.methods.pe.api import API
from dparena.methods.pe.apis.improved_diffusion import EXTRA_FILE, set_heads

#: a JSON-able model description: hub id, local directory, or in-memory configs (tests)
ModelSpec = str | dict[str, Any]

_LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601


# ----------------------------------------------------------------------------- shared helpers


def _torch():
    return require("torch", "image")


def _diffusers():
    return require("diffusers", "image")


def _resolve_device(device: str) -> str:
    torch = _torch()
    if not isinstance(device, str) or not device:
        raise ConfigError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N' (got {device!r})")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} asked for but CUDA is not available; "
                          f"use device='auto'")
    return device


def _offline(local_files_only: bool | None) -> bool:
    if local_files_only is not None:
        return bool(local_files_only)
    return offline()


def _local_dir(model: str, what: str = "") -> Path | None:
    """The local model directory ``model`` names, or None for a hub id."""
    path = Path(model).expanduser()
    if path.is_dir():
        return path
    if what and model.startswith(("/", ".", "~")):  # a path, never a hub id: no network attempt
        raise AssetError(f"{what}: model directory {model} does not exist; give an existing "
                         f"directory in diffusers format or a hub id")
    return None


def _load_error(what: str, model: str, exc: BaseException, needs: str) -> AssetError:
    reason = f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:120]}"
    if _local_dir(model) is not None:
        return AssetError(f"{what}: could not load the model in {model} ({reason}); the directory "
                          f"must hold {needs} in diffusers format")
    return AssetError(
        f"{what}: could not load model {model!r}: it is not a local directory and neither the "
        f"Hugging Face cache nor the hub provided it ({reason}); where there is a network run "
        f"`hf download {model} --local-dir DIR`, copy DIR here and set model = '/path/to/dir' "
        f"(it must hold {needs})")


def _generator(rng: np.random.Generator, device: str):
    """A ``torch.Generator`` on ``device`` seeded by one draw from the numpy ``rng``."""
    torch = _torch()
    seed = int(rng.integers(0, 2**63 - 1))
    return torch.Generator(device=device).manual_seed(seed)


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name} must be a positive integer (got {value!r})")
    return value


def to_model_space(images: np.ndarray, channels: int, size: tuple[int, int], device: str,
                   dtype=None):
    """``uint8 [n, H, W, C]`` → float ``[n, channels, h, w]`` in [-1, 1] at the model's size."""
    torch = _torch()
    x = torch.from_numpy(np.ascontiguousarray(images)).to(device)
    x = x.permute(0, 3, 1, 2).float().div(127.5).sub(1.0)
    x = _convert_channels(x, channels)
    if tuple(x.shape[-2:]) != tuple(size):
        x = torch.nn.functional.interpolate(x, size=tuple(size), mode="bilinear",
                                            align_corners=False, antialias=True).clamp(-1, 1)
    return x if dtype is None else x.to(dtype)


def to_uint8(x, shape: tuple[int, int, int]) -> np.ndarray:
    """Float ``[n, c, h, w]`` in [-1, 1] → ``uint8 [n, H, W, C]`` of the schema's ``shape``."""
    torch = _torch()
    height, width, channels = shape
    x = x.float()
    if tuple(x.shape[-2:]) != (height, width):
        x = torch.nn.functional.interpolate(x, size=(height, width), mode="bilinear",
                                            align_corners=False, antialias=True)
    x = _convert_channels(x, channels)
    x = ((x.clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).contiguous().cpu().numpy()


def _convert_channels(x, channels: int):
    have = x.shape[1]
    if have == channels:
        return x
    if have == 1 and channels == 3:
        return x.expand(-1, 3, -1, -1)
    if have == 3 and channels == 1:
        w = x.new_tensor(_LUMA).view(1, 3, 1, 1)
        return (x * w).sum(dim=1, keepdim=True)
    raise ConfigError(f"cannot convert {have}-channel images to {channels} channels")


def _check_degrees(api: str, degrees: Sequence[float], steps: int, rule) -> None:
    if isinstance(degrees, str | bytes) or not isinstance(degrees, Sequence):
        raise ConfigError(f"{api}: degrees must be a list of numbers in (0, 1]")
    for d in degrees:
        if isinstance(d, bool) or not isinstance(d, numbers.Real) or not 0 < d <= 1:
            raise ConfigError(f"{api}: every degree is an SDEdit strength in (0, 1] (the fraction "
                              f"of the {steps}-step schedule re-run); got {d!r}")
        if rule(d * steps) < 1:
            raise ConfigError(f"{api}: degree {d} re-runs no step of the {steps}-step schedule; "
                              f"use a degree >= {1 / steps:.4g} or more num_inference_steps")


def _round_half_up(x: float) -> int:
    return math.floor(x + 0.5)


def _check_request(api: str, label: int, n: int, num_classes: int) -> None:
    if not 0 <= int(label) < num_classes:
        raise ConfigError(f"{api}: label must be in 0..{num_classes - 1} (got {label!r})")
    if isinstance(n, bool) or int(n) != n or n < 0:
        raise ConfigError(f"{api}: n must be a non-negative integer (got {n!r})")


# ----------------------------------------------------------------------------- diffusion


class DiffusionAPI(API):
    """PE's diffusion API over any diffusers ``UNet2DModel`` with a DDPM or DDIM scheduler.

    random = full reverse sampling from N(0, I) (Ho et al. 2020 Alg. 2; Song et al. 2021 Eq. 12
    for DDIM); variation = SDEdit (Meng et al. 2022): ``x_t = sqrt(ᾱ_t) x_0 + sqrt(1 - ᾱ_t) ε``
    (``scheduler.add_noise``) at the first of the last ``k = ⌊degree·K + ½⌋`` timesteps, then
    those ``k`` reverse steps. Unconditional or class-conditional (``num_class_embeds``):
    ``class_map`` says which model class each public label uses — ``"identity"`` (the model's
    classes are the dataset's), ``"random"`` (any model class, drawn afresh per sample on every
    call; PE's paper uses random ImageNet classes but keeps each sample's class across its
    variations, which a stateless API cannot), or a list with one list of model class ids per
    label (one drawn per sample). Models with a learned variance (``out_channels = 2 × in``, as
    improved-diffusion) use the first half of the output as ε. See the module docstring for the
    constructor contract.
    """

    name = "diffusion"

    def __init__(self, schema, *, model: ModelSpec = "google/ddpm-cifar10-32",
                 scheduler: str = "ddim", num_inference_steps: int = 100, batch_size: int = 256,
                 device: str = "auto", fp16: bool = False, class_map: str | list | None = None,
                 eta: float = 0.0, scheduler_config: dict[str, Any] | None = None,
                 unet_subfolder: str | None = None, local_files_only: bool | None = None,
                 init_seed: int = 0):
        torch = _torch()
        diffusers = _diffusers()
        if scheduler not in ("ddim", "ddpm"):
            raise ConfigError(f"diffusion: scheduler must be 'ddim' or 'ddpm' (got {scheduler!r})")
        if not isinstance(eta, int | float) or eta < 0:
            raise ConfigError(f"diffusion: eta must be a number >= 0 (got {eta!r})")
        if eta and scheduler != "ddim":
            raise ConfigError("diffusion: eta applies to the ddim scheduler only")
        self.schema = schema
        self.batch_size = _positive_int("diffusion: batch_size", batch_size)
        self.num_inference_steps = _positive_int("diffusion: num_inference_steps",
                                                 num_inference_steps)
        self.device = _resolve_device(device)
        self.dtype = torch.float16 if (fp16 and self.device.startswith("cuda")) else torch.float32
        self.eta = float(eta)
        self.scheduler_name = scheduler

        self.unet, base_config = self._load(diffusers, torch, model, unet_subfolder,
                                            _offline(local_files_only), init_seed)
        self.unet.eval().requires_grad_(False).to(self.device)
        if self.dtype != torch.float32:
            self.unet.to(self.dtype)
        if scheduler_config is not None and not isinstance(scheduler_config, dict):
            raise ConfigError("diffusion: scheduler_config must be a table of scheduler settings")
        if base_config is None and scheduler_config is None:
            raise ConfigError(f"diffusion: no scheduler_config.json found beside model {model!r}; "
                              f"give its noise schedule as scheduler_config = {{...}}")
        cls = diffusers.DDIMScheduler if scheduler == "ddim" else diffusers.DDPMScheduler
        config = {k: v for k, v in (base_config or {}).items() if not k.startswith("_")}
        config.update(scheduler_config or {})
        try:
            self.scheduler = cls.from_config(config)
        except (TypeError, ValueError, NotImplementedError) as exc:
            raise ConfigError(f"diffusion: bad scheduler_config ({exc})") from None
        total = self.scheduler.config.num_train_timesteps
        if self.num_inference_steps > total:
            raise ConfigError(f"diffusion: num_inference_steps {num_inference_steps} exceeds the "
                              f"model's {total} training timesteps")

        cfg = self.unet.config
        self.model_channels = int(cfg.in_channels)
        size = cfg.sample_size
        self.model_size = (size, size) if isinstance(size, int) else tuple(size)
        self.learned_variance = int(cfg.out_channels) == 2 * self.model_channels
        self.class_choices = self._class_choices(class_map)

    # -- loading

    def _load(self, diffusers, torch, model, subfolder, offline, init_seed):
        """The UNet and the scheduler config found beside it (None for in-memory models)."""
        if isinstance(model, dict):
            unknown = set(model) - {"unet", "scheduler"}
            if unknown or "unet" not in model:
                raise ConfigError("diffusion: an in-memory model is a table "
                                  "{unet = {...UNet2DModel config}, scheduler = {...}}")
            config = dict(model["unet"])
            heads = config.pop("attention_heads", None)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(init_seed)
                try:
                    unet = diffusers.UNet2DModel.from_config(config)
                except (TypeError, ValueError) as exc:
                    raise ConfigError(f"diffusion: bad UNet2DModel config ({exc})") from None
            if heads:
                set_heads(unet, int(heads))
            return unet, dict(model.get("scheduler") or {})
        if not isinstance(model, str) or not model:
            raise ConfigError("diffusion: model must be a hub id, a local directory or a table")
        local = _local_dir(model, "diffusion")
        if subfolder is None and local is not None and not (local / "config.json").exists() \
                and (local / "unet" / "config.json").exists():
            subfolder = "unet"  # a saved pipeline: unet/ and scheduler/ subfolders
        needs = "config.json and diffusion_pytorch_model.safetensors (+ scheduler_config.json)"
        source = str(local) if local is not None else model
        try:
            unet = diffusers.UNet2DModel.from_pretrained(source, subfolder=subfolder,
                                                         local_files_only=offline)
        except (OSError, ValueError) as exc:
            raise _load_error("diffusion", model, exc, needs) from None
        extra = local / EXTRA_FILE if local is not None else None
        if extra is not None and extra.exists():  # e.g. a converted improved-diffusion model
            set_heads(unet, int(json.loads(extra.read_text())["attention_heads"]))
        try:
            config = diffusers.DDPMScheduler.load_config(
                source, subfolder="scheduler" if subfolder else None, local_files_only=offline)
        except (OSError, ValueError):
            config = None  # a bare UNet: the schedule must then be given
        return unet, config

    def _class_choices(self, class_map):
        """Per public label, the model class ids to draw from (None: unconditional model)."""
        cfg = self.unet.config
        n_model = cfg.num_class_embeds
        labels = self.schema.num_classes
        if n_model is None:
            if cfg.class_embed_type is not None:
                raise ConfigError(f"diffusion: class embedding {cfg.class_embed_type!r} is not "
                                  "supported; use a model with num_class_embeds")
            if class_map is not None:
                raise ConfigError("diffusion: class_map given but the model is unconditional "
                                  "(no num_class_embeds)")
            return None
        if class_map is None:
            class_map = "identity"
        if class_map == "identity":
            if n_model != labels:
                raise ConfigError(
                    f"diffusion: the model has {n_model} classes and the dataset {labels}; set "
                    f"class_map = 'random' or a list of model class ids for each label")
            return [np.array([i]) for i in range(labels)]
        if class_map == "random":
            return [np.arange(n_model)] * labels
        if isinstance(class_map, list) and len(class_map) == labels and all(
                isinstance(c, list) and c and all(isinstance(i, int) and 0 <= i < n_model
                                                  for i in c) for c in class_map):
            return [np.array(c) for c in class_map]
        raise ConfigError(f"diffusion: class_map must be 'identity', 'random' or {labels} "
                          f"non-empty lists of model class ids in 0..{n_model - 1}")

    # -- the API

    def validate_degrees(self, degrees: Sequence[float]) -> None:
        _check_degrees("diffusion", degrees, self.num_inference_steps, _round_half_up)

    def random_api(self, label: int, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` images of class ``label`` sampled from pure noise through the full schedule."""
        _check_request("diffusion", label, n, self.schema.num_classes)
        classes = self._model_classes(np.full(n, label, dtype=np.int64), rng)
        return self._run(None, classes, n, self.num_inference_steps, rng)

    def variation_api(self, samples: np.ndarray, labels: np.ndarray, degree: float,
                      rng: np.random.Generator) -> np.ndarray:
        """SDEdit of every sample with strength ``degree`` (see the module docstring)."""
        self.validate_degrees([degree])
        samples, labels = self.schema.conform(samples, labels, what="diffusion variation input")
        classes = self._model_classes(labels, rng)
        steps = _round_half_up(degree * self.num_inference_steps)
        return self._run(samples, classes, len(samples), steps, rng)

    def _model_classes(self, labels: np.ndarray, rng: np.random.Generator):
        if self.class_choices is None:
            return None
        if len(labels) and (labels.min() < 0 or labels.max() >= len(self.class_choices)):
            raise ConfigError(f"diffusion: labels must be in 0..{len(self.class_choices) - 1}")
        out = np.empty(len(labels), dtype=np.int64)
        for label in np.unique(labels):
            where = np.flatnonzero(labels == label)
            out[where] = rng.choice(self.class_choices[label], size=len(where))
        return out

    def _run(self, images, classes, n: int, steps: int, rng: np.random.Generator) -> np.ndarray:
        """Denoise ``n`` images over the last ``steps`` timesteps (from pure noise if no images)."""
        torch = _torch()
        gen = _generator(rng, self.device)
        shape = (self.model_channels, *self.model_size)
        self.scheduler.set_timesteps(self.num_inference_steps, device=self.device)
        timesteps = self.scheduler.timesteps[len(self.scheduler.timesteps) - steps:]
        out = []
        with torch.inference_mode():
            for start in range(0, n, self.batch_size):
                stop = min(start + self.batch_size, n)
                noise = torch.randn((stop - start, *shape), generator=gen, device=self.device)
                if images is None:
                    x = noise * self.scheduler.init_noise_sigma
                else:
                    x0 = to_model_space(images[start:stop], self.model_channels, self.model_size,
                                        self.device)
                    x = self.scheduler.add_noise(x0, noise, timesteps[:1].repeat(stop - start))
                cls = (None if classes is None else
                       torch.from_numpy(classes[start:stop]).to(self.device))
                x = self._denoise(x, cls, timesteps, gen)
                out.append(to_uint8(x, self.schema.shape))
        if not out:
            return np.zeros((0, *self.schema.shape), dtype=np.uint8)
        return np.concatenate(out)

    def _denoise(self, x, classes, timesteps, gen):
        step_kwargs = {"eta": self.eta} if self.scheduler_name == "ddim" else {}
        variance = str(getattr(self.scheduler.config, "variance_type", ""))
        keep_variance = variance.startswith("learned")
        for t in timesteps:
            inp = self.scheduler.scale_model_input(x, t).to(self.dtype)
            out = self.unet(inp, t, class_labels=classes).sample.float()
            if self.learned_variance and not keep_variance:
                out = out[:, : self.model_channels]  # ε (or v); the variance half is unused
            x = self.scheduler.step(out, t, x, generator=gen, **step_kwargs).prev_sample
        return x


# ----------------------------------------------------------------------------- stable diffusion


class StableDiffusionAPI(API):
    """PE's Stable Diffusion API: text-to-image for random, img2img (SDEdit in latent space) for
    variation with ``strength = degree`` (Lin et al. 2024, App. D; Rombach et al., CVPR 2022).

    The prompt of a class comes from its public label name: ``prompts`` (a list with one prompt per
    label, or a table label name → prompt) when given, else ``prompt_template.format(label=name)``.
    Images are generated at ``width × height`` (default: the model's native size) and resized to
    the schema. ``model`` may be a dict of tiny configs ``{unet, vae, text_encoder, tokenizer,
    scheduler}`` (tokenizer = ``{vocab: [tokens...], model_max_length}``) for offline tests.
    """

    name = "stable-diffusion"

    def __init__(self, schema, *, model: ModelSpec = "CompVis/stable-diffusion-v1-4",
                 prompt_template: str = "a photo of a {label}",
                 prompts: list[str] | dict[str, str] | None = None, guidance_scale: float = 7.5,
                 num_inference_steps: int = 50, width: int | None = None,
                 height: int | None = None, batch_size: int = 10, device: str = "auto",
                 fp16: bool = False, local_files_only: bool | None = None, init_seed: int = 0):
        torch = _torch()
        diffusers = _diffusers()
        self.schema = schema
        self.prompts = self._prompts(prompt_template, prompts)
        self.guidance_scale = float(guidance_scale)
        self.num_inference_steps = _positive_int("stable-diffusion: num_inference_steps",
                                                 num_inference_steps)
        self.batch_size = _positive_int("stable-diffusion: batch_size", batch_size)
        self.device = _resolve_device(device)
        dtype = torch.float16 if (fp16 and self.device.startswith("cuda")) else torch.float32
        pipe = self._load(diffusers, torch, model, _offline(local_files_only), init_seed, dtype)
        pipe = pipe.to(self.device)
        pipe.set_progress_bar_config(disable=True)
        self.text2img = pipe
        self.img2img = diffusers.StableDiffusionImg2ImgPipeline(**pipe.components)
        self.img2img.set_progress_bar_config(disable=True)
        native = pipe.unet.config.sample_size * pipe.vae_scale_factor
        self.width = _positive_int("stable-diffusion: width", width or native)
        self.height = _positive_int("stable-diffusion: height", height or native)
        multiple = pipe.vae_scale_factor
        if self.width % multiple or self.height % multiple:
            raise ConfigError(f"stable-diffusion: width and height must be multiples of {multiple}")

    def _prompts(self, template: str, prompts) -> list[str]:
        names = self.schema.label_names
        if prompts is None:
            if not isinstance(template, str) or "{label}" not in template:
                raise ConfigError("stable-diffusion: prompt_template must contain '{label}'")
            return [template.format(label=name) for name in names]
        if isinstance(prompts, dict):
            missing = [n for n in names if n not in prompts]
            if missing or set(prompts) - set(names):
                raise ConfigError(f"stable-diffusion: prompts must give one prompt for each label "
                                  f"{list(names)} (missing {missing})")
            return [str(prompts[n]) for n in names]
        if isinstance(prompts, list) and len(prompts) == len(names):
            return [str(p) for p in prompts]
        raise ConfigError(f"stable-diffusion: prompts must be a list of {len(names)} prompts or a "
                          "table label name -> prompt")

    def _load(self, diffusers, torch, model, offline, init_seed, dtype):
        if isinstance(model, dict):
            return _tiny_stable_diffusion(model, init_seed)
        if not isinstance(model, str) or not model:
            raise ConfigError("stable-diffusion: model must be a hub id, a local directory or a "
                              "table of component configs")
        local = _local_dir(model, "stable-diffusion")
        try:
            return diffusers.StableDiffusionPipeline.from_pretrained(
                str(local) if local is not None else model, dtype=dtype,
                safety_checker=None, requires_safety_checker=False, local_files_only=offline)
        except (OSError, ValueError) as exc:
            raise _load_error("stable-diffusion", model, exc,
                              "a saved StableDiffusionPipeline (model_index.json + components)"
                              ) from None

    def validate_degrees(self, degrees: Sequence[float]) -> None:
        _check_degrees("stable-diffusion", degrees, self.num_inference_steps, math.floor)

    def random_api(self, label: int, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` text-to-image samples for the prompt of ``label``."""
        _check_request("stable-diffusion", label, n, self.schema.num_classes)
        gen = _generator(rng, self.device)
        out = []
        for start in range(0, n, self.batch_size):
            b = min(self.batch_size, n - start)
            images = self.text2img(prompt=[self.prompts[label]] * b, height=self.height,
                                   width=self.width, num_inference_steps=self.num_inference_steps,
                                   guidance_scale=self.guidance_scale, generator=gen,
                                   output_type="pt").images
            out.append(to_uint8(images * 2.0 - 1.0, self.schema.shape))
        return np.concatenate(out) if out else np.zeros((0, *self.schema.shape), np.uint8)

    def variation_api(self, samples: np.ndarray, labels: np.ndarray, degree: float,
                      rng: np.random.Generator) -> np.ndarray:
        """img2img of every sample, with its label's prompt and ``strength = degree``."""
        self.validate_degrees([degree])
        samples, labels = self.schema.conform(samples, labels,
                                              what="stable-diffusion variation input")
        gen = _generator(rng, self.device)
        out = []
        for start in range(0, len(samples), self.batch_size):
            stop = min(start + self.batch_size, len(samples))
            x = to_model_space(samples[start:stop], 3, (self.height, self.width), self.device)
            images = self.img2img(prompt=[self.prompts[i] for i in labels[start:stop]],
                                  image=(x + 1.0) / 2.0, strength=float(degree),
                                  num_inference_steps=self.num_inference_steps,
                                  guidance_scale=self.guidance_scale, generator=gen,
                                  output_type="pt").images
            out.append(to_uint8(images * 2.0 - 1.0, self.schema.shape))
        return np.concatenate(out) if out else np.zeros((0, *self.schema.shape), np.uint8)


def _tiny_stable_diffusion(model: dict[str, Any], init_seed: int):
    """A random-initialised Stable Diffusion pipeline from small configs (tests, offline)."""
    torch = _torch()
    diffusers = _diffusers()
    transformers = require("transformers", "image")
    need = {"unet", "vae", "text_encoder", "tokenizer", "scheduler"}
    if set(model) != need:
        raise ConfigError(f"stable-diffusion: an in-memory model needs exactly the tables "
                          f"{sorted(need)}")
    tok = dict(model["tokenizer"])
    vocab = tok.pop("vocab")
    vocab = vocab if isinstance(vocab, dict) else {t: i for i, t in enumerate(vocab)}
    tokenizer = transformers.CLIPTokenizer(vocab=vocab, merges=tok.pop("merges", []), **tok)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(init_seed)
        text_encoder = transformers.CLIPTextModel(
            transformers.CLIPTextConfig(**model["text_encoder"]))
        unet = diffusers.UNet2DConditionModel.from_config(model["unet"])
        vae = diffusers.AutoencoderKL.from_config(model["vae"])
    scheduler = diffusers.DDIMScheduler.from_config(model["scheduler"])
    return diffusers.StableDiffusionPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
        safety_checker=None, feature_extractor=None, requires_safety_checker=False)


#: the APIs of this module by suite name, for the pe-image method's API table
API_CLASSES = {DiffusionAPI.name: DiffusionAPI, StableDiffusionAPI.name: StableDiffusionAPI}
