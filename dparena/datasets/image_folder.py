"""Your own images (``dataset = "image-folder"``): one sub-folder per class, torchvision's
ImageFolder layout, for the private and the eval split::

    private/                    eval/
      cat/  001.png 002.jpg ...   cat/  ...
      dog/  ...                   dog/  ...

The public schema is declared in the suite: ``height``, ``width``, ``channels`` (1 grey or 3 RGB)
and ``classes`` (the class names, in label order; the folder names must be exactly these), with
optional ``class_proportions`` (a public prior) and ``size`` (N, the number of private images).
Every image is converted to grey ("L") or RGB (an alpha channel is dropped) and resized to
height x width with PIL's bicubic filter (antialiased when shrinking; the aspect ratio is not
kept), giving the ``uint8`` arrays ``[N, height, width, channels]`` in 0..255 that every image
method and metric takes (the layout of the MNIST bundle). Files are read in class order, then by
path; names starting with a dot are skipped.

Each of these is a one-line error naming the folder or file: a folder that is not a declared class,
a declared class without a folder or with no image, a file outside the class folders, a file that
is not an image (by extension or content).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dparena.datasets.files import (
    UserFiles,
    optional_size,
    path_param,
    require_folder,
    revision_param,
    text_list,
)
from dparena.datasets.images import ImageDataset
from dparena.datasets.schema import ImageSchema
from dparena.errors import ConfigError, SchemaError, require

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm",
                  ".pgm", ".pbm")


class ImageFolder(UserFiles, ImageDataset):
    """Labelled images from class sub-folders (``private`` and ``eval`` folders); the shape and
    class names are declared in the suite."""

    description = ("Your images: one sub-folder per class (ImageFolder layout) for private / eval; "
                   "declared size, channels and classes")
    extra = "image"
    split_kind = "folder"

    def __init__(self, private: str, eval: str, height: int, width: int, channels: int,
                 classes: list[str], size: int | None = None,
                 class_proportions: list[float] | None = None, n_private: int | None = None,
                 n_eval: int | None = None, subsample_seed: int = 0,
                 revision: str | int = ""):
        super().__init__(n_private=n_private, n_eval=n_eval, subsample_seed=subsample_seed)
        self.revision = revision_param(revision, self.name)
        self.private_path = path_param(private, "private", self.name)
        self.eval_path = path_param(eval, "eval", self.name)
        names = text_list(classes, "classes", self.name)
        bad = [c for c in names if c != c.strip() or "/" in c or "\\" in c or c in (".", "..")
               or c.startswith(".")]
        if bad:
            raise ConfigError(f"{self.name}: class names {bad} cannot be folder names (no "
                              f"slashes, surrounding spaces or leading dots)")
        try:
            self._schema = ImageSchema(height, width, channels, names,
                                       tuple(class_proportions) if class_proportions else None)
        except ValueError as exc:
            raise ConfigError(f"{self.name}: {exc} (height {height}, width {width}, channels "
                              f"{channels})") from None
        self.size = optional_size(size, self.name)
        if self.size is not None:
            self.N_PRIVATE = self.size

    def read_split(self, root: Path, role: str) -> tuple[np.ndarray, np.ndarray]:
        """(uint8 images [N, H, W, C], int64 labels) of one split folder."""
        image_mod = require("PIL.Image", "image")
        require_folder(root, role, self.name)
        classes = self._schema.label_names
        for entry in sorted(root.iterdir()):
            if entry.name.startswith("."):
                continue
            if entry.is_dir() and entry.name not in classes:
                raise SchemaError(f"{entry}: unknown class folder {entry.name!r}; the declared "
                                  f"classes are {list(classes)}: rename the folder, remove it or "
                                  f"declare the class")
            if not entry.is_dir():
                raise SchemaError(f"{entry}: a file outside the class folders; images go in "
                                  f"{root}/<class>/ (one sub-folder per class)")
        files: list[tuple[Path, int]] = []
        for label, name in enumerate(classes):
            folder = root / name
            if not folder.is_dir():
                raise SchemaError(f"{root}: no folder for class {name!r}; every declared class "
                                  f"needs {folder}/ with at least one image")
            found = sorted(p for p in folder.rglob("*") if p.is_file()
                           and not any(part.startswith(".") for part in
                                       p.relative_to(folder).parts))
            if not found:
                raise SchemaError(f"{folder}: the class folder is empty; put at least one image in "
                                  f"it or remove {name!r} from classes")
            files += [(p, label) for p in found]
        images = np.empty((len(files), *self._schema.shape), dtype=np.uint8)
        for i, (path, _) in enumerate(files):
            images[i] = self._read_image(image_mod, path)
        return images, np.asarray([label for _, label in files], dtype=np.int64)

    def _read_image(self, image_mod, path: Path) -> np.ndarray:
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            raise SchemaError(f"{path}: not an image file (expected one of "
                              f"{', '.join(IMAGE_SUFFIXES)}); remove it from the class folder")
        s = self._schema
        try:
            with image_mod.open(path) as im:
                im = im.convert("L" if s.channels == 1 else "RGB")
                if im.size != (s.width, s.height):
                    im = im.resize((s.width, s.height), image_mod.Resampling.BICUBIC)
                arr = np.asarray(im, dtype=np.uint8)
        except (OSError, ValueError, SyntaxError, image_mod.DecompressionBombError) as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise SchemaError(f"{path}: cannot be read as an image ({reason}); replace or remove "
                              f"it") from None
        return arr.reshape(s.shape)
