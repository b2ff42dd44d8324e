"""Your own texts (``dataset = "text-file"``): a private and an eval file, CSV (a header row) or
JSON lines (one object per line), with a text column and an optional label column.

The public ``TextSchema`` is declared in the suite: ``domain`` (the kind of text, e.g. "support
ticket"), ``labels`` (the public label names; a label cell must be one of them, compared after
stripping spaces, case-sensitively), ``label_prompt`` (one class for a generator's prompt, with
``{label}`` for the name; default "a {label} <domain>", or "a {label}" without labels, where the
single label is the domain), ``max_words`` (texts are cut to this many words in every split; a
public choice, default 128), optional ``subtopics`` and ``class_proportions``, and ``size`` (N, the
number of private texts). Without ``label_column`` every text has the one label ``domain``.

An empty text, a missing column or key, a label that is not declared, a line that is not a JSON
object: each is a one-line error naming the file and the row (CSV rows counted from 0 below the
header) or line (counted from 1).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dparena.datasets.base import SubsampledDataset
from dparena.datasets.files import (
    UserFiles,
    jsonl_objects,
    optional_size,
    path_param,
    read_frame,
    require_file,
    revision_param,
    table_format,
    text_list,
)
from dparena.datasets.schema import TextSchema
from dparena.errors import ConfigError, SchemaError
from dparena.types import Modality

FORMATS = {"csv": (".csv",), "jsonl": (".jsonl", ".ndjson")}


class TextFile(UserFiles, SubsampledDataset):
    """Labelled texts from a CSV or JSON-lines file per split; the schema is declared in the
    suite."""

    modality = Modality.TEXT
    description = ("Your texts: CSV or JSON-lines private / eval files with a text and an optional "
                   "label column; declared labels and prompts")
    extra = "text"
    split_kind = "file"

    def __init__(self, private: str, eval: str, domain: str, labels: list[str] | None = None,
                 text_column: str = "text", label_column: str | None = None,
                 label_prompt: str | None = None, max_words: int = 128,
                 subtopics: list[str] | None = None, class_proportions: list[float] | None = None,
                 size: int | None = None, format: str | None = None,
                 n_private: int | None = None, n_eval: int | None = None,
                 subsample_seed: int = 0, revision: str | int = ""):
        super().__init__(n_private=n_private, n_eval=n_eval, subsample_seed=subsample_seed)
        self.revision = revision_param(revision, self.name)
        self.private_path = path_param(private, "private", self.name)
        self.eval_path = path_param(eval, "eval", self.name)
        for key, value in (("domain", domain), ("text_column", text_column),
                           ("label_column", label_column)):
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise ConfigError(f"{self.name}: {key} must be a non-empty string, got {value!r}")
        if label_column is not None and label_column == text_column:
            raise ConfigError(f"{self.name}: label_column and text_column are both {text_column!r}")
        if label_column is not None:
            if labels is None:
                raise ConfigError(f"{self.name}: with label_column = {label_column!r} declare the "
                                  f"public label names: labels = [\"...\", ...]")
            names = text_list(labels, "labels", self.name)
        else:
            if labels is not None and len(labels) != 1:
                raise ConfigError(f"{self.name}: without label_column every text has one label; "
                                  f"declare label_column or at most one name in labels")
            names = text_list(labels, "labels", self.name) if labels else (domain.strip(),)
        if label_prompt is None:
            label_prompt = f"a {{label}} {domain.strip()}" if label_column else "a {label}"
        if format is not None:
            table_format(self.private_path, format, self.name, FORMATS)
        try:
            self._schema = TextSchema(
                names, domain=domain.strip(), label_prompt=label_prompt, max_words=max_words,
                subtopics=text_list(subtopics, "subtopics", self.name, allow_empty=True)
                if subtopics is not None else (),
                class_proportions=tuple(class_proportions) if class_proportions else None,
            )
        except ValueError as exc:
            raise ConfigError(f"{self.name}: {exc}") from None
        self.text_column, self.label_column, self.format = text_column, label_column, format
        self.size = optional_size(size, self.name)
        if self.size is not None:
            self.N_PRIVATE = self.size

    def read_split(self, path: Path, role: str) -> tuple[list[str], np.ndarray]:
        """(texts cut to max_words, int64 labels) of one file."""
        require_file(path, role, self.name)
        kind = table_format(path, self.format, self.name, FORMATS)
        records = self._csv_records(path) if kind == "csv" else self._jsonl_records(path)
        if not records:
            raise SchemaError(f"{path}: the file holds no texts")
        lookup = {name: i for i, name in enumerate(self._schema.label_names)}
        texts, labels = [], []
        for where, text, label in records:
            if not isinstance(text, str):
                raise SchemaError(f"{path} {where}: {self.text_column!r} is "
                                  f"{type(text).__name__}, not a string")
            if not text.strip():
                raise SchemaError(f"{path} {where}: the text is empty; drop such rows")
            texts.append(self._schema.truncate(text))
            if self.label_column is None:
                labels.append(0)
                continue
            name = "" if label is None else str(label).strip()
            if name not in lookup:
                raise SchemaError(
                    f"{path} {where}: label {name!r} is not one of the declared labels "
                    f"{list(lookup)}; fix the row or declare the label in labels"
                )
            labels.append(lookup[name])
        return texts, np.asarray(labels, dtype=np.int64)

    def _columns(self) -> list[str]:
        return [self.text_column] + ([self.label_column] if self.label_column else [])

    def _csv_records(self, path: Path) -> list[tuple[str, object, object]]:
        frame = read_frame(path, "CSV", f"it needs a header row naming the columns "
                                        f"{self._columns()}")
        frame.columns = [str(c).strip() for c in frame.columns]
        missing = [c for c in self._columns() if c not in frame.columns]
        if missing:
            raise SchemaError(f"{path}: missing columns {missing} (the file has "
                              f"{list(frame.columns)}); set text_column / label_column")
        labels = frame[self.label_column] if self.label_column else [None] * len(frame)
        return [(f"row {i}", t, y) for i, (t, y) in
                enumerate(zip(frame[self.text_column], labels, strict=True))]

    def _jsonl_records(self, path: Path) -> list[tuple[str, object, object]]:
        return [(f"line {number}", item[self.text_column],
                 item[self.label_column] if self.label_column else None)
                for number, item in jsonl_objects(path, self._columns())]
