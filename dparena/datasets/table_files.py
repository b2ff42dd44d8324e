"""Your own table (``dataset = "csv"``): private and eval files (CSV or parquet) plus a public
schema file (TOML) that you write.

The schema file gives what the built-in tables declare in code (see ``adult.py``): each column's
kind, a numeric column's public bounds, a categorical column's public categories, the target, and
the public size N of the private split. Nothing about the columns is read from the data: a value
outside its bounds, a category not in its list, a missing or an undeclared column is a one-line
error naming the file, the column, the row and the value — never a silently widened schema.

A schema file::

    description = "Airline passenger satisfaction (Kaggle)"   # optional
    target = "satisfaction"                # optional: the column ML-efficacy predicts
    size = 103904                          # optional: N, the private file's number of rows
    drop = ["id"]                          # optional: file columns that are not data
    download = "get train.csv from ..."    # optional: shown when a file is missing

    [[column]]
    name = "Age"
    kind = "numeric"
    lower = 0                              # public bounds, from documentation
    upper = 100
    integer = true                         # optional (default false)
    clip = true                            # optional: clip values outside [lower, upper]
    missing = 0                            # optional: the value an empty cell is read as

    [[column]]
    name = "Class"
    kind = "categorical"
    categories = ["Business", "Eco", "Eco Plus"]
    missing = "Eco"                        # optional

``clip`` and ``missing`` are declared, record-by-record transformations (a neighbouring dataset
differs in one row, so they cost no privacy): without them a value outside the bounds or an empty
cell is an error. CSV cells are read as text (empty = missing); column names and categorical values
are compared after stripping surrounding spaces, case-sensitively. An empty header (a saved pandas
index) is named ``Unnamed: 0`` (its position counted from 0), as pandas names it.

``dparena schema draft FILE`` writes a first schema file from a table *you declare public*: its
bounds, categories and size are read from that file, so if it holds private records they are not
private. Review every line before using it.
"""

from __future__ import annotations

import json
import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from dparena.assets import AssetStore
from dparena.datasets.adult import TabularDataset
from dparena.datasets.base import DatasetBundle
from dparena.datasets.files import (
    check_count,
    files_version,
    no_size_error,
    path_param,
    read_frame,
    require_file,
    revision_param,
    table_format,
)
from dparena.datasets.schema import Categorical, Numeric, TableSchema
from dparena.errors import ConfigError, SchemaError

FORMATS = {"csv": (".csv", ".txt"), "parquet": (".parquet", ".pq")}
_TOP_KEYS = {"description", "target", "size", "drop", "download", "column"}
_COLUMN_KEYS = {"numeric": {"name", "kind", "lower", "upper", "integer", "clip", "missing"},
                "categorical": {"name", "kind", "categories", "missing"}}


@dataclass(frozen=True)
class SchemaFile:
    """A parsed public schema file: the TableSchema plus how to read the files into it."""

    path: Path
    schema: TableSchema
    size: int | None = None
    drop: tuple[str, ...] = ()
    clip: tuple[str, ...] = ()
    missing: tuple[tuple[str, Any], ...] = ()  # (column, the value an empty cell is read as)
    download: str = ""
    description: str = ""

    def conform(self, frame: pd.DataFrame, what: str) -> pd.DataFrame:
        """``frame`` (as read from a data file) in the schema's columns, order and dtypes."""
        frame = frame.copy()
        frame.columns = [str(c).strip() for c in frame.columns]
        absent = [c for c in self.drop if c not in frame.columns]
        if absent:
            raise SchemaError(f"{what}: the schema file {self.path} drops columns {absent}, which "
                              f"the file does not have; remove them from drop")
        frame = frame.drop(columns=list(self.drop))
        names = self.schema.names
        missing = [n for n in names if n not in frame.columns]
        if missing:
            raise SchemaError(f"{what}: missing columns {missing}, which the schema file "
                              f"{self.path} declares; add them to the file or remove them from "
                              f"the schema")
        extra = [c for c in frame.columns if c not in names]
        if extra:
            raise SchemaError(f"{what}: columns {extra} are not in the schema file {self.path}; "
                              f"declare them there or list them in its drop = [...]")
        fills = dict(self.missing)
        for col in self.schema.columns:
            if col.name not in frame.columns:  # a repeated name: conform reports it
                continue
            values = frame[col.name]
            if isinstance(values, pd.DataFrame):
                continue
            empty = values.isna().to_numpy() | (values.astype(str).str.strip() == "").to_numpy()
            if empty.any():
                if col.name not in fills:
                    row = int(empty.nonzero()[0][0])
                    raise SchemaError(
                        f"{what}: column {col.name!r} row {row} is empty; fill it in the file or "
                        f"declare missing = <value> for the column in the schema file {self.path}"
                    )
                values = values.astype(object).where(~empty, fills[col.name])
            if col.name in self.clip:
                number = pd.to_numeric(values, errors="coerce")
                clipped = number.clip(col.lower, col.upper)
                values = values.astype(object).where(number.isna(), clipped)
            frame[col.name] = values
        return self.schema.conform(frame, what=what)


def read_schema_file(path: Path | str, dataset: str = "csv") -> SchemaFile:
    """Parse and check a schema file; every mistake is a one-line ConfigError naming the file."""
    path = Path(path)
    where = f"schema file {path}"
    require_file(path, "schema", dataset, "write one (see docs/your-data.md) or draft it with "
                                          "`dparena schema draft` from a public table")
    try:
        raw = tomllib.loads(path.read_bytes().decode("utf-8-sig"))
    except UnicodeError:
        raise ConfigError(f"{where} is not UTF-8 text; save it as a UTF-8 TOML file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: invalid TOML: {exc}") from None
    unknown = sorted(set(raw) - _TOP_KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown keys {unknown}; allowed: {sorted(_TOP_KEYS)}")
    entries = raw.get("column")
    if not isinstance(entries, list) or not entries or not all(isinstance(c, dict)
                                                               for c in entries):
        raise ConfigError(f"{where}: needs at least one [[column]] table (name, kind and its "
                          f"public bounds or categories)")
    columns, clip, fills = [], [], []
    for i, entry in enumerate(entries):
        col, clipped, fill = _column(entry, f"{where} column {entry.get('name', i + 1)!r}")
        columns.append(col)
        if clipped:
            clip.append(col.name)
        if fill is not None:
            fills.append((col.name, fill))
    names = [c.name for c in columns]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ConfigError(f"{where}: columns {twice} are declared more than once")
    target = raw.get("target")
    if target is not None and target not in names:
        raise ConfigError(f"{where}: target {target!r} is not a declared column "
                          f"({', '.join(map(repr, names[:8]))}{', ...' if len(names) > 8 else ''})")
    size = raw.get("size")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 2):
        raise ConfigError(f"{where}: size must be an integer >= 2 (the number of rows of the "
                          f"private file), got {size!r}")
    drop = raw.get("drop", [])
    if not isinstance(drop, list) or not all(isinstance(d, str) for d in drop):
        raise ConfigError(f"{where}: drop must be a list of column names, got {drop!r}")
    clash = sorted(set(drop) & set(names))
    if clash:
        raise ConfigError(f"{where}: columns {clash} are both declared and dropped")
    texts = {}
    for key in ("description", "download"):
        texts[key] = raw.get(key, "")
        if not isinstance(texts[key], str):
            raise ConfigError(f"{where}: {key} must be a string, got {texts[key]!r}")
    return SchemaFile(path=path, schema=TableSchema(tuple(columns), target=target), size=size,
                      drop=tuple(d.strip() for d in drop), clip=tuple(clip), missing=tuple(fills),
                      **texts)


def _number(value: Any) -> bool:
    return (isinstance(value, int | float) and not isinstance(value, bool)
            and math.isfinite(value))


def _column(entry: dict, where: str) -> tuple[Numeric | Categorical, bool, Any]:
    name, kind = entry.get("name"), entry.get("kind")
    if not isinstance(name, str) or not name.strip() or name != name.strip():
        raise ConfigError(f"{where}: name must be a non-empty string without surrounding spaces, "
                          f"got {name!r}")
    if kind not in _COLUMN_KEYS:
        raise ConfigError(f"{where}: kind must be 'numeric' or 'categorical', got {kind!r}")
    unknown = sorted(set(entry) - _COLUMN_KEYS[kind])
    if unknown:
        raise ConfigError(f"{where}: unknown keys {unknown} for a {kind} column; allowed: "
                          f"{sorted(_COLUMN_KEYS[kind])}")
    fill = entry.get("missing")
    if kind == "numeric":
        for key in ("lower", "upper"):
            if key not in entry:
                raise ConfigError(f"{where}: a numeric column needs '{key}' (its public bounds, "
                                  f"from documentation or domain knowledge, never from the data)")
            if not _number(entry[key]):
                raise ConfigError(f"{where}: {key} must be a finite number, got {entry[key]!r}")
        flags = {key: entry.get(key, False) for key in ("integer", "clip")}
        for key, value in flags.items():
            if not isinstance(value, bool):
                raise ConfigError(f"{where}: {key} must be true or false, got {value!r}")
        lower, upper = entry["lower"], entry["upper"]
        if not upper > lower:
            raise ConfigError(f"{where}: upper ({upper!r}) must exceed lower ({lower!r})")
        if fill is not None and not (_number(fill) and lower <= fill <= upper):
            raise ConfigError(f"{where}: missing must be a number within [{lower}, {upper}], got "
                              f"{fill!r}")
        if fill is not None and flags["integer"] and float(fill) != int(fill):
            raise ConfigError(f"{where}: missing must be a whole number (the column is an "
                              f"integer), got {fill!r}")
        return Numeric(name, lower, upper, integer=flags["integer"]), flags["clip"], fill
    categories = entry.get("categories")
    if categories is None:
        raise ConfigError(f"{where}: a categorical column needs 'categories' (its public list of "
                          f"values, from documentation)")
    if (not isinstance(categories, list) or not categories
            or not all(isinstance(c, str) or (isinstance(c, int) and not isinstance(c, bool))
                       for c in categories)):
        raise ConfigError(f"{where}: categories must be a non-empty list of strings (or whole "
                          f"numbers), got {categories!r}")
    cats = [str(c) for c in categories]
    bad = [c for c in cats if c != c.strip() or not c]
    if bad:
        raise ConfigError(f"{where}: categories {bad} are empty or have surrounding spaces (values "
                          f"are compared stripped); remove the spaces")
    twice = sorted({c for c in cats if cats.count(c) > 1})
    if twice:
        raise ConfigError(f"{where}: categories {twice} are listed more than once")
    if fill is not None:
        fill = str(fill) if isinstance(fill, int) and not isinstance(fill, bool) else fill
        if fill not in cats:
            raise ConfigError(f"{where}: missing must be one of the categories, got {fill!r}")
    return Categorical(name, tuple(cats)), False, fill


def read_table_file(path: Path, fmt: str | None = None, dataset: str = "csv") -> pd.DataFrame:
    """A CSV (every cell as text, empty cells missing) or parquet file as a frame."""
    kind = table_format(path, fmt, dataset, FORMATS)
    frame = read_frame(path, kind, "it needs a header row of column names and one row per record",
                       na_values=[""])
    if len(frame) == 0:
        raise SchemaError(f"{path}: the file has no rows")
    return frame


class CSVTable(TabularDataset):
    """A table from your files: ``schema`` (the public schema file), ``private`` and ``eval``
    (CSV or parquet; ``format`` when the extension does not say), and the usual ``n_private`` /
    ``n_eval`` subsamples. N is the schema file's ``size`` (checked against the private file's row
    count) or, without it, ``n_private``."""

    description = ("Your table: CSV or parquet private / eval files and a public schema file "
                   "(TOML); docs/your-data.md")
    extra = "tabular"

    def __init__(self, schema: str, private: str, eval: str, format: str | None = None,
                 n_private: int | None = None, n_eval: int | None = None,
                 subsample_seed: int = 0, revision: str | int = ""):
        super().__init__(n_private=n_private, n_eval=n_eval, subsample_seed=subsample_seed)
        self.revision = revision_param(revision, self.name)
        self.schema_path = path_param(schema, "schema", self.name)
        self.private_path = path_param(private, "private", self.name)
        self.eval_path = path_param(eval, "eval", self.name)
        self.format = format
        if format is not None:
            table_format(self.private_path, format, self.name, FORMATS)  # validates the name
        self.spec = read_schema_file(self.schema_path, self.name)
        if self.spec.size is not None:
            self.N_PRIVATE = self.spec.size

    @property
    def schema(self) -> TableSchema:
        return self.spec.schema

    @property
    def version(self) -> str:  # type: ignore[override]
        return files_version("1", [self.schema_path], self.revision)

    def private_size(self, store: AssetStore) -> int:
        if self.spec.size is None and self.n_private is None:
            raise no_size_error(self.name, f"in the schema file {self.schema_path}")
        return super().private_size(store)

    def _read(self, path: Path, role: str) -> pd.DataFrame:
        hint = self.spec.download
        require_file(path, role, self.name, f"{hint} (or set {role} in dataset_params)"
                     if hint else "")
        return self.spec.conform(read_table_file(path, self.format, self.name), what=str(path))

    def load(self, store: AssetStore) -> DatasetBundle:
        private = self._read(self.private_path, "private")
        check_count(len(private), self.spec.size, self.n_private,
                    f"the private file {self.private_path}")
        evaluation = self._read(self.eval_path, "eval")
        return DatasetBundle(
            private=self._subsample(private, self.n_private, 1),
            eval=self._subsample(evaluation, self.n_eval, 2),
            schema=self.schema,
        )

    def check(self, store: AssetStore) -> None:
        self.load(store)


# ----------------------------------------------------------------------------- drafting
def draft_schema(frame: pd.DataFrame, source: str, target: str | None = None,
                 max_categories: int = 100) -> str:
    """A schema file (TOML text) drafted from a table the user declares public, with comments
    saying what to review. Numeric columns: every non-empty cell parses as a finite number (integer
    if all are whole); bounds are the file's min and max. Other columns: categorical with the
    file's distinct values, sorted."""
    frame = frame.copy()
    frame.columns = [str(c).strip() for c in frame.columns]
    if target is not None and target not in frame.columns:
        raise ConfigError(f"--target {target!r} is not a column of {source} "
                          f"({', '.join(map(repr, list(frame.columns)[:8]))}"
                          f"{', ...' if len(frame.columns) > 8 else ''})")
    lines = [
        f"# Public schema of a dparena `csv` dataset, DRAFTED by `dparena schema draft` from {source}.",
        "# That file was declared PUBLIC: the size, bounds and categories below were READ FROM IT.",
        "# If it holds private records, these values are NOT private: replace them with values from",
        "# documentation or domain knowledge (and say where each comes from in a comment).",
        "# Review every column before use: kinds, integer, bounds, category lists, missing values.",
        "# Format: docs/your-data.md.",
        "",
        f"target = {_toml(target)}" if target else "# target = \"COLUMN\"   # the column ML-efficacy predicts",
        f"size = {len(frame)}   # N: rows of the private file (read from the draft's file)",
        "# drop = []   # columns of the files that are not data (identifiers, saved indexes)",
        "# download = \"where to get the files\"   # shown when a data file is missing",
    ]
    for name in frame.columns:
        values = frame[name]
        present = values[~(values.isna() | (values.astype(str).str.strip() == ""))]
        text = present.astype(str).str.strip()
        numbers = pd.to_numeric(text, errors="coerce")
        lines += ["", "[[column]]", f"name = {_toml(name)}"]
        numeric = len(text) > 0 and numbers.notna().all() and bool(
            numbers.map(math.isfinite).all())
        if numeric:
            whole = bool((numbers == numbers.round()).all())
            lo, hi = float(numbers.min()), float(numbers.max())
            if whole:
                lo, hi = int(lo), int(hi)
            if hi == lo:
                hi = lo + 1
            lines += ["kind = \"numeric\"",
                      f"lower = {_toml(lo)}   # REVIEW: the file's minimum, not a public bound",
                      f"upper = {_toml(hi)}   # REVIEW: the file's maximum, not a public bound"]
            if whole:
                lines.append("integer = true")
        else:
            cats = sorted(set(text))
            lines += ["kind = \"categorical\"",
                      f"categories = [{', '.join(_toml(c) for c in cats)}]   # REVIEW: read "
                      f"from the file"]
            if len(cats) > max_categories:
                lines.append(f"# REVIEW: {len(cats)} distinct values: an identifier or free text? "
                             f"drop it (drop = [...]) rather than model it")
        if len(present) < len(values):
            lines.append(f"# REVIEW: {len(values) - len(present)} empty cells: clean the file or "
                         f"declare missing = <value read for an empty cell>")
        if (len(values) > 1 and text.nunique() == len(values)
                and (not numeric or bool((numbers == numbers.round()).all()))):
            lines.append("# REVIEW: every value is distinct: an identifier? drop it (drop = [...])")
    return "\n".join(lines) + "\n"


def _toml(value: Any) -> str:
    """A TOML literal of a string or number (JSON's string escapes are valid in TOML)."""
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return repr(value)
