"""Convert an OpenAI improved-diffusion / guided-diffusion ("ADM") UNet checkpoint to diffusers.

PE's CIFAR-10 experiments (Lin et al., ICLR 2024, Sec. 5.1) use improved-diffusion's
class-conditional ImageNet 64×64 model (Nichol & Dhariwal, ICML 2021:
``imagenet64_cond_270M_250K.pt``, 4,000-step cosine schedule, learned variance). Its UNet is, layer for layer, a diffusers
``UNet2DModel`` with scale-shift ResNet blocks, except that attention always uses ``num_heads``
heads whatever the width, while ``UNet2DModel`` derives the head count from one head dimension.
The converted directory therefore carries ``dparena.json`` (``{"attention_heads": 4}``), which
:class:`~dparena.methods.pe.apis.diffusion.DiffusionAPI` applies after loading.

Convert once (on any machine; CPU is enough)::

    python -m dparena.methods.pe.apis.improved_diffusion imagenet64_cond_270M_250K.pt OUT_DIR

then use ``model = "OUT_DIR"`` with ``class_map = "random"`` (ImageNet classes drawn at random, as
the paper) and ``scheduler_config = { timestep_spacing = "linspace" }`` (improved-diffusion's
respacing). The defaults of :func:`adm_config` are that checkpoint's architecture.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dparena.errors import ConfigError, require

#: the file beside a converted model that records what UNet2DModel's config cannot
EXTRA_FILE = "dparena.json"


def adm_config(image_size: int = 64, model_channels: int = 192, num_res_blocks: int = 3,
               channel_mult: Sequence[int] = (1, 2, 3, 4),
               attention_resolutions: Sequence[int] = (16, 8), num_heads: int = 4,
               learn_sigma: bool = True, num_classes: int | None = 1000,
               in_channels: int = 3) -> dict[str, Any]:
    """The ``UNet2DModel`` config of an ADM UNet (``attention_resolutions`` in pixels, as ADM's
    ``--attention_resolutions 16,8``), plus ``attention_heads``, which UNet2DModel ignores."""
    levels = len(channel_mult)
    attn = [image_size // 2**level in set(attention_resolutions) for level in range(levels)]
    channels = [model_channels * m for m in channel_mult]
    if any(c % 32 for c in channels) or any(c % num_heads for c in channels):
        raise ConfigError("ADM widths must be multiples of 32 (GroupNorm32) and of num_heads")
    return {
        "sample_size": image_size, "in_channels": in_channels,
        "out_channels": in_channels * (2 if learn_sigma else 1),
        "block_out_channels": channels, "layers_per_block": num_res_blocks,
        "down_block_types": ["AttnDownBlock2D" if a else "DownBlock2D" for a in attn],
        "up_block_types": ["AttnUpBlock2D" if a else "UpBlock2D" for a in reversed(attn)],
        "resnet_time_scale_shift": "scale_shift", "norm_num_groups": 32,
        "attn_norm_num_groups": 32, "norm_eps": 1e-5, "flip_sin_to_cos": True, "freq_shift": 0,
        "downsample_padding": 1, "mid_block_scale_factor": 1, "act_fn": "silu",
        # a placeholder that divides every width: the real head count is set by set_heads()
        "attention_head_dim": math.gcd(*channels),
        "num_class_embeds": num_classes, "attention_heads": num_heads,
    }


def set_heads(unet, heads: int) -> None:
    """Give every attention layer of ``unet`` ``heads`` heads (ADM's fixed head count)."""
    from diffusers.models.attention_processor import Attention

    for module in unet.modules():
        if isinstance(module, Attention):
            if module.inner_dim % heads:
                raise ConfigError(f"attention width {module.inner_dim} is not divisible by "
                                  f"{heads} heads")
            module.heads = heads
            module.scale = (module.inner_dim // heads) ** -0.5


def convert_state_dict(adm: dict[str, Any], config: dict[str, Any], heads: int) -> dict[str, Any]:
    """Rename (and, for attention, split) an ADM state dict into ``UNet2DModel``'s layout."""
    out: dict[str, Any] = {}
    used: set[str] = set()

    def take(src: str, dst: str) -> None:
        for suffix in ("weight", "bias"):
            key = f"{src}.{suffix}"
            if key in adm:
                value = adm[key]
                if value.ndim == 3 and value.shape[-1] == 1:  # a 1×1 conv1d as a Linear
                    value = value[..., 0]
                out[f"{dst}.{suffix}"] = value
                used.add(key)

    def resnet(src: str, dst: str) -> None:
        for a, b in (("in_layers.0", "norm1"), ("in_layers.2", "conv1"),
                     ("emb_layers.1", "time_emb_proj"), ("out_layers.0", "norm2"),
                     ("out_layers.3", "conv2"), ("skip_connection", "conv_shortcut")):
            take(f"{src}.{a}", f"{dst}.{b}")

    def attention(src: str, dst: str) -> None:
        take(f"{src}.norm", f"{dst}.group_norm")
        take(f"{src}.proj_out", f"{dst}.to_out.0")
        for suffix in ("weight", "bias"):
            key = f"{src}.qkv.{suffix}"
            qkv = adm[key]
            width = qkv.shape[0] // 3
            # legacy ADM order: per head, [q; k; v] blocks of width/heads channels each
            per_head = qkv.reshape(heads, 3, width // heads, *qkv.shape[1:])
            for i, name in enumerate(("to_q", "to_k", "to_v")):
                part = per_head[:, i].reshape(width, *qkv.shape[1:])
                out[f"{dst}.{name}.{suffix}"] = part[..., 0] if part.ndim == 3 else part
            used.add(key)

    take("time_embed.0", "time_embedding.linear_1")
    take("time_embed.2", "time_embedding.linear_2")
    if "label_emb.weight" in adm:
        out["class_embedding.weight"] = adm["label_emb.weight"]
        used.add("label_emb.weight")
    take("input_blocks.0.0", "conv_in")
    levels = len(config["block_out_channels"])
    per_level = config["layers_per_block"]
    idx = 0
    for level, kind in enumerate(config["down_block_types"]):
        for r in range(per_level):
            idx += 1
            resnet(f"input_blocks.{idx}.0", f"down_blocks.{level}.resnets.{r}")
            if kind.startswith("Attn"):
                attention(f"input_blocks.{idx}.1", f"down_blocks.{level}.attentions.{r}")
        if level < levels - 1:
            idx += 1
            take(f"input_blocks.{idx}.0.op", f"down_blocks.{level}.downsamplers.0.conv")
    resnet("middle_block.0", "mid_block.resnets.0")
    attention("middle_block.1", "mid_block.attentions.0")
    resnet("middle_block.2", "mid_block.resnets.1")
    idx = 0
    for up, kind in enumerate(config["up_block_types"]):
        for r in range(per_level + 1):
            resnet(f"output_blocks.{idx}.0", f"up_blocks.{up}.resnets.{r}")
            layer = 1
            if kind.startswith("Attn"):
                attention(f"output_blocks.{idx}.1", f"up_blocks.{up}.attentions.{r}")
                layer = 2
            if up < levels - 1 and r == per_level:
                take(f"output_blocks.{idx}.{layer}.conv", f"up_blocks.{up}.upsamplers.0.conv")
            idx += 1
    take("out.0", "conv_norm_out")
    take("out.2", "conv_out")
    left = sorted(set(adm) - used)
    if left:
        raise ConfigError(f"ADM checkpoint has {len(left)} weights the conversion does not place "
                          f"(first: {left[0]}); check the architecture arguments")
    return out


def build_unet(config: dict[str, Any]):
    """A ``UNet2DModel`` for an :func:`adm_config` (random init) with ADM's head count."""
    diffusers = require("diffusers", "image")
    heads = config.get("attention_heads")
    unet = diffusers.UNet2DModel.from_config(
        {k: v for k, v in config.items() if k != "attention_heads"})
    if heads:
        set_heads(unet, heads)
    return unet


def convert(adm_state: dict[str, Any], **arch) -> Any:
    """A ``UNet2DModel`` holding the weights of an ADM state dict (architecture as adm_config)."""
    config = adm_config(**arch)
    unet = build_unet(config)
    missing, unexpected = unet.load_state_dict(
        convert_state_dict(adm_state, config, config["attention_heads"]), strict=False)
    if missing or unexpected:
        raise ConfigError(f"conversion mismatch: missing {missing[:3]}, unexpected "
                          f"{unexpected[:3]}")
    return unet


def cosine_schedule(steps: int = 4000) -> dict[str, Any]:
    """improved-diffusion's ``--noise_schedule cosine --diffusion_steps 4000`` as a scheduler
    config (diffusers' ``squaredcos_cap_v2`` is the same ᾱ(t) = cos²((t/T + s)/(1 + s)·π/2),
    s = 0.008, betas capped at 0.999), with its respacing (``linspace``) and clipping of x₀."""
    return {"num_train_timesteps": steps, "beta_schedule": "squaredcos_cap_v2",
            "timestep_spacing": "linspace", "clip_sample": True, "prediction_type": "epsilon"}


def save(unet, out_dir: str | Path, heads: int, schedule: dict[str, Any]) -> Path:
    """Write a converted model directory the ``diffusion`` API loads (weights, schedule, heads)."""
    diffusers = require("diffusers", "image")
    out = Path(out_dir)
    unet.save_pretrained(out)
    diffusers.DDIMScheduler.from_config(schedule).save_pretrained(out)
    (out / EXTRA_FILE).write_text(json.dumps({"attention_heads": heads}) + "\n")
    return out


def main(argv: list[str] | None = None) -> int:
    """Usage: python -m dparena.methods.pe.apis.improved_diffusion CHECKPOINT OUT_DIR [ARCH_JSON]

    ARCH_JSON: adm_config arguments, e.g. '{"image_size": 32, "channel_mult": [1, 2, 2, 2]}';
    default: the 270M class-conditional ImageNet-64 model of the PE paper."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) not in (2, 3):
        print(main.__doc__, file=sys.stderr)
        return 2
    torch = require("torch", "image")
    arch = json.loads(argv[2]) if len(argv) == 3 else {}
    state = torch.load(argv[0], map_location="cpu", weights_only=True)
    unet = convert(state, **arch)
    save(unet, argv[1], heads=adm_config(**arch)["attention_heads"], schedule=cosine_schedule())
    print(f"wrote {argv[1]} ({sum(p.numel() for p in unet.parameters()) / 1e6:.1f}M parameters)")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
