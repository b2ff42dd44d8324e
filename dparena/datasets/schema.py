"""Public table schemas: column kinds, category lists and numeric bounds.

A schema is public knowledge (documentation, domain bounds); nothing in it may be computed from
private rows. Methods and metrics take bins, categories and encoders from here.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import pandas as pd

from dparena.errors import SchemaError


@dataclass(frozen=True)
class Numeric:
    """A numeric column with public bounds [lower, upper]."""

    name: str
    lower: float
    upper: float
    integer: bool = False

    def __post_init__(self) -> None:
        if not self.upper > self.lower:
            raise ValueError(f"column {self.name}: upper must exceed lower")

    kind = "numeric"

    def bin_edges(self, bins: int) -> np.ndarray:
        return np.linspace(self.lower, self.upper, bins + 1)

    def bin_index(self, values: np.ndarray, bins: int) -> np.ndarray:
        """Equal-width bin of each value over [lower, upper]; out-of-range values go to the edges."""
        x = np.asarray(values, dtype=float)
        idx = np.floor((x - self.lower) / (self.upper - self.lower) * bins)
        return np.clip(np.nan_to_num(idx, nan=0.0), 0, bins - 1).astype(np.int64)


@dataclass(frozen=True)
class Categorical:
    """A categorical column with its public list of categories."""

    name: str
    categories: tuple[str, ...]

    kind = "categorical"

    def __post_init__(self) -> None:
        if len(set(self.categories)) != len(self.categories):
            raise ValueError(f"column {self.name}: duplicate categories")

    def codes(self, values) -> np.ndarray:
        """Index of each value in the public categories; unknown values get len(categories)."""
        # a vectorised hash lookup; values outside the list (or missing) come back as -1
        codes = self._index.get_indexer(np.asarray(values, dtype=object)).astype(np.int64)
        codes[codes < 0] = len(self.categories)
        return codes

    @functools.cached_property
    def _index(self) -> pd.Index:
        return pd.Index(self.categories, dtype=object)


Column = Numeric | Categorical


@dataclass(frozen=True)
class TableSchema:
    columns: tuple[Column, ...]
    target: str | None = None

    def __post_init__(self) -> None:
        names = [c.name for c in self.columns]
        if len(set(names)) != len(names):
            raise ValueError("duplicate column names in schema")
        if self.target is not None and self.target not in names:
            raise ValueError(f"target {self.target!r} is not a column")

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)

    def conform(self, frame: pd.DataFrame, what: str = "table") -> pd.DataFrame:
        """Check a table against the public schema; returns a copy in schema order and dtypes.

        Raises SchemaError (one line naming the first offending column and row, and what to fix)
        when the columns are not exactly the schema's, a numeric value is missing, not a number,
        not finite, outside the public bounds or (in an integer column) not a whole number, or a
        categorical value is missing or not one of the public categories (compared after
        stripping surrounding spaces, case-sensitively). Rows are counted from 0.
        """
        if not isinstance(frame, pd.DataFrame):
            raise SchemaError(f"{what}: expected a table (pandas DataFrame) with columns "
                              f"{self.names}, got {type(frame).__name__}")
        names = self.names
        got = [str(c).strip() for c in frame.columns]
        twice = sorted({g for g in got if got.count(g) > 1})
        if twice:
            raise SchemaError(f"{what}: columns {twice} appear more than once; give each column "
                              f"once")
        missing = [n for n in names if n not in got]
        extra = [g for g in got if g not in names]
        if missing or extra:
            parts = []
            if missing:
                parts.append(f"missing columns {missing}")
            if extra:
                parts.append(f"unexpected columns {extra}")
            raise SchemaError(f"{what}: {'; '.join(parts)}; expected exactly {names}")
        frame = frame.copy()
        frame.columns = got
        out = {}
        for col in self.columns:
            values = frame[col.name].reset_index(drop=True)
            where = f"{what}: column {col.name!r} row"
            if isinstance(col, Numeric):
                parsed = pd.to_numeric(values, errors="coerce").astype(float)
                arr = parsed.to_numpy()
                for bad, why in (
                    (values.isna().to_numpy(), "is empty or NaN; every cell needs a number"),
                    (np.isnan(arr), "is not a number"),
                    (np.isinf(arr), "is not finite"),
                    ((arr < col.lower) | (arr > col.upper),
                     f"is outside the public bounds [{col.lower:g}, {col.upper:g}]"),
                    (col.integer & (np.floor(arr) != arr), "is not a whole number (the column "
                                                           "is an integer)"),
                ):
                    if bad.any():
                        row = int(np.flatnonzero(bad)[0])
                        value = values.iloc[row]
                        shown = "" if "empty" in why else f" has value {value!r}, which"
                        raise SchemaError(f"{where} {row}{shown} {why}; fix or drop such rows")
                out[col.name] = parsed
            else:
                empty = values.isna().to_numpy()
                if empty.any():
                    row = int(np.flatnonzero(empty)[0])
                    raise SchemaError(
                        f"{where} {row} is empty; use one of the public categories (e.g. "
                        f"{col.categories[0]!r})"
                    )
                text = values.astype(str).str.strip()
                unknown = col.codes(text.to_numpy()) >= len(col.categories)
                if unknown.any():
                    row = int(np.flatnonzero(unknown)[0])
                    value = text.iloc[row]
                    raise SchemaError(
                        f"{where} {row} has value {value!r}, which is not one of its public "
                        f"categories{_category_hint(value, col.categories)}; fix or drop such rows"
                    )
                out[col.name] = text.astype(object)
        return pd.DataFrame(out, index=range(len(frame)))

    def to_dict(self) -> dict:
        cols = []
        for c in self.columns:
            if isinstance(c, Numeric):
                cols.append({"name": c.name, "kind": "numeric", "lower": c.lower,
                             "upper": c.upper, "integer": c.integer})
            else:
                cols.append({"name": c.name, "kind": "categorical",
                             "categories": list(c.categories)})
        return {"columns": cols, "target": self.target}


def _category_hint(value: str, categories: tuple[str, ...]) -> str:
    """"; did you mean 'Male'?" (a case-insensitive match first, then close spellings)."""
    same = [c for c in categories if c.lower() == value.lower()]
    if same:
        return f"; did you mean {same[0]!r}? (categories are case-sensitive)"
    from dparena.registry import did_you_mean

    return did_you_mean(value, categories) or f" ({', '.join(map(repr, categories[:8]))}" + (
        ", ...)" if len(categories) > 8 else ")")


def _check_labels(labels, n: int, num_classes: int, what: str, items: str) -> np.ndarray:
    """``n`` integer labels in 0..num_classes-1 as int64 (one-line SchemaError naming the first
    bad one otherwise)."""
    expected = f"expected {n} integer labels in 0..{num_classes - 1}, one per {items}"
    if labels is None:
        raise SchemaError(f"{what}: labels are missing; {expected}")
    lab = np.asarray(labels)
    if lab.shape != (n,):
        raise SchemaError(f"{what}: {expected}, got labels of shape {list(lab.shape)}")
    if n and not np.issubdtype(lab.dtype, np.integer):
        for i, v in enumerate(lab.tolist()):
            if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < num_classes:
                raise SchemaError(f"{what}: {expected}; label {i} is {v!r}")
        lab = lab.astype(np.int64)
    bad = (lab < 0) | (lab >= num_classes)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise SchemaError(f"{what}: {expected}; label {i} is {int(lab[i])}")
    return lab.astype(np.int64)


def _check_proportions(proportions, label_names) -> None:
    """A public class prior must be a distribution over the label names (or absent)."""
    if proportions is None:
        return
    p = np.asarray(proportions, dtype=float)
    if len(p) != len(label_names) or (p < 0).any() or not np.isclose(p.sum(), 1.0):
        raise ValueError("class_proportions must be a distribution over label_names")


@dataclass(frozen=True)
class ImageSchema:
    """The public description of a labelled image dataset.

    Images are ``uint8`` arrays ``[N, height, width, channels]``; labels are integers indexing
    ``label_names``. ``class_proportions`` is a public prior over the classes when documentation
    gives one; when it is None, a method that needs the class sizes must buy them with budget (a DP
    count booked in its ledger) or assume they are uniform.
    """

    height: int
    width: int
    channels: int
    label_names: tuple[str, ...]
    class_proportions: tuple[float, ...] | None = None

    kind = "image"

    def __post_init__(self) -> None:
        if min(self.height, self.width) < 1 or self.channels not in (1, 3):
            raise ValueError("images need height, width >= 1 and 1 or 3 channels")
        if len(set(self.label_names)) != len(self.label_names):
            raise ValueError("duplicate label names")
        _check_proportions(self.class_proportions, self.label_names)

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.height, self.width, self.channels)

    @property
    def num_classes(self) -> int:
        return len(self.label_names)

    def conform(self, images, labels, what: str = "images") -> tuple[np.ndarray, np.ndarray]:
        """Check an image array and its labels against the schema (one-line SchemaError)."""
        try:
            arr = np.asarray(images)
        except (ValueError, TypeError):  # ragged or mixed items
            raise SchemaError(f"{what}: expected an array of shape [N, {self.height}, "
                              f"{self.width}, {self.channels}], got {type(images).__name__} items "
                              f"of different shapes") from None
        if arr.ndim == 3 and self.channels == 1:
            arr = arr[..., None]
        if arr.ndim != 4 or arr.shape[1:] != self.shape:
            raise SchemaError(f"{what}: expected an array of shape [N, {self.height}, {self.width}, "
                              f"{self.channels}], got {list(arr.shape)}")
        if arr.dtype != np.uint8:
            raise SchemaError(f"{what}: expected uint8 pixels in 0..255, got {arr.dtype}; "
                              f"convert with (x * 255).round().astype('uint8')")
        return arr, _check_labels(labels, len(arr), self.num_classes, what, "image")

    def to_dict(self) -> dict:
        return {"kind": "image", "height": self.height, "width": self.width,
                "channels": self.channels, "label_names": list(self.label_names),
                "class_proportions": (list(self.class_proportions)
                                      if self.class_proportions is not None else None)}


@dataclass(frozen=True)
class TextSchema:
    """The public description of a labelled text dataset.

    Texts are ``str``; labels are integers indexing ``label_names`` (a single-label set has one
    name). ``domain`` names the kind of text ("movie review"); ``label_prompt`` phrases one class for
    a generator's prompt, with ``{label}`` standing for a label name ("a {label} movie review");
    ``subtopics`` are public topics a prompt may name for diversity (e.g. film genres). Texts longer
    than ``max_words`` whitespace-separated words are cut to that length in every split, so the
    length limit is part of the dataset's definition. ``class_proportions`` as in
    :class:`ImageSchema`: a public prior, or None (then buy the class sizes or assume uniform).
    """

    label_names: tuple[str, ...]
    domain: str
    label_prompt: str
    max_words: int
    subtopics: tuple[str, ...] = ()
    class_proportions: tuple[float, ...] | None = None

    kind = "text"

    def __post_init__(self) -> None:
        if not self.label_names or len(set(self.label_names)) != len(self.label_names):
            raise ValueError("label_names must be non-empty and distinct")
        if "{label}" not in self.label_prompt:
            raise ValueError("label_prompt must contain '{label}'")
        if self.max_words < 1:
            raise ValueError("max_words must be >= 1")
        _check_proportions(self.class_proportions, self.label_names)

    @property
    def num_classes(self) -> int:
        return len(self.label_names)

    def describe(self, label: int) -> str:
        """The prompt phrase of class ``label`` (e.g. "a fresh movie review")."""
        return self.label_prompt.format(label=self.label_names[label])

    def truncate(self, text: str) -> str:
        """``text`` stripped; longer than ``max_words`` words, its first ``max_words`` words joined
        by single spaces."""
        words = text.split()
        return text.strip() if len(words) <= self.max_words else " ".join(words[: self.max_words])

    def conform(self, texts, labels, what: str = "texts") -> tuple[list[str], np.ndarray]:
        """Check a list of texts and its labels against the schema (one-line SchemaError)."""
        if isinstance(texts, str | bytes) or not hasattr(texts, "__len__"):
            raise SchemaError(f"{what}: expected a list of strings, got {type(texts).__name__}")
        out = list(texts)
        bad = [i for i, t in enumerate(out) if not isinstance(t, str)]
        if bad:
            raise SchemaError(f"{what}: item {bad[0]} is {type(out[bad[0]]).__name__}, not a "
                              f"string; give one string per text")
        return out, _check_labels(labels, len(out), self.num_classes, what, "text")

    def to_dict(self) -> dict:
        return {"kind": "text", "label_names": list(self.label_names), "domain": self.domain,
                "label_prompt": self.label_prompt, "max_words": self.max_words,
                "subtopics": list(self.subtopics),
                "class_proportions": (list(self.class_proportions)
                                      if self.class_proportions is not None else None)}
