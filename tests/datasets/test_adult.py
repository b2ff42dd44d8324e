import re

import numpy as np
import pytest

from dparena.datasets import datasets
from dparena.datasets.adult import MISSING, SCHEMA, read_adult_file
from dparena.datasets.schema import Categorical, Numeric


def _documented_categories(names_text: str) -> dict[str, list[str]]:
    out = {}
    for line in names_text.splitlines():
        m = re.match(r"^([a-z-]+): (.+)\.$", line.strip())
        if m and m.group(2) != "continuous":
            out[m.group(1)] = [v.strip() for v in m.group(2).split(",")]
    return out


def test_public_schema_matches_the_uci_documentation(assets):
    documented = _documented_categories(assets.path("adult-names").read_text())
    for col in SCHEMA.columns:
        if col.name == "income":
            continue
        if isinstance(col, Categorical):
            declared = [c for c in col.categories if c != MISSING]
            assert declared == documented[col.name], col.name
        else:
            assert col.name not in documented  # documented as continuous
    assert SCHEMA.target == "income"


def test_splits_sizes_and_cleaning(adult_full):
    assert len(adult_full.private) == 32_561
    assert len(adult_full.eval) == 16_281  # header line skipped
    assert set(adult_full.eval["income"]) == {"<=50K", ">50K"}  # trailing '.' stripped
    assert list(adult_full.private.columns) == SCHEMA.names


def test_every_value_fits_the_public_schema(adult_full):
    for frame in (adult_full.private, adult_full.eval):
        for col in SCHEMA.columns:
            values = frame[col.name]
            if isinstance(col, Categorical):
                assert set(values) <= set(col.categories), col.name
            else:
                assert isinstance(col, Numeric)
                assert values.between(col.lower, col.upper).all(), col.name
                assert (values == np.floor(values)).all()


def test_missing_values_are_the_explicit_category(adult_full):
    counts = {c: int((adult_full.private[c] == MISSING).sum())
              for c in ("workclass", "occupation", "native-country")}
    assert counts == {"workclass": 1836, "occupation": 1843, "native-country": 583}


def test_subsample_is_deterministic_and_sized(assets):
    a = datasets.create("adult", n_private=500, n_eval=300).load(assets)
    b = datasets.create("adult", n_private=500, n_eval=300).load(assets)
    assert len(a.private) == 500 and len(a.eval) == 300
    assert a.private.equals(b.private)
    c = datasets.create("adult", n_private=500, subsample_seed=1).load(assets)
    assert not a.private.equals(c.private)


def test_bad_subsample_parameter():
    from dparena.errors import ConfigError

    with pytest.raises(ConfigError, match="n_private must be an integer"):
        datasets.create("adult", n_private=1)


def test_reader_rejects_nothing_silently(tmp_path):
    path = tmp_path / "a.data"
    path.write_text("39, State-gov, 77516, Bachelors, 13, Never-married, Adm-clerical, "
                    "Not-in-family, White, Male, 2174, 0, 40, United-States, <=50K.\n\n")
    frame = read_adult_file(path)
    assert len(frame) == 1 and frame.loc[0, "income"] == "<=50K" and frame.loc[0, "age"] == 39
