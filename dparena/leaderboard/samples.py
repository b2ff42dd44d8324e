"""Samples beside the numbers: what each leaderboard row's method produced, so a reader can look
before trusting a number.

For every (dataset, row label, ε) of a store, the current ok run with the lowest seed gives some
of its records, always the same ones so that re-publishing writes the same files:

* images: one PNG grid, a row per class (labelled with the class name), up to
  :data:`PER_CLASS` images each, in the order the method returned them;
* texts: :data:`N_TEXTS`, each cut to :data:`TEXT_CHARS` characters;
* tables: :data:`N_ROWS` rows.

Texts and rows are spread evenly over the output (:func:`spread`: the first, the last and
evenly spaced ones between), not its first records: a generator that writes its records grouped
(OpenDP's MST and AIM emit theirs clique by clique) would otherwise show five near-copies.

The privacy rule: a DP method's output is a DP release and is shown. A non-private reference
(``is_dp`` False: ``real``, ``uniform``, ``public-only``) may hold records of the private split,
so its samples are shown only when the dataset's records are published anyway
(``Dataset.public_data``: Adult, MNIST, Rotten Tomatoes, ...), labelled as such; for any other
dataset (the user's own files, a dataset this process does not know) they are withheld, with a
line saying why. Failed and over-budget (invalid) runs contribute nothing.

:func:`write_samples` writes the grids under ``<leaderboard folder>/samples/`` and returns
:class:`Sample` records; the renderers (``render.py``) show them.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dparena.io import read_parquet, write_atomic
from dparena.leaderboard.aggregate import Table, dataset_key, latest_runs

if TYPE_CHECKING:
    from dparena.harness.store import StoredRun

FOLDER = "samples"  # beside leaderboard.md
PER_CLASS = 10  # images per class in a grid
MAX_CLASSES = 20  # grid rows; further classes are left out (said in the note)
N_TEXTS = 5
TEXT_CHARS = 300
N_ROWS = 5
MIN_CELL = 28  # smaller images are scaled up by a whole factor to at least this many pixels
MAX_CELL = 64  # larger images are scaled down to fit
PAD = 2  # pixels between grid cells and around the grid
LABEL_W = 80  # pixels of the class-name column at the left of a grid

REAL_NOTE = "real records from the private split, shown because {dataset} is a public dataset"
REFERENCE_NOTE = ("a non-private reference (not DP), shown because {dataset} is a public dataset "
                  "(its output may hold records of the private split)")
WITHHELD = ("withheld: {label} is a non-private reference whose output may hold records of the "
            "private split, and {dataset} is not a public dataset")
AUDIT_NOTE = ("the privacy audit rejects or could not check this method's ε, so its output is "
              "treated as a non-private reference's: shown because {dataset} is a public dataset")
AUDIT_WITHHELD = ("withheld: the privacy audit rejects or could not check {label}'s ε, so its "
                  "output may hold records of the private split, and {dataset} is not a public "
                  "dataset")

LEGEND = (
    f"What each row's method produced: its run with the lowest seed (images: its first {PER_CLASS} "
    f"per class, a row per class; texts: up to {N_TEXTS}, cut to {TEXT_CHARS} characters, and "
    f"tables: up to {N_ROWS} rows, spread evenly from its first record to its last). A DP "
    f"method's output is a DP release. A non-private reference's samples are shown only when the "
    f"dataset's records are themselves public, labelled so; for other datasets they are withheld. "
    f"Failed and INVALID runs show nothing."
)


@dataclass(frozen=True)
class Sample:
    """What one (dataset, label, ε) shows: a grid, texts or rows of one run, or why nothing.

    ``epsilon`` None: a non-private reference (shown in every ε table of its dataset).
    """

    dataset: str  # the table's dataset (``aggregate.dataset_key``)
    label: str
    epsilon: float | None
    seed: int | None = None
    run_key: str = ""
    grid: str = ""  # the PNG grid, relative to the leaderboard folder ("samples/....png")
    texts: tuple[tuple[str, str], ...] = ()  # (class name, text)
    columns: tuple[str, ...] = ()
    rows: tuple[tuple[str, ...], ...] = ()
    note: str = ""  # what the reader must know (real records; classes left out)
    why_none: str = ""  # why nothing is shown (withheld, no artifact); then no grid, texts, rows

    @property
    def caption(self) -> str:
        return self.label if self.seed is None else f"{self.label} (seed {self.seed})"


def samples_of(table: Table, samples: list[Sample]) -> list[Sample]:
    """The samples a table shows: its ok rows' (a DP row's at the table's ε, a reference's),
    in the table's row order."""
    by_slot = {(s.dataset, s.label, s.epsilon): s for s in samples}
    out = []
    for row in table.rows:
        if row.status != "ok":
            continue
        eps = None if row.kind == "reference" else table.epsilon
        found = by_slot.get((table.dataset, row.label, eps))
        if found is not None:
            out.append(found)
    return out


def page_name(table: Table) -> str:
    """The Markdown page of a table's samples, relative to the leaderboard folder."""
    return f"{FOLDER}/{_name(table.dataset, _eps_text(table.epsilon))}.md"


def first_seed_runs(runs: list[StoredRun]) -> list[StoredRun]:
    """The current ok run with the lowest seed of each (dataset, label, ε), in a fixed order."""
    chosen: dict[tuple, StoredRun] = {}
    for run in latest_runs(runs):
        if run.status != "ok":
            continue
        slot = (dataset_key(run), run.label, run.epsilon)
        best = chosen.get(slot)
        if best is None or _seed_order(run) < _seed_order(best):
            chosen[slot] = run
    return [chosen[s] for s in sorted(chosen, key=lambda s: (s[0], s[1], s[2] is None,
                                                             s[2] or 0.0))]


def is_public(run: StoredRun) -> bool:
    """Whether a run's dataset records are themselves published: its class declares
    ``public_data`` and the run's dataset parameters keep the published records
    (:meth:`~dparena.datasets.base.Dataset.records_public`); False for a dataset this process does
    not know."""
    from dparena.datasets import datasets

    try:
        return bool(datasets.get(run.dataset).records_public(run.dataset_params or {}))
    except Exception:  # noqa: BLE001 - unknown (a plugin not loaded) or unloadable: not public
        return False


def is_dp_run(run: StoredRun) -> bool:
    """A DP run: the store says so, it has an ε, and its method (if registered here) declares
    ``is_dp``. Any doubt makes it a non-private reference for the privacy rule."""
    if not run.is_dp or run.epsilon is None:
        return False
    from dparena.methods import methods

    try:
        return methods.info(run.method, ("is_dp",))["is_dp"] == "True"
    except Exception:  # noqa: BLE001 - not registered here: the stored fact decides
        return True


def write_samples(runs: list[StoredRun], folder: Path, artifacts: Path | None = None,
                  tables: list[Table] | None = None) -> list[Sample]:
    """Samples of the rows the leaderboard ``tables`` (built from ``runs`` when not given) show
    as ok, each from its :func:`first_seed_runs` run, grids written atomically under
    ``folder/samples/`` (nothing is written for an INVALID or failed row); ``artifacts`` is the
    store's artifact folder (a run's artifact is looked up there first, then at its recorded
    path). A row the privacy audit rejects (AUDIT-FAILED) or could not check (AUDIT-ERROR)
    counts as a non-private reference. A run whose artifact is missing or unreadable gives a
    Sample saying so; nothing here raises for one run."""
    if tables is None:
        from dparena.leaderboard.aggregate import build_tables

        tables = build_tables(runs)
    doubted: dict[tuple, bool] = {}  # the ok rows' slots -> whether the audit doubts the row
    for table in tables:
        for row in table.rows:
            if row.status == "ok":
                eps = None if row.kind == "reference" else table.epsilon
                doubted[(table.dataset, row.label, eps)] = bool(row.audit_failed
                                                                or row.audit_error)
    out = []
    for run in first_seed_runs(runs):
        base = {"dataset": dataset_key(run), "label": run.label,
                "epsilon": None if run.epsilon is None else float(run.epsilon),
                "seed": run.seed, "run_key": run.key}
        slot = (base["dataset"], base["label"], base["epsilon"])
        if slot not in doubted:
            continue
        note = ""
        if doubted[slot] or not is_dp_run(run):
            if not is_public(run):
                why = AUDIT_WITHHELD if doubted[slot] else WITHHELD
                out.append(Sample(**base, why_none=why.format(label=run.label,
                                                              dataset=run.dataset)))
                continue
            note = (AUDIT_NOTE if doubted[slot] else
                    REAL_NOTE if run.method == "real" else REFERENCE_NOTE).format(
                dataset=run.dataset)
        path = _artifact(run, artifacts)
        if path is None:
            where = Path(run.artifact).name if run.artifact else "none recorded"
            out.append(Sample(**base, why_none=f"no samples: the run's artifact is not there "
                                               f"({where})"))
            continue
        try:
            out.append(_read(run, path, folder, base, note))
        except Exception as exc:  # noqa: BLE001 - one unreadable artifact costs its sample only
            first = str(exc).splitlines()[0] if str(exc) else ""
            out.append(Sample(**base, why_none=f"no samples: the artifact could not be read "
                                               f"({type(exc).__name__}: {first})"))
    return out


#: the names this module gives its files (:func:`_name`: a slug, a dash, 8 hex digits)
GENERATED = re.compile(r"-[0-9a-f]{8}\.(png|md)$")


def remove_stale(folder: Path, keep: set[str]) -> None:
    """Delete the grids and pages in ``folder`` that this module wrote (:data:`GENERATED`
    names) and that are not in ``keep`` (what the pages of this publish show); any other file
    there is left alone."""
    if not folder.is_dir():
        return
    for path in folder.iterdir():
        if path.is_file() and GENERATED.search(path.name) and path.name not in keep:
            path.unlink(missing_ok=True)


# ------------------------------------------------------------------------------------ reading
def _read(run: StoredRun, path: Path, folder: Path, base: dict[str, Any], note: str) -> Sample:
    if path.suffix == ".npz":
        sample = _images(run, path, folder, base, note)
    elif path.suffix == ".jsonl":
        sample = _texts(run, path, base, note)
    elif path.suffix == ".parquet":
        sample = _rows(path, base, note)
    else:
        raise ValueError(f"unknown artifact kind {path.name}")
    if not (sample.grid or sample.texts or sample.rows):
        return Sample(**base, why_none="no samples: the run returned no records")
    return sample


def _images(run: StoredRun, path: Path, folder: Path, base: dict[str, Any], note: str) -> Sample:
    import numpy as np

    with np.load(path, allow_pickle=False) as npz:
        images = npz["data"]
        labels = npz["labels"] if "labels" in npz.files else None
    if not len(images):
        return Sample(**base, note=note)
    names = _class_names(run)
    if labels is None:
        names = ("",)
    elif names is None or len(names) <= int(labels.max(initial=0)):
        names = tuple(str(i) for i in range(int(labels.max(initial=0)) + 1))
    shown = names[:MAX_CLASSES]
    if len(names) > len(shown):
        more = f"the first {len(shown)} of {len(names)} classes"
        note = f"{note}; {more}" if note else more
    png = grid_png(images, labels, shown)
    name = f"{_name(base['dataset'], base['label'], _eps_text(base['epsilon']))}.png"
    target = folder / FOLDER / name
    target.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(target, lambda tmp: png.save(tmp, format="PNG"))
    return Sample(**base, grid=f"{FOLDER}/{name}", note=note)


def spread(n: int, k: int) -> list[int]:
    """``min(n, k)`` distinct positions of ``range(n)`` spread evenly from the first to the last."""
    import numpy as np

    if n <= k:
        return list(range(n))
    return [int(i) for i in np.linspace(0, n - 1, k).round()]


def _texts(run: StoredRun, path: Path, base: dict[str, Any], note: str) -> Sample:
    names = _class_names(run)
    with open(path, encoding="utf-8") as fh:
        lines = [line for line in fh if line.strip()]
    texts = []
    for i in spread(len(lines), N_TEXTS):
        item = json.loads(lines[i])
        label = item.get("label")
        klass = (names[label] if names is not None and isinstance(label, int)
                 and 0 <= label < len(names) else "" if label is None else str(label))
        texts.append((klass, shorten(str(item.get("text", "")))))
    return Sample(**base, texts=tuple(texts), note=note)


def _rows(path: Path, base: dict[str, Any], note: str) -> Sample:
    frame = read_parquet(path)
    frame = frame.iloc[spread(len(frame), N_ROWS)]
    rows = tuple(tuple(_value(v) for v in record) for record in
                 frame.itertuples(index=False, name=None))
    return Sample(**base, columns=tuple(str(c) for c in frame.columns), rows=rows, note=note)


def shorten(text: str, limit: int = TEXT_CHARS) -> str:
    """One line of at most ``limit`` characters (runs of white space as one space; "…" when cut)."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _value(value: Any) -> str:
    """A table cell as text: whole numbers without a decimal point, others to 6 significant
    digits, a missing value empty."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return f"{value:.6g}"
    return str(value)


# ------------------------------------------------------------------------------------ the grid
def grid_png(images: Any, labels: Any, names: tuple[str, ...]) -> Any:
    """A PIL image: a row per class name (the class's first :data:`PER_CLASS` images, white where
    it has fewer), the name at the left. Its size is fixed by the image size and the number of
    classes: ``LABEL_W + PER_CLASS·(cell_w + PAD) + PAD`` by ``PAD + classes·(cell_h + PAD)``,
    the cell being the image scaled to [MIN_CELL, MAX_CELL] pixels."""
    import numpy as np
    from PIL import Image, ImageDraw, ImageFont

    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    h, w = images.shape[1:3]
    cell_w, cell_h = cell_size(h, w)
    width = LABEL_W + PER_CLASS * (cell_w + PAD) + PAD
    height = PAD + len(names) * (cell_h + PAD)
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    # the bitmap font, not FreeType's (Pillow >= 10.1 prefers it when installed): the same pixels
    # wherever the grid is drawn
    font = (ImageFont.load_default_imagefont() if hasattr(ImageFont, "load_default_imagefont")
            else ImageFont.load_default())
    labels = np.zeros(len(images), dtype=np.int64) if labels is None else np.asarray(labels)
    for k, name in enumerate(names):
        y = PAD + k * (cell_h + PAD)
        text = _fit(draw, name, font, LABEL_W - 2 * PAD)
        box = draw.textbbox((0, 0), text, font=font)
        draw.text((PAD + 2, y + (cell_h - (box[3] - box[1])) // 2 - box[1]), text,
                  fill=(0, 0, 0), font=font)
        for j, i in enumerate(np.flatnonzero(labels == k)[:PER_CLASS]):
            tile = Image.fromarray(_rgb(images[i]))
            if tile.size != (cell_w, cell_h):
                tile = tile.resize((cell_w, cell_h), Image.Resampling.NEAREST
                                   if cell_w >= w else Image.Resampling.LANCZOS)
            canvas.paste(tile, (LABEL_W + PAD + j * (cell_w + PAD), y))
    return canvas


def cell_size(h: int, w: int) -> tuple[int, int]:
    """(width, height) of one grid cell for an ``h`` × ``w`` image."""
    side = max(h, w)
    if side < MIN_CELL:
        up = -(-MIN_CELL // side)
        return w * up, h * up
    if side > MAX_CELL:
        return max(1, round(w * MAX_CELL / side)), max(1, round(h * MAX_CELL / side))
    return w, h


def _rgb(image: Any) -> Any:
    import numpy as np

    image = np.asarray(image, dtype=np.uint8)
    if image.shape[-1] == 1:
        image = np.repeat(image, 3, axis=-1)
    return np.ascontiguousarray(image[..., :3])


def _fit(draw: Any, text: str, font: Any, width: int) -> str:
    """``text`` cut (with "…") to fit ``width`` pixels."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…"


# ------------------------------------------------------------------------------------ helpers
def _class_names(run: StoredRun) -> tuple[str, ...] | None:
    """The public class names of the run's dataset (its schema), None if it cannot be built."""
    from dparena.datasets import datasets

    try:
        names = datasets.create(run.dataset, **(run.dataset_params or {})).schema.label_names
        return tuple(str(n) for n in names)
    except Exception:  # noqa: BLE001 - a dataset not known here: labels are shown as numbers
        return None


def _artifact(run: StoredRun, artifacts: Path | None) -> Path | None:
    if not run.artifact:
        return None
    recorded = Path(run.artifact)
    if artifacts is not None and (artifacts / run.key / recorded.name).is_file():
        return artifacts / run.key / recorded.name
    return recorded if recorded.is_file() else None


def _seed_order(run: StoredRun) -> tuple:
    return (run.seed is None, run.seed or 0, run.key)


def _eps_text(eps: float | None) -> str:
    if eps is None:
        return "reference"
    return "eps-inf" if math.isinf(eps) else f"eps-{eps:g}"


def _name(*parts: str) -> str:
    """A file name stem: the parts made safe and short, and a hash of them (so two parts that
    read the same once made safe never share a file)."""
    slug = "--".join(re.sub(r"[^A-Za-z0-9._-]+", "_", p).strip("_") for p in parts)[:80]
    digest = hashlib.sha256("\0".join(parts).encode()).hexdigest()[:8]
    return f"{slug}-{digest}"
