"""DrawText: the Sim-PE simulator API that renders a class's character with PIL.

Lin et al., "Differentially Private Synthetic Data via APIs 3: Using Simulators Instead of
Foundation Models" (Sim-PE, 2025), Sec. 4 / App. (the text-rendering simulator for MNIST): random
font, font size, stroke width and rotation; variation perturbs those parameters with magnitudes
set by the iteration's degree. Here the glyph's position is also a parameter (a random shift of the
ink box's centre). Fonts are the DejaVu family shipped in matplotlib's ``mpl-data/fonts/ttf``.

Every sample keeps its simulator parameters (:class:`DrawnImages`), so a variation re-renders from
perturbed parameters instead of editing pixels. Renders are white on black, grey (copied to every
channel for colour schemas), at the schema's H × W.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dparena.errors import ConfigError, require
from dparena.methods.pe.api import API

PARAM_DTYPE = np.dtype([("char", np.int32), ("font", np.int16), ("size", np.int16),
                        ("stroke", np.int16), ("rotation", np.float32), ("dx", np.float32),
                        ("dy", np.float32)])


def dejavu_fonts() -> tuple[str, ...]:
    """Paths of matplotlib's DejaVu TrueType fonts (the *Display subsets lack most glyphs)."""
    import matplotlib

    root = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    fonts = sorted(str(p) for p in root.glob("DejaVu*.ttf") if "Display" not in p.name)
    if not fonts:
        raise ConfigError(f"no DejaVu fonts under {root}; reinstall matplotlib")
    return tuple(fonts)


@functools.lru_cache(maxsize=512)
def _font(path: str, size: int):
    from PIL import ImageFont

    return ImageFont.truetype(path, size)


@dataclass
class DrawnImages:
    """Rendered images ``uint8 [n, H, W, C]`` with the parameters that produced each one."""

    images: np.ndarray
    params: np.ndarray  # structured, PARAM_DTYPE

    def __len__(self) -> int:
        return len(self.images)

    def take(self, idx: np.ndarray) -> DrawnImages:
        return DrawnImages(self.images[idx], self.params[idx])

    @classmethod
    def concat(cls, parts: Sequence[DrawnImages]) -> DrawnImages:
        return cls(np.concatenate([p.images for p in parts]),
                   np.concatenate([p.params for p in parts]))

    def payload(self) -> np.ndarray:
        return self.images

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Plain arrays for a checkpoint (no pickle; see :mod:`dparena.methods.pe.checkpoint`)."""
        return {"images": self.images, "params": self.params}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> DrawnImages:
        images, params = arrays["images"], arrays["params"]
        if images.dtype != np.uint8 or params.dtype != PARAM_DTYPE or len(images) != len(params):
            raise ValueError("not DrawText images and parameters")
        return cls(images, params)


class DrawText(API):
    """Renders the first character of each class's public label name (digits for MNIST).

    With ``texts`` (a string), ``random_api`` draws each sample's character uniformly from it for
    every class instead; variations keep a sample's character.

    Parameter ranges scale with the image height H (DPSDA's 28-pixel defaults: font sizes 10-29,
    strokes 0-2, rotations ±30°). A variation of degree d ∈ [0, 1] changes the font with
    probability d, and moves size, stroke, rotation and shift by uniform steps of at most d times
    ``size_step``, ``stroke_step``, ``rotation_step`` and ``shift_step`` (clipped to the ranges).
    """

    name = "drawtext"

    def __init__(self, schema: Any = None, texts: str | None = None,
                 fonts: Sequence[str] | None = None,
                 size_range: Sequence[int] | None = None, max_stroke: int | None = None,
                 max_rotation: float = 30.0, max_shift: float = 0.15,
                 size_step: int | None = None, stroke_step: int = 2,
                 rotation_step: float = 30.0, shift_step: float = 0.15):
        require("PIL", "image")
        if schema is None:
            raise ConfigError("drawtext needs the dataset's image schema (height, width, labels)")
        self.height, self.width, self.channels = (int(schema.height), int(schema.width),
                                                  int(schema.channels))
        self.chars = tuple(str(name)[:1] or "?" for name in schema.label_names)
        if texts is not None and (not isinstance(texts, str) or not texts):
            raise ConfigError("drawtext texts must be a non-empty string of characters")
        self.texts = texts
        self.fonts = tuple(fonts) if fonts else dejavu_fonts()
        h = self.height
        lo, hi = size_range if size_range is not None else (round(10 * h / 28), round(29 * h / 28))
        if not 1 <= lo <= hi:
            raise ConfigError(f"drawtext size_range must be 1 <= low <= high, got {(lo, hi)}")
        self.size_range = (int(lo), int(hi))
        self.max_stroke = int(max_stroke if max_stroke is not None else round(2 * h / 28))
        self.max_rotation = float(max_rotation)
        self.max_shift = float(max_shift)
        self.size_step = int(size_step if size_step is not None else round(10 * h / 28))
        self.stroke_step = int(stroke_step)
        self.rotation_step = float(rotation_step)
        self.shift_step = float(shift_step)
        if min(self.max_stroke, self.max_rotation, self.max_shift, self.size_step,
               self.stroke_step, self.rotation_step, self.shift_step) < 0:
            raise ConfigError("drawtext ranges and steps must be >= 0")

    # -- the API --------------------------------------------------------------------------------

    def random_api(self, label: int, n: int, rng: np.random.Generator) -> DrawnImages:
        """``n`` renders of the class's character with uniformly drawn parameters."""
        p = np.empty(n, dtype=PARAM_DTYPE)
        if self.texts is None:
            p["char"] = ord(self.chars[label])
        else:
            p["char"] = np.frombuffer(self.texts.encode("utf-32-le"), dtype=np.int32)[
                rng.integers(0, len(self.texts), n)]
        p["font"] = rng.integers(0, len(self.fonts), n)
        p["size"] = rng.integers(self.size_range[0], self.size_range[1] + 1, n)
        p["stroke"] = rng.integers(0, self.max_stroke + 1, n)
        p["rotation"] = rng.uniform(-self.max_rotation, self.max_rotation, n)
        shift = self.max_shift * np.array([self.width, self.height], dtype=np.float64)
        p["dx"] = rng.uniform(-shift[0], shift[0], n)
        p["dy"] = rng.uniform(-shift[1], shift[1], n)
        return DrawnImages(self.render(p), p)

    def variation_api(self, samples: DrawnImages, labels: np.ndarray, degree: float,
                      rng: np.random.Generator) -> DrawnImages:
        """Re-render each sample with its parameters perturbed by at most ``degree`` × the steps."""
        n = len(samples)
        d = float(degree)
        p = samples.params.copy()
        change = rng.random(n) < d
        p["font"] = np.where(change, rng.integers(0, len(self.fonts), n), p["font"])
        size_jump = np.rint(rng.uniform(-1, 1, n) * d * self.size_step)
        p["size"] = np.clip(p["size"] + size_jump, *self.size_range)
        stroke_jump = rng.integers(-self.stroke_step, self.stroke_step + 1, n) * (d > 0)
        stroke_jump = np.rint(stroke_jump * min(1.0, d))
        p["stroke"] = np.clip(p["stroke"] + stroke_jump, 0, self.max_stroke)
        p["rotation"] = np.clip(p["rotation"] + rng.uniform(-1, 1, n) * d * self.rotation_step,
                                -self.max_rotation, self.max_rotation)
        for key, extent in (("dx", self.width), ("dy", self.height)):
            lim = self.max_shift * extent
            p[key] = np.clip(p[key] + rng.uniform(-1, 1, n) * d * self.shift_step * extent,
                             -lim, lim)
        return DrawnImages(self.render(p), p)

    def validate_degrees(self, degrees: Sequence[float]) -> None:
        bad = [d for d in degrees if not 0.0 <= float(d) <= 1.0]
        if bad:
            raise ConfigError(f"drawtext degrees must lie in [0, 1] (the fraction of each "
                              f"parameter's step); got {bad[:3]}")

    # -- rendering ------------------------------------------------------------------------------

    def render(self, params: np.ndarray) -> np.ndarray:
        """``uint8 [n, H, W, C]`` renders of the parameter rows."""
        from PIL import Image, ImageDraw

        out = np.zeros((len(params), self.height, self.width, self.channels), dtype=np.uint8)
        for i, row in enumerate(params):
            canvas = Image.new("L", (self.width, self.height), 0)
            draw = ImageDraw.Draw(canvas)
            font = _font(self.fonts[int(row["font"])], int(row["size"]))
            text, stroke = chr(int(row["char"])), int(row["stroke"])
            x0, y0, x1, y1 = draw.textbbox((0, 0), text, font=font, stroke_width=stroke)
            x = (self.width - (x0 + x1)) / 2.0 + float(row["dx"])
            y = (self.height - (y0 + y1)) / 2.0 + float(row["dy"])
            draw.text((x, y), text, font=font, fill=255, stroke_width=stroke, stroke_fill=255)
            angle = float(row["rotation"])
            if angle and math.isfinite(angle):
                canvas = canvas.rotate(angle, resample=Image.BILINEAR)
            out[i] = np.asarray(canvas, dtype=np.uint8)[..., None]
        return out
