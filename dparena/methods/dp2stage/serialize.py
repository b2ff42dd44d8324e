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

The parser is as tolerant as the DP-2Stage reference's (``utils/dataset.py``: ``Deserializer``
and ``postprocess_data``) where that reads nothing private:

* fields are split on the bare separator ("," / "." / newline), so ``age is 39,sex is Male``
  parses; the reference does the same. When a public key or category contains the bare
  separator, fields are split on separator + space instead (the reference would cut such a value
  in two). In ``text`` a "." followed by a digit is a decimal point, not a separator, and the
  "The " prefix may be missing;
* whitespace around keys, values and the key-value separator is ignored, and runs of whitespace
  inside a category count as one space;
* a category is matched case-insensitively against the PUBLIC category list and written in its
  public spelling (``private`` -> ``Private``, ``>50k`` -> ``>50K``); when two public categories
  differ only in case, only the exact spelling is accepted. The reference instead re-cases the
  generated word with the case pattern of a category seen in the TRAINING data (a private read,
  and it rejects e.g. ``HS-grad``, whose pattern it cannot express);
* a repeated key keeps its last value (the reference's deserializer overwrites).

Differences kept on purpose: keys must match exactly (as the reference), an integer column
rejects a fractional value (the reference truncates it or keeps a float, depending on the other
rows of its batch), numbers are clipped to the public bounds (the reference uses none), and
non-finite numbers are rejected.
"""

from __future__ import annotations

import math
import re
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
        public_texts = []
        for col in schema.columns:
            texts = [col.name] + (list(col.categories) if isinstance(col, Categorical) else [])
            for t in texts:
                if self._clashes(t):
                    raise ConfigError(
                        f"column {col.name!r}: {t!r} contains a separator of the {fmt!r} "
                        f"serialization; choose another format"
                    )
            public_texts += texts
        # case- and whitespace-folded spelling -> the public category (ambiguous foldings dropped)
        self._folded: dict[str, dict[str, str]] = {}
        for name, cats in ((c.name, c.categories) for c in schema.columns
                           if isinstance(c, Categorical)):
            table: dict[str, str] = {}
            ambiguous = set()
            for cat in cats:
                folded = _fold(cat)
                if folded in table and table[folded] != cat:
                    ambiguous.add(folded)
                table[folded] = cat
            self._folded[name] = {k: v for k, v in table.items() if k not in ambiguous}
        # fields split on the bare separator unless a public text holds it (then separator + space)
        bare = {"great": ",", "text": ".", "list": "\n", "apval": ","}[fmt]
        loose = not any(bare in t for t in public_texts)
        if fmt == "text":
            fields = r"\.(?!\d)" if loose else r"\. "  # "39.5" keeps its decimal point
        elif fmt == "list":
            fields = r"\n"
        else:
            fields = "," if loose else ", "
        self._field_split = re.compile(fields)
        self._kv_split = re.compile(r"\s+is\s+" if fmt in ("great", "text") else r"\s+:\s+")

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
        """(key, raw value) of every field with a key-value separator, in text order."""
        if self.fmt == "apval":
            parts = self._kv_split.split(text.strip(), maxsplit=1)
            if len(parts) < 2:
                return []
            keys = [k.strip() for k in self._field_split.split(parts[0])]
            values = [v.strip() for v in self._field_split.split(parts[1])]
            return list(zip(keys, values, strict=False))
        pairs = []
        for field in self._field_split.split(text):
            field = field.strip()
            if self.fmt == "text" and field.startswith("The "):
                field = field[4:].lstrip()  # the prefix is optional when reading
            parts = self._kv_split.split(field, maxsplit=1)
            if len(parts) == 2:
                pairs.append((parts[0].strip(), parts[1].strip()))
        return pairs

    def _value(self, col, text: str):
        if isinstance(col, Categorical):
            if text in self._cats[col.name]:
                return text
            return self._folded[col.name].get(_fold(text))  # public spelling, or None
        try:
            x = float(text)
        except ValueError:
            return None
        if not math.isfinite(x) or (col.integer and x != math.floor(x)):
            return None
        return float(min(max(x, col.lower), col.upper))

    def parse_partial(self, text: str) -> dict:
        """The columns that parse validly, in text order, up to the first invalid value (first
        occurrence of a key wins): the prefix that imputation re-prompts with."""
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
        """A complete valid row, or None. Unknown keys are ignored; a repeated key keeps its last
        value (as the reference's deserializer); every column must be present and valid."""
        raw: dict[str, str] = {}
        for key, value in self._pairs(text):
            if key in self._cols:
                raw[key] = value
        if len(raw) != len(self._cols):
            return None
        row = {}
        for name, text_value in raw.items():
            value = self._value(self._cols[name], text_value)
            if value is None:
                return None
            row[name] = value
        return row


def _fold(text: str) -> str:
    """A category's spelling for tolerant matching: whitespace runs as one space, case folded."""
    return " ".join(text.split()).casefold()


ORDERS = ("sorted", "schema")


def column_orders(names: list[str], n: int, shuffle: bool, rng: np.random.Generator,
                  first: str | None = None, order: str = "sorted") -> list[list[str]]:
    """``n`` column orders: fixed, or a fresh permutation each (``shuffle``).

    The fixed order is ``first`` then the other columns sorted by name (``order="sorted"``, the
    DP-2Stage reference's ``[start_col] + sorted(other columns)``, ft_opacus.py ``get_dataset``),
    or then the others in schema order (``order="schema"``, dparena's order before version 4).
    """
    if order not in ORDERS:
        raise ConfigError(f"column order must be one of {', '.join(ORDERS)} (got {order!r})")
    if not shuffle:
        rest = [c for c in names if c != first]
        base = ([first] if first else []) + (sorted(rest) if order == "sorted" else rest)
        return [base] * n
    return [[names[j] for j in rng.permutation(len(names))] for _ in range(n)]


def numeric_columns(schema: TableSchema) -> list[Numeric]:
    return [c for c in schema.columns if isinstance(c, Numeric)]
