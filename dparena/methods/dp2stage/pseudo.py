"""Stage-1 pseudo data: uniform draws from the public schema, or a different public table.

``uniform`` draws every column independently and uniformly from the PUBLIC schema (categories
and bounds; the original code uses the private table's min/max, which is a private read).
``ood`` is Statlog German credit (UCI, asset ``german-data``), a public table unrelated to the
private one: it only teaches the LM the "key is value" format. Its coded categories (A11, ...)
are mapped to the short descriptions of the UCI documentation. ``csv:PATH`` reads a public table
the user names (all columns treated as text; it must not be derived from the private data).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from dparena.datasets.schema import Categorical, Numeric, TableSchema
from dparena.errors import ConfigError


def uniform_rows(schema: TableSchema, n: int, rng: np.random.Generator) -> pd.DataFrame:
    cols = {}
    for col in schema.columns:
        if isinstance(col, Categorical):
            cols[col.name] = np.asarray(col.categories, dtype=object)[
                rng.integers(0, len(col.categories), n)]
        elif col.integer:
            cols[col.name] = rng.integers(int(col.lower), int(col.upper) + 1, n).astype(float)
        else:
            cols[col.name] = rng.uniform(col.lower, col.upper, n)
    return pd.DataFrame(cols)


# Statlog German credit (german.doc): attribute names and code meanings, shortened, no spaces
_GERMAN = [
    ("checking-account", {"A11": "<0DM", "A12": "0-200DM", "A13": ">=200DM", "A14": "none"}),
    ("duration-months", None),
    ("credit-history", {"A30": "no-credits", "A31": "all-paid-here", "A32": "paid-till-now",
                        "A33": "past-delay", "A34": "critical"}),
    ("purpose", {"A40": "new-car", "A41": "used-car", "A42": "furniture", "A43": "radio-tv",
                 "A44": "appliances", "A45": "repairs", "A46": "education", "A47": "vacation",
                 "A48": "retraining", "A49": "business", "A410": "others"}),
    ("credit-amount", None),
    ("savings", {"A61": "<100DM", "A62": "100-500DM", "A63": "500-1000DM", "A64": ">=1000DM",
                 "A65": "unknown"}),
    ("employed-since", {"A71": "unemployed", "A72": "<1y", "A73": "1-4y", "A74": "4-7y",
                        "A75": ">=7y"}),
    ("installment-rate", None),
    ("personal-status", {"A91": "male-divorced", "A92": "female-married", "A93": "male-single",
                         "A94": "male-married", "A95": "female-single"}),
    ("other-debtors", {"A101": "none", "A102": "co-applicant", "A103": "guarantor"}),
    ("residence-since", None),
    ("property", {"A121": "real-estate", "A122": "savings-insurance", "A123": "car",
                  "A124": "none"}),
    ("age", None),
    ("other-plans", {"A141": "bank", "A142": "stores", "A143": "none"}),
    ("housing", {"A151": "rent", "A152": "own", "A153": "free"}),
    ("existing-credits", None),
    ("job", {"A171": "unskilled-nonresident", "A172": "unskilled-resident", "A173": "skilled",
             "A174": "management"}),
    ("dependents", None),
    ("telephone", {"A191": "none", "A192": "yes"}),
    ("foreign-worker", {"A201": "yes", "A202": "no"}),
    ("credit-risk", {"1": "good", "2": "bad"}),
]


def german_table(path: Path) -> tuple[pd.DataFrame, TableSchema]:
    """The German credit table with readable values, and a schema for serializing it."""
    raw = pd.read_csv(path, sep=r"\s+", header=None, dtype=str)
    cols, schema_cols = {}, []
    for j, (name, codes) in enumerate(_GERMAN):
        if codes is None:
            values = raw[j].astype(float)
            cols[name] = values
            schema_cols.append(Numeric(name, 0.0, float(max(values.max(), 1.0)), integer=True))
        else:
            cols[name] = raw[j].map(codes)
            schema_cols.append(Categorical(name, tuple(dict.fromkeys(codes.values()))))
    # its target (german.doc: attribute 21, good / bad credit risk) leads the fixed column order
    return pd.DataFrame(cols), TableSchema(tuple(schema_cols), target="credit-risk")


def csv_table(path: str) -> tuple[pd.DataFrame, TableSchema]:
    """A user-named public CSV: every column as text (it only teaches the format)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"pseudo data file {path!r} not found; give an existing CSV path")
    frame = pd.read_csv(p, dtype=str, keep_default_na=False)
    frame.columns = [str(c).strip().replace(" ", "-") or f"c{i}" for i, c in
                     enumerate(frame.columns)]
    frame = frame.apply(lambda s: s.str.strip().str.replace(",", ";").str.replace(" ", "-"))
    schema_cols = [Categorical(c, tuple(dict.fromkeys(frame[c].tolist())) or ("",))
                   for c in frame.columns]
    return frame, TableSchema(tuple(schema_cols))


def pseudo_table(kind: str, schema: TableSchema, n: int, rng: np.random.Generator, store):
    """``n`` pseudo rows and the schema to serialize them with."""
    if kind == "uniform":
        return uniform_rows(schema, n, rng), schema
    if kind == "ood":
        frame, ood_schema = german_table(store.path("german-data"))
    elif kind.startswith("csv:"):
        frame, ood_schema = csv_table(kind[4:])
    else:
        raise ConfigError(f"unknown pseudo data {kind!r}; use 'uniform', 'ood' or 'csv:PATH'")
    idx = rng.choice(len(frame), size=n, replace=n > len(frame))
    return frame.iloc[idx].reset_index(drop=True), ood_schema
