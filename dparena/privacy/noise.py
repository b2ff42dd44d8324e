"""Where the noise of a DP mechanism comes from: the run's seed, or the operating system.

Two sources with one interface, ``normal(loc, scale, size)``:

* :class:`SeededNoise` (the default, for benchmarking): draws from the run's ``numpy`` generator,
  which is seeded by the run's public seed. Re-running a suite gives the same numbers — and anyone
  who knows the seed can regenerate the noise, so the output is **not** private against them.
  That is fine for comparing methods on public benchmark data, never for releasing data.
* :class:`SecureNoise` (``secure_noise = true`` in a suite, ``dparena run --secure-noise``): every
  sample is computed from fresh bytes of ``os.urandom``; nothing about it can be reproduced. Use it
  whenever the synthetic output is released. Gaussian samples are made from two 53-bit uniforms
  with the Box–Muller transform and summed in pairs (Opacus' defence against floating-point
  attacks, Holohan et al. 2021: the sum of two N(0, σ²/2) is N(0, σ²)).

Methods draw every DP noise sample from ``task.noise`` (never from ``task.rng``); DP-SGD in
secure mode replaces Opacus' noise function with :func:`secure_torch_normal` and draws Poisson
sampling decisions from a torch generator seeded from OS entropy.
"""

from __future__ import annotations

import math
import os
import secrets
from typing import Any

import numpy as np

_TWO53 = float(2**53)


def _uniforms(n: int) -> np.ndarray:
    """``n`` floats uniform in (0, 1), 53 random bits each, from os.urandom."""
    raw = np.frombuffer(os.urandom(8 * n), dtype=np.uint64) >> np.uint64(11)
    return (raw.astype(np.float64) + 0.5) / _TWO53


def os_standard_normal(n: int) -> np.ndarray:
    """``n`` independent N(0, 1) samples from OS entropy (Box–Muller, two halves summed)."""
    if n <= 0:
        return np.zeros(0)
    m = 2 * n  # two N(0, 1/2) per output
    half = (m + 1) // 2
    u1, u2 = _uniforms(half), _uniforms(half)
    radius = np.sqrt(-2.0 * np.log(u1))
    z = np.concatenate([radius * np.cos(2 * math.pi * u2), radius * np.sin(2 * math.pi * u2)])[:m]
    return (z[:n] + z[n:]) / math.sqrt(2.0)


class SeededNoise:
    """DP noise from the run's seeded generator (reproducible; not secret from who knows the seed)."""

    secure = False

    def __init__(self, rng: np.random.Generator):
        self.rng = rng

    def normal(self, loc: float, scale: float, size: Any = None) -> Any:
        return self.rng.normal(loc, scale, size)

    def torch_generator(self, seed: int):
        """A torch generator for Poisson sampling and DP-SGD noise, seeded by ``seed``."""
        import torch

        return torch.Generator().manual_seed(int(seed))


class SecureNoise:
    """DP noise from OS entropy: never reproducible, never derivable from the run's seed."""

    secure = True

    def normal(self, loc: float, scale: float, size: Any = None) -> Any:
        shape = () if size is None else (tuple(size) if isinstance(size, tuple | list) else (int(size),))
        n = int(np.prod(shape)) if shape else 1
        out = loc + scale * os_standard_normal(n).reshape(shape)
        return float(out) if size is None else out

    def torch_generator(self, seed: int):  # noqa: ARG002 - the seed is deliberately ignored
        """A torch generator seeded from 64 bits of OS entropy (Poisson sampling decisions)."""
        import torch

        return torch.Generator().manual_seed(secrets.randbits(63))


def secure_torch_normal(std: float, reference, generator=None, secure_mode: bool = False):  # noqa: ARG001
    """Drop-in for Opacus' ``_generate_noise``: N(0, std²) shaped like ``reference``, from OS
    entropy (the generator argument is ignored)."""
    import torch

    n = int(reference.numel())
    values = os_standard_normal(n).reshape(tuple(reference.shape)) * float(std)
    return torch.from_numpy(values).to(dtype=reference.dtype, device=reference.device)


def make_noise(secure: bool, rng: np.random.Generator) -> SeededNoise | SecureNoise:
    return SecureNoise() if secure else SeededNoise(rng)
