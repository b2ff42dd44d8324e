"""Inception-v3 pool features for FID, KID and precision/recall, with clean-fid's "clean" resizing.

The network is the TF Inception 2015-12-05 graph as TorchScript (asset ``inception-fid``), the one
clean-fid and StyleGAN2-ADA use: input float ``(x - 128) / 128`` at 299×299, output the 2048-d pool
features. Preprocessing follows clean-fid (Parmar, Zhang & Zhu, "On Aliased Resizing and
Surprising Subtleties in GAN Evaluation", CVPR 2022): each channel is resized as a float32 PIL
image with bicubic filtering to 299×299 and clipped to [0, 255], with no quantisation after
resizing (``make_resizer("PIL", False, "bicubic", (299, 299))``). Grey images become three equal
channels, as PIL's ``convert("RGB")`` does. The model is loaded once per process.

Features of an array can be cached on disk (:func:`cached_features`), keyed by a hash of the
array's bytes and shape and of the network's checksum, so FID, KID and precision/recall of one run
share one forward pass.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import numpy as np

from dparena.assets import AssetStore
from dparena.errors import SchemaError, require

SIZE = 299
DIM = 2048
ASSET = "inception-fid"

_MODELS: dict[str, object] = {}  # asset path -> loaded TorchScript module (one per process)
_COUNT = {"images": 0}  # images run through the network in this process (cache observability)


def images_embedded() -> int:
    """How many images this process has run through the Inception network so far."""
    return _COUNT["images"]


def load_inception(store: AssetStore | None = None):
    """The TorchScript Inception network (CPU, eval mode), loaded once per process."""
    torch = require("torch", "image")
    path = str((store or AssetStore()).path(ASSET))
    if path not in _MODELS:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load deprecation notice
            _MODELS[path] = torch.jit.load(path, map_location="cpu").eval()
    return _MODELS[path]


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


def clean_resize(images: np.ndarray) -> np.ndarray:
    """clean-fid's "clean" resize of uint8 [N, H, W, C] to float32 [N, 3, 299, 299] in [0, 255]."""
    arr = check_images(images)
    out = np.empty((len(arr), 3, SIZE, SIZE), dtype=np.float32)
    for i, img in enumerate(arr):
        for c in range(arr.shape[-1]):
            out[i, c] = bicubic_channel(img[:, :, c], SIZE)
        if arr.shape[-1] == 1:  # grey -> RGB repeats the channel; resizing commutes with that
            out[i, 1] = out[i, 0]
            out[i, 2] = out[i, 0]
    return out


def forward(model, resized: np.ndarray) -> np.ndarray:
    """Pool features of already-resized float images [B, 3, 299, 299] in [0, 255]."""
    torch = require("torch", "image")
    with torch.no_grad():
        x = (torch.from_numpy(resized) - 128.0) / 128.0
        return model(x).reshape(len(resized), DIM).numpy().astype(np.float32)


def inception_features(images: np.ndarray, batch_size: int = 8,
                       store: AssetStore | None = None) -> np.ndarray:
    """Inception-v3 pool features (float32 [N, 2048]) of uint8 images [N, H, W, C], C = 1 or 3."""
    arr = check_images(images)
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    model = load_inception(store)
    feats = np.empty((len(arr), DIM), dtype=np.float32)
    for start in range(0, len(arr), batch_size):
        chunk = arr[start:start + batch_size]
        feats[start:start + len(chunk)] = forward(model, clean_resize(chunk))
        _COUNT["images"] += len(chunk)
    return feats


def array_key(images: np.ndarray) -> str:
    """A content hash of an image array (dtype, shape and bytes)."""
    arr = np.ascontiguousarray(images)
    digest = hashlib.sha256(f"{arr.dtype}{arr.shape}".encode())
    digest.update(memoryview(arr).cast("B"))
    return digest.hexdigest()[:24]


def cached_features(images: np.ndarray, cache_dir: Path | None, prefix: str = "features",
                    store: AssetStore | None = None, batch_size: int = 8) -> np.ndarray:
    """:func:`inception_features`, cached as ``<cache_dir>/inception/<prefix>-<key>.npy``.

    The key hashes the array and the network's sha256, so a changed array or network never hits
    a stale entry. Without a ``cache_dir`` the features are computed every time.
    """
    arr = check_images(images)
    if cache_dir is None:
        return inception_features(arr, batch_size, store)
    sha = (store or AssetStore()).asset(ASSET).sha256[:12]
    path = Path(cache_dir) / "inception" / f"{prefix}-{array_key(arr)}-{sha}.npy"
    if path.exists():
        try:
            feats = np.load(path)
            if feats.shape == (len(arr), DIM):
                return feats
        except (OSError, ValueError):
            pass  # a torn file: compute again
    feats = inception_features(arr, batch_size, store)
    save_atomic(path, feats)
    return feats


def save_atomic(path: Path, array: np.ndarray | None = None, **arrays: np.ndarray) -> None:
    """Write an .npy (one array) or .npz (keyword arrays) so readers never see a partial file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".part-", suffix=path.suffix)
    os.close(fd)
    try:
        if array is not None:
            np.save(tmp, array)
        else:
            np.savez(tmp, **arrays)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
