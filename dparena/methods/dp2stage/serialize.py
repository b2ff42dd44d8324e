"""Rows of a table to text and back, with the character span of every key, value and separator.

Four formats (the serializations compared by Afonja et al., DP-2Stage, arXiv 2412.02467, §4;
"great" is the GReaT encoding of Borisov et al., ICLR 2023):

* ``great``: `` age is 39, workclass is State-gov, ...``
* ``text``:  `` The age is 39. The workclass is State-gov. ...``
* ``list``:  `` age : 39`` one column per line (newline-separated)
* ``apval``: `` age, workclass, ... : 39, State-gov, ...`` (all keys, then all values)

:meth:`Serializer.serialize` returns the text and a list of :class:`Span` (start, end, group) that
cover every character, so token groups for the DP-2Stage loss come from these offsets mapped
through the tokenizer's offset mapping, never from looking at decoded tokens.

Parsing (:meth:`Serializer.parse`) validates against the PUBLIC schema: unknown keys are ignored;
a categorical value must be one of the public categories; a numeric value must parse as a number
(integers for integer columns) and is *clipped* to the public bounds [lower, upper] (the schema's
bounds are domain bounds, the same rule the tabular methods use); every column must be present.
A row failing any check is invalid (``None``); :meth:`parse_partial` returns the valid prefix.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from dparena.datasets.schema import Categorical, Numeric, TableSchema
from dparena.errors import ConfigError

KEY, VALUE, OTHER = 0, 1, 2
GROUP_NAMES = ("key", "value", "other")
FORMATS = ("great", "text", "list", "apval")


class Span(NamedTuple):
    """Characters [start, end) of a serialized row belong to ``group`` (KEY, VALUE or OTHER)."""

    start: int
    end: int
    group: int


def format_value(col, value) -> str:
    """The text of one cell: integers without a decimal point, floats by ``repr`` (exact)."""
    if isinstance(col, Categorical):
        return str(value)
    x = float(value)
    if col.integer and x == math.floor(x) and math.isfinite(x):
        return str(int(x))
    return repr(x)


class Serializer:
    """Serializes rows of a table with a public schema in one of :data:`FORMATS`."""

    def __init__(self, schema: TableSchema, fmt: str = "great"):
        if fmt not in FORMATS:
            raise ConfigError(f"unknown serialization {fmt!r}; use one of {', '.join(FORMATS)}")
        self.schema = schema
        self.fmt = fmt
        self._cols = {c.name: c for c in schema.columns}
        self._cats = {c.name: frozenset(c.categories) for c in schema.columns
                      if isinstance(c, Categorical)}
        self.kv = {"great": " is ", "text": " is ", "list": " : ", "apval": ", "}[fmt]
        self.sep = {"great": ",", "text": ".", "list": "\n", "apval": ","}[fmt]
        for col in schema.columns:
            texts = [col.name] + (list(col.categories) if isinstance(col, Categorical) else [])
            for t in texts:
                if self._clashes(t):
                    raise ConfigError(
                        f"column {col.name!r}: {t!r} contains a separator of the {fmt!r} "
                        f"serialization; choose another format"
                    )

    def _clashes(self, text: str) -> bool:
        if text != text.strip() or not text:
            return True
        bad = {"great": [", ", " is "], "text": [". ", " is "], "list": ["\n", " : "],
               "apval": [", ", " : "]}[self.fmt]
        return any(b in f" {text} " for b in bad)

    # ------------------------------------------------------------------ writing
    def serialize(self, row: dict, order: list[str] | None = None) -> tuple[str, list[Span]]:
        """Text of one row (a mapping column -> value) and spans covering every character."""
        order = list(order) if order is not None else self.schema.names
        pieces: list[tuple[str, int]] = []
        if self.fmt == "apval":
            for i, name in enumerate(order):
                pieces += [(", " if i else " ", OTHER), (name, KEY)]
            pieces.append((" :", OTHER))
            for i, name in enumerate(order):
                pieces += [(", " if i else " ", OTHER),
                           (format_value(self._cols[name], row[name]), VALUE)]
        else:
            prefix = " The " if self.fmt == "text" else " "
            for i, name in enumerate(order):
                if i:
                    pieces.append((self.sep, OTHER))
                pieces += [(prefix, OTHER), (name, KEY), (self.kv, OTHER),
                           (format_value(self._cols[name], row[name]), VALUE)]
        text, spans, pos = [], [], 0
        for piece, group in pieces:
            text.append(piece)
            spans.append(Span(pos, pos + len(piece), group))
            pos += len(piece)
        return "".join(text), spans

    def prompt(self, name: str, value) -> str:
        """The start of a row whose first column is ``name`` = ``value`` (for sampling)."""
        if self.fmt == "apval":
            raise ConfigError("apval puts all keys first: it cannot be prompted with one value; "
                              "use great, text or list")
        text, _ = self.serialize({name: value}, [name])
        return text + self.sep

    # ------------------------------------------------------------------ reading
    def _pairs(self, text: str) -> list[tuple[str, str]]:
        if self.fmt == "apval":
            head, sep, tail = text.partition(" : ")
            if not sep:
                return []
            keys = [k.strip() for k in head.split(", ")]
            values = [v.strip() for v in tail.split(", ")]
            return list(zip(keys, values, strict=False))
        pairs = []
        sep = {"great": ", ", "text": ". ", "list": "\n"}[self.fmt]
        body = text.strip()
        if body.endswith(self.sep):
            body = body[: -len(self.sep)]
        for field in body.split(sep):
            field = field.strip()
            if self.fmt == "text":
                if not field.startswith("The "):
                    continue
                field = field[4:]
            key, kv, value = field.partition(self.kv)
            if kv:
                pairs.append((key.strip(), value.strip()))
        return pairs

    def _value(self, col, text: str):
        if isinstance(col, Categorical):
            return text if text in self._cats[col.name] else None
        try:
            x = float(text)
        except ValueError:
            return None
        if not math.isfinite(x) or (col.integer and x != math.floor(x)):
            return None
        return float(min(max(x, col.lower), col.upper))

    def parse_partial(self, text: str) -> dict:
        """The columns that parse validly, in text order (first occurrence of a key wins)."""
        out: dict = {}
        for key, raw in self._pairs(text):
            if key not in self._cols or key in out:
                continue  # unknown keys are ignored; a repeated key keeps its first value
            value = self._value(self._cols[key], raw)
            if value is None:
                break
            out[key] = value
        return out

    def parse(self, text: str) -> dict | None:
        """A complete valid row, or None."""
        row = self.parse_partial(text)
        return row if len(row) == len(self.schema.columns) else None


def column_orders(names: list[str], n: int, shuffle: bool, rng: np.random.Generator,
                  first: str | None = None) -> list[list[str]]:
    """``n`` column orders: fixed (``first`` moved to the front) or a fresh permutation each."""
    if not shuffle:
        base = ([first] if first else []) + [c for c in names if c != first]
        return [base] * n
    return [[names[j] for j in rng.permutation(len(names))] for _ in range(n)]


def numeric_columns(schema: TableSchema) -> list[Numeric]:
    return [c for c in schema.columns if isinstance(c, Numeric)]
