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
        """Check columns and parse values; returns a copy in schema order and dtypes.

        Raises SchemaError (one line, says what to fix) on missing or extra columns or values that
        do not parse. Categorical values outside the public list are kept (metrics count them as
        'unknown').
        """
        names = self.names
        got = [str(c).strip() for c in frame.columns]
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
            values = frame[col.name]
            if isinstance(col, Numeric):
                parsed = pd.to_numeric(values, errors="coerce")
                bad = parsed.isna() & values.notna() | values.isna()
                if bad.any():
                    row = int(np.flatnonzero(bad.to_numpy())[0])
                    raise SchemaError(
                        f"{what}: column {col.name!r} row {row} has value {values.iloc[row]!r}, "
                        f"which is not a number; fix or drop such rows"
                    )
                out[col.name] = parsed.astype(float)
            else:
                if values.isna().any():
                    row = int(np.flatnonzero(values.isna().to_numpy())[0])
                    raise SchemaError(
                        f"{what}: column {col.name!r} row {row} is empty; use one of the public "
                        f"categories (e.g. {col.categories[0]!r})"
                    )
                out[col.name] = values.astype(str).str.strip()
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
