"""Inception-v3 pool features for FID, KID and precision/recall, with clean-fid's "clean" resizing.

The network is the TF Inception 2015-12-05 graph as TorchScript (asset ``inception-fid``), the one
clean-fid and StyleGAN2-ADA use: input float ``(x - 128) / 128`` at 299×299, output the 2048-d pool
features. Preprocessing follows clean-fid (Parmar, Zhang & Zhu, "On Aliased Resizing and
Surprising Subtleties in GAN Evaluation", CVPR 2022): each channel is resized as a float32 PIL
image with bicubic filtering to 299×299 and clipped to [0, 255], with no quantisation after
resizing (``make_resizer("PIL", False, "bicubic", (299, 299))``). Grey images become three equal
channels, as PIL's ``convert("RGB")`` does. The model is loaded once per process.

The forward pass runs a CPU-tuned copy of that network (:func:`fast_inception`): the same
operations on the same weights as plain torch modules, with batch norm folded into the
convolutions and float32 weights and activations in channels-last (NHWC) layout throughout; its
features equal the published module's to about 1e-6 relative (the agreement with clean-fid's
pipeline is tested at 1e-5).
Resizing a batch runs in a second thread while the network embeds the previous batch.

Features of an array can be cached on disk (:func:`cached_features`), keyed by a hash of the
array's bytes and shape and of the network's checksum, so FID, KID and precision/recall of one run
share one forward pass.
"""

from __future__ import annotations

import hashlib
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from dparena.assets import AssetStore
from dparena.errors import SchemaError, require
from dparena.io import cached_arrays

SIZE = 299
DIM = 2048
ASSET = "inception-fid"

# which forward pass computed a feature: part of every cache key, so features of the published
# TorchScript module (dparena <= 0.2) and of the eager channels-last copy never mix in one FID
PIPELINE = "eager-cl1"
BATCH = 32  # images per forward pass (2 CPU cores: faster than 8 or 16, ~0.4 GB; docs/performance.md)

_MODELS: dict[str, object] = {}  # asset path -> loaded TorchScript module (one per process)
_FAST: dict[str, object] = {}  # asset path -> its eager CPU copy (one per process)
_COUNT = {"images": 0}  # images run through the network in this process (cache observability)


def images_embedded() -> int:
    """How many images this process has run through the Inception network so far."""
    return _COUNT["images"]


def load_inception(store: AssetStore | None = None):
    """The TorchScript Inception network as published (CPU, eval mode), loaded once per process."""
    torch = require("torch", "image")
    path = str((store or AssetStore()).path(ASSET))
    if path not in _MODELS:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load deprecation notice
            _MODELS[path] = torch.jit.load(path, map_location="cpu").eval()
    return _MODELS[path]


def fast_inception(store: AssetStore | None = None):
    """:func:`load_inception`'s network as an eager module tuned for float32 channels-last CPU
    inference (:func:`eager_copy`, built once per process); the published module, with a warning,
    if its structure is not the one expected."""
    torch = require("torch", "image")
    path = str((store or AssetStore()).path(ASSET))
    if path not in _FAST:
        published = _MODELS.get(path)
        if published is None:  # not kept: the copy holds its own weights
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)
                published = torch.jit.load(path, map_location="cpu").eval()
        try:
            _FAST[path] = eager_copy(published)
        except (AttributeError, KeyError, TypeError) as exc:
            warnings.warn(f"inception: running the published TorchScript module ({exc})",
                          RuntimeWarning, stacklevel=2)
            _FAST[path] = _MODELS.setdefault(path, published)
    return _FAST[path]


def eager_copy(module):
    """The TorchScript network rebuilt as plain torch modules on the same weights, for speed.

    Same operations in the same order, with three changes that move rounding only (about 1e-6
    relative in the features): batch norm (no scale, ``eps = 1e-3``) is folded into the preceding
    convolution's weights and a bias (in float64, then float32); weights are stored channels-last,
    so oneDNN convolutions take NHWC activations without reordering them; and the published
    module's ``contiguous()`` before each block's concatenation is gone, so activations stay
    NHWC through the network instead of being reordered to NCHW 11 times per pass.
    """
    torch = require("torch", "image")
    from torch import nn

    class Conv(nn.Module):  # conv -> batch norm -> relu of the published Conv2dLayer, folded
        def __init__(self, layer):
            super().__init__()
            w, mean, var, beta = (t.detach().double() for t in
                                  (layer.weight, layer.mean, layer.var, layer.beta))
            scale = 1.0 / torch.sqrt(var + 1e-3)
            self.weight = nn.Parameter((w * scale[:, None, None, None]).float().contiguous(
                memory_format=torch.channels_last), requires_grad=False)
            self.bias = nn.Parameter((beta - mean * scale).float(), requires_grad=False)
            self.stride, self.padding = int(layer.stride), _pair(layer.padding)

        def forward(self, x):
            y = torch.conv2d(x, self.weight, self.bias, self.stride, self.padding)
            return torch.relu_(y)

    class Concat(nn.Module):  # Mixed blocks A-D: branches on the same input, concatenated
        def __init__(self, branches):
            super().__init__()
            self.branches = nn.ModuleList(branches)

        def forward(self, x):
            return torch.cat([b(x) for b in self.branches], 1)

    class BlockE(nn.Module):  # Mixed_7b/c: two towers that split into 1x3 and 3x1 convolutions
        names = {"conv", "tower_conv", "tower_mixed_conv", "tower_mixed_conv_1", "tower_1_conv",
                 "tower_1_conv_1", "tower_1_mixed_conv", "tower_1_mixed_conv_1", "tower_2_pool",
                 "tower_2_conv"}

        def __init__(self, block):
            super().__init__()
            children = dict(block.named_children())
            if set(children) != self.names:
                raise KeyError(f"InceptionE with parts {sorted(children)}")
            self.parts = nn.ModuleDict({name: convert(c) for name, c in children.items()})

        def forward(self, x):
            p = self.parts
            a = p["tower_conv"](x)
            b = p["tower_1_conv_1"](p["tower_1_conv"](x))
            return torch.cat([p["conv"](x), p["tower_mixed_conv"](a), p["tower_mixed_conv_1"](a),
                              p["tower_1_mixed_conv"](b), p["tower_1_mixed_conv_1"](b),
                              p["tower_2_conv"](p["tower_2_pool"](x))], 1)

    class Features(nn.Module):  # InceptionV3 -> [B, 2048]
        def __init__(self, layers):
            super().__init__()
            self.layers = layers

        def forward(self, x):
            return self.layers(x).reshape(-1, DIM)

    branches = {"InceptionA": ("conv", "tower", "tower_1", "tower_2"),
                "InceptionB": ("conv", "tower", "pool"),
                "InceptionC": ("conv", "tower", "tower_1", "tower_2"),
                "InceptionD": ("tower", "tower_1", "pool")}

    def convert(m):
        kind = m.original_name
        if kind == "Conv2dLayer":
            return Conv(m)
        if kind == "MaxPool2d":
            return nn.MaxPool2d(m.kernel_size, m.stride, m.padding, m.dilation,
                                ceil_mode=m.ceil_mode)
        if kind == "AvgPool2d":
            return nn.AvgPool2d(m.kernel_size, m.stride, m.padding, ceil_mode=m.ceil_mode,
                                count_include_pad=m.count_include_pad,
                                divisor_override=m.divisor_override)
        if kind == "Sequential":
            return nn.Sequential(*[convert(c) for _, c in m.named_children()])
        if kind in branches:
            children = dict(m.named_children())
            if set(children) != set(branches[kind]):
                raise KeyError(f"{kind} with branches {sorted(children)}")
            return Concat([convert(children[name]) for name in branches[kind]])
        if kind == "InceptionE":
            return BlockE(m)
        raise TypeError(f"unexpected {kind} module")

    return Features(convert(module.net.layers)).eval()


def _pair(value) -> tuple[int, int]:
    if isinstance(value, int):
        return value, value
    first, second = value
    return int(first), int(second)


def check_images(images: np.ndarray, what: str = "images") -> np.ndarray:
    """A uint8 [N, H, W, C] array with C = 1 or 3 (a [N, H, W] grey array gains C = 1)."""
    arr = np.asarray(images)
    if arr.ndim == 3:
        arr = arr[..., None]
    if arr.ndim != 4 or arr.shape[-1] not in (1, 3) or arr.dtype != np.uint8:
        raise SchemaError(f"{what}: expected uint8 images [N, H, W, C] with C = 1 or 3, got "
                          f"{arr.dtype} {list(arr.shape)}; convert with "
                          f"(x * 255).round().astype('uint8')")
    return arr


def bicubic_channel(channel: np.ndarray, size: int) -> np.ndarray:
    """One image channel resized to ``size``² by PIL's bicubic filter in float ("F" mode), clipped
    to [0, 255] (clean-fid's "clean" resize of one channel)."""
    from PIL import Image

    pil = Image.fromarray(channel.astype(np.float32), mode="F")
    return np.asarray(pil.resize((size, size), resample=Image.BICUBIC)).clip(0, 255)


def resize_nhwc(images: np.ndarray) -> np.ndarray:
    """clean-fid's "clean" resize of uint8 [N, H, W, C] to float32 [N, 299, 299, 3] in [0, 255]
    (channels last, the layout :func:`fast_inception` runs in)."""
    arr = check_images(images)
    out = np.empty((len(arr), SIZE, SIZE, 3), dtype=np.float32)
    for i, img in enumerate(arr):
        for c in range(arr.shape[-1]):
            out[i, :, :, c] = bicubic_channel(img[:, :, c], SIZE)
    if arr.shape[-1] == 1:  # grey -> RGB repeats the channel; resizing commutes with that
        out[..., 1] = out[..., 0]
        out[..., 2] = out[..., 0]
    return out


def clean_resize(images: np.ndarray) -> np.ndarray:
    """clean-fid's "clean" resize of uint8 [N, H, W, C] to float32 [N, 3, 299, 299] in [0, 255]."""
    return np.ascontiguousarray(resize_nhwc(images).transpose(0, 3, 1, 2))


def forward(model, resized: np.ndarray, channels_last: bool = False) -> np.ndarray:
    """Pool features of already-resized float images in [0, 255]: [B, 3, 299, 299], or
    [B, 299, 299, 3] with ``channels_last``. Either is fed to the network in channels-last
    layout."""
    torch = require("torch", "image")
    x = torch.from_numpy(resized)
    x = x.permute(0, 3, 1, 2) if channels_last else x.contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        return model((x - 128.0) / 128.0).reshape(len(resized), DIM).numpy().astype(np.float32)


def inception_features(images: np.ndarray, batch_size: int = BATCH,
                       store: AssetStore | None = None) -> np.ndarray:
    """Inception-v3 pool features (float32 [N, 2048]) of uint8 images [N, H, W, C], C = 1 or 3.

    Batches of ``batch_size`` images go through :func:`fast_inception`; the next batch is resized
    in a second thread meanwhile (PIL releases the GIL while it resamples).
    """
    arr = check_images(images)
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    model = fast_inception(store)
    feats = np.empty((len(arr), DIM), dtype=np.float32)
    starts = list(range(0, len(arr), batch_size))
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="inception-resize") as pool:
        def resize(k):  # batch k, resized in the pool (one batch ahead: bounded memory)
            return pool.submit(resize_nhwc, arr[starts[k]:starts[k] + batch_size])

        ahead = resize(0) if starts else None
        for k, start in enumerate(starts):
            resized = ahead.result()
            if k + 1 < len(starts):
                ahead = resize(k + 1)
            feats[start:start + len(resized)] = forward(model, resized, channels_last=True)
            _COUNT["images"] += len(resized)
    return feats


def array_key(images: np.ndarray) -> str:
    """A content hash of an image array (dtype, shape and bytes)."""
    arr = np.ascontiguousarray(images)
    digest = hashlib.sha256(f"{arr.dtype}{arr.shape}".encode())
    digest.update(memoryview(arr).cast("B"))
    return digest.hexdigest()[:24]


def cached_features(images: np.ndarray, cache_dir: Path | None, prefix: str = "features",
                    store: AssetStore | None = None, batch_size: int = BATCH) -> np.ndarray:
    """:func:`inception_features`, cached as ``<cache_dir>/inception/<prefix>-<key>.npy``.

    The key hashes the array and holds the network's sha256 and :data:`PIPELINE`, so a changed
    array, network or forward pass never hits a stale entry. Without a ``cache_dir`` the features are computed every time.
    """
    arr = check_images(images)
    if cache_dir is None:
        return inception_features(arr, batch_size, store)
    sha = (store or AssetStore()).asset(ASSET).sha256[:12]
    path = Path(cache_dir) / "inception" / f"{prefix}-{array_key(arr)}-{sha}-{PIPELINE}.npy"
    return cached_arrays(path, lambda: inception_features(arr, batch_size, store),
                         check=lambda feats: feats.shape == (len(arr), DIM))
