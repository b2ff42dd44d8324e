"""Bring your own data: ``csv`` (+ a public schema file), ``image-folder`` and ``text-file`` on
small files written here; every bad file is one ``error:`` line with nothing written, and each
kind runs end to end through ``dparena run`` and ``dparena score``."""

from __future__ import annotations

import json
import sqlite3
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dparena.assets import AssetStore
from dparena.datasets import datasets
from dparena.datasets.schema import Categorical, Numeric
from dparena.datasets.table_files import draft_schema, read_schema_file, read_table_file
from dparena.errors import ConfigError, SchemaError
from dparena.harness.suite import load_suite
from tests.cli_helpers import assert_one_error_line, run_in_process
from tests.cli_helpers import dparena as _dparena
from tests.paths import ROOT


def dparena(*args, cwd):
    return _dparena(*args, cwd=cwd, timeout=600)  # whole suites on the user's files


CITIES = ("Lyon", "Nice", "Paris")

SCHEMA = """
description = "a test table"
target = "label"
size = 40
drop = ["row_id"]

[[column]]
name = "age"
kind = "numeric"
lower = 0
upper = 100
integer = true

[[column]]
name = "city"
kind = "categorical"
categories = ["Lyon", "Nice", "Paris"]

[[column]]
name = "score"
kind = "numeric"
lower = 0.0
upper = 10.0
clip = true
missing = 0.0

[[column]]
name = "label"
kind = "categorical"
categories = ["no", "yes"]
"""


def table(n: int, seed: int) -> pd.DataFrame:
    """A small table whose label depends on age and city (so a model can learn something)."""
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 90, n)
    city = rng.choice(CITIES, n)
    score = np.round(rng.uniform(0, 10, n), 2)
    label = np.where((age > 50) | (city == "Paris"), "yes", "no")
    return pd.DataFrame({"row_id": np.arange(n), "age": age, "city": city, "score": score,
                         "label": label})


@pytest.fixture
def tab(tmp_path):
    """A schema file and private / eval CSVs in tmp_path/data."""
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "schema.toml").write_text(SCHEMA)
    table(40, 0).to_csv(folder / "private.csv", index=False)
    table(30, 1).to_csv(folder / "eval.csv", index=False)
    return folder


def csv_dataset(folder: Path, **params):
    base = {"schema": str(folder / "schema.toml"), "private": str(folder / "private.csv"),
            "eval": str(folder / "eval.csv")}
    return datasets.create("csv", **{**base, **params})


# --------------------------------------------------------------------------- csv: the schema file
def test_the_schema_file_gives_a_table_schema(tab):
    spec = read_schema_file(tab / "schema.toml")
    assert spec.schema.names == ["age", "city", "score", "label"]
    assert spec.schema.target == "label" and spec.size == 40 and spec.drop == ("row_id",)
    assert spec.schema.column("age") == Numeric("age", 0, 100, integer=True)
    assert spec.schema.column("city") == Categorical("city", CITIES)
    assert spec.clip == ("score",) and dict(spec.missing) == {"score": 0.0}


SCHEMA_EDITS = [
    ("bad-toml", 'kind = "numeric"\nlower = 0\n', 'kind = "numeric"\nlower = = 0\n',
     ["invalid TOML", "schema.toml"]),
    ("no-upper", "upper = 100\n", "", ["column 'age'", "needs 'upper'"]),
    ("no-categories", 'categories = ["no", "yes"]\n', "", ["column 'label'", "'categories'"]),
    ("kind", 'name = "age"\nkind = "numeric"', 'name = "age"\nkind = "number"', ["kind"]),
    ("bounds", "upper = 100", "upper = -1", ["upper", "must exceed lower"]),
    ("target", 'target = "label"', 'target = "income"', ["target 'income'"]),
    ("unknown-key", 'target = "label"', 'target = "label"\ncolour = 1', ["unknown keys ['colour']"]),
    ("column-key", "integer = true", "integer = true\ncategories = []", ["unknown keys"]),
    ("missing-fill", "missing = 0.0", "missing = 20.0", ["missing", "[0.0, 10.0]"]),
    ("size", "size = 40", "size = 0", ["size"]),
    ("no-columns", "[[column]]", "[[other]]", ["unknown keys"]),
]


@pytest.mark.parametrize("edit", SCHEMA_EDITS, ids=[e[0] for e in SCHEMA_EDITS])
def test_a_bad_schema_file_is_one_config_error(tab, edit):
    _, old, new, fragments = edit
    assert old in SCHEMA
    (tab / "schema.toml").write_text(SCHEMA.replace(old, new, 1))
    with pytest.raises(ConfigError) as err:
        csv_dataset(tab)
    for frag in fragments:
        assert frag in str(err.value), str(err.value)
    assert "\n" not in str(err.value)


# --------------------------------------------------------------------------- csv: reading files
def test_csv_and_parquet_read_into_the_schema(tab):
    frame = table(40, 0)
    frame.loc[3, "score"] = np.nan  # an empty cell: read as the declared missing value
    frame.loc[5, "score"] = 12.5  # above the bound of a clipped column
    frame.to_csv(tab / "private.csv", index=False)
    bundle = csv_dataset(tab).load(AssetStore())
    assert list(bundle.private.columns) == ["age", "city", "score", "label"]  # row_id dropped
    assert len(bundle.private) == 40 and len(bundle.eval) == 30
    assert bundle.private.loc[3, "score"] == 0.0 and bundle.private.loc[5, "score"] == 10.0
    assert bundle.private["age"].tolist() == frame["age"].astype(float).tolist()
    assert bundle.private["city"].tolist() == frame["city"].tolist()
    frame.to_parquet(tab / "private.parquet")
    other = csv_dataset(tab, private=str(tab / "private.parquet")).load(AssetStore())
    pd.testing.assert_frame_equal(other.private, bundle.private)


def test_public_size_comes_from_the_schema_file_or_n_private(tab):
    store = AssetStore()
    assert csv_dataset(tab).private_size(store) == 40
    assert csv_dataset(tab, n_private=20).private_size(store) == 20
    assert len(csv_dataset(tab, n_private=20).load(store).private) == 20
    (tab / "schema.toml").write_text(SCHEMA.replace("size = 40\n", ""))
    with pytest.raises(ConfigError, match="declare size = N"):
        csv_dataset(tab).private_size(store)
    assert csv_dataset(tab, n_private=25).private_size(store) == 25


def test_schema_and_size_are_known_without_the_data_files(tab, tmp_path):
    """Nothing about the columns or N comes from the private file: both are known without it."""
    gone = {"private": str(tmp_path / "absent.csv"), "eval": str(tmp_path / "absent-too.csv")}
    dataset = csv_dataset(tab, **gone)
    assert dataset.schema == read_schema_file(tab / "schema.toml").schema
    assert dataset.private_size(AssetStore()) == 40
    images = image_dataset(tmp_path / "no-images")
    assert images.schema.shape == (8, 8, 1) and images.private_size(AssetStore()) == 24
    texts = text_dataset(tmp_path / "no-texts")
    assert texts.schema.label_names == ("positive", "negative")
    assert texts.private_size(AssetStore()) == 24
    with pytest.raises(ConfigError, match="absent.csv does not exist"):
        dataset.check(AssetStore())


def test_the_run_identity_follows_the_schema_and_revision_not_the_private_file(tab):
    before = csv_dataset(tab).version
    assert before == csv_dataset(tab).version and before.startswith("1+")
    # the version is published with every run: nothing about the private file may enter it,
    # not its bytes, not its size or time (a one-record change must not change it)
    table(41, 5).to_csv(tab / "private.csv", index=False)
    assert csv_dataset(tab).version == before
    assert csv_dataset(tab, revision=2).version != before
    assert csv_dataset(tab, revision="2").version == csv_dataset(tab, revision=2).version
    schema = (tab / "schema.toml").read_text()
    (tab / "schema.toml").write_text(schema + "\n# reviewed\n")
    assert csv_dataset(tab).version != before
    with pytest.raises(ConfigError, match="revision must be a string or an integer"):
        csv_dataset(tab, revision=[1])


def _bad_table(kind: str) -> pd.DataFrame:
    frame = table(40, 0)
    if kind == "missing-column":
        return frame.drop(columns=["city"])
    if kind == "extra-column":
        return frame.assign(colour="red")
    frame = frame.astype({"age": object, "city": object})
    if kind == "outside":
        frame.loc[7, "age"] = 130
    elif kind == "category":
        frame.loc[4, "city"] = "Marseille"
    elif kind == "empty":
        frame.loc[2, "city"] = None
    elif kind == "not-a-number":
        frame.loc[6, "age"] = "forty"
    return frame


BAD_TABLES = [
    ("missing-column", ["private.csv", "missing columns ['city']"]),
    ("extra-column", ["private.csv", "['colour']", "drop"]),
    ("outside", ["private.csv", "'age' row 7", "130", "[0, 100]"]),
    ("category", ["private.csv", "'city' row 4", "'Marseille'"]),
    ("empty", ["private.csv", "'city' row 2", "empty", "missing = "]),
    ("not-a-number", ["private.csv", "'age' row 6", "'forty'"]),
]


@pytest.mark.parametrize("kind,fragments", BAD_TABLES, ids=[b[0] for b in BAD_TABLES])
def test_a_table_that_breaks_the_schema_is_one_error(tab, kind, fragments):
    _bad_table(kind).to_csv(tab / "private.csv", index=False)
    with pytest.raises(SchemaError) as err:
        csv_dataset(tab).load(AssetStore())
    for frag in fragments:
        assert frag in str(err.value), str(err.value)


def test_the_private_file_must_hold_the_declared_size(tab):
    table(39, 0).to_csv(tab / "private.csv", index=False)
    with pytest.raises(SchemaError, match="holds 39 records, but size = 40"):
        csv_dataset(tab).load(AssetStore())


# --------------------------------------------------------------------------- csv: drafting
def test_a_drafted_schema_reads_back_and_describes_its_file(tab, tmp_path):
    frame = table(40, 0).drop(columns=["row_id"])
    text = draft_schema(frame, "public.csv", target="label")
    assert "READ FROM IT" in text and "REVIEW" in text
    path = tmp_path / "draft.toml"
    path.write_text(text)
    spec = read_schema_file(path)
    assert spec.schema.target == "label" and spec.size == 40
    age = spec.schema.column("age")
    assert age.integer and (age.lower, age.upper) == (frame.age.min(), frame.age.max())
    assert spec.schema.column("city").categories == tuple(sorted(set(frame.city)))
    assert spec.schema.column("score").integer is False
    spec.conform(frame, "public.csv")  # the drafted file conforms to its draft
    with pytest.raises(ConfigError, match="--target 'income'"):
        draft_schema(frame, "public.csv", target="income")


def snapshot(folder: Path) -> dict[str, tuple]:
    return {str(p.relative_to(folder)): (p.is_file() and p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*"))}


def test_schema_draft_warns_and_writes_a_reviewable_file(tab, tmp_path, capsys, monkeypatch):
    out = tmp_path / "draft.toml"
    code, stdout, err = run_in_process(capsys, monkeypatch, "schema", "draft", tab / "eval.csv",
                            "--target", "label", "--out", out)
    assert code == 0, err
    assert "warning:" in err and "not private" in err
    drafted = read_schema_file(out)
    assert "row_id" in drafted.schema.names  # the draft models what it sees; the user reviews
    before = out.read_bytes()
    code, _, err = run_in_process(capsys, monkeypatch, "schema", "draft", tab / "eval.csv", "--out", out)
    assert_one_error_line(code, err, "exists", "--force")
    assert out.read_bytes() == before
    code, stdout, err = run_in_process(capsys, monkeypatch, "schema", "draft", tab / "eval.csv")
    assert code == 0 and tomllib.loads(stdout)["size"] == 30 and "warning:" in err
    code, _, err = run_in_process(capsys, monkeypatch, "schema", "draft", tab / "nope.csv")
    assert_one_error_line(code, err, "nope.csv", "does not exist")


# --------------------------------------------------------------------------- images
CLASSES = ["circle", "square"]


def shape_image(kind: int, rng, size=(12, 10)) -> np.ndarray:
    h, w = size
    img = np.zeros((h, w, 3), np.uint8)
    yy, xx = np.mgrid[:h, :w]
    if kind == 0:
        img[(yy - h / 2) ** 2 + (xx - w / 2) ** 2 < (min(h, w) / 3) ** 2] = 255
    else:
        img[h // 4: 3 * h // 4, w // 4: 3 * w // 4] = 255
    return np.clip(img.astype(int) + rng.integers(0, 30, img.shape), 0, 255).astype(np.uint8)


def write_images(root: Path, per_class: int, seed: int) -> None:
    from PIL import Image

    rng = np.random.default_rng(seed)
    for label, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(shape_image(label, rng)).save(root / name / f"{i:03d}.png")


@pytest.fixture
def imgs(tmp_path):
    folder = tmp_path / "images"
    write_images(folder / "train", 12, 0)
    write_images(folder / "test", 8, 1)
    return folder


IMAGE_PARAMS = {"height": 8, "width": 8, "channels": 1, "classes": CLASSES, "size": 24}


def image_dataset(folder: Path, **params):
    return datasets.create("image-folder", **{"private": str(folder / "train"),
                                              "eval": str(folder / "test"), **IMAGE_PARAMS,
                                              **params})


def test_an_image_folder_loads_resized_as_the_image_methods_expect(imgs):
    from PIL import Image

    bundle = image_dataset(imgs).load(AssetStore())
    assert bundle.private.shape == (24, 8, 8, 1) and bundle.private.dtype == np.uint8
    assert bundle.eval.shape == (16, 8, 8, 1)
    assert bundle.private_labels.tolist() == [0] * 12 + [1] * 12
    first = Image.open(imgs / "train" / "circle" / "000.png").convert("L")
    expected = np.asarray(first.resize((8, 8), Image.Resampling.BICUBIC))
    assert np.array_equal(bundle.private[0, ..., 0], expected)
    rgb = image_dataset(imgs, channels=3, height=12, width=10).load(AssetStore())
    assert rgb.private.shape == (24, 12, 10, 3)  # declared at the files' size: not resized
    assert np.array_equal(rgb.private[0], np.asarray(Image.open(imgs / "train" / "circle" /
                                                                "000.png")))
    assert bundle.schema.label_names == tuple(CLASSES)


def _break_images(folder: Path, kind: str) -> None:
    train = folder / "train"
    if kind == "unknown-class":
        (train / "triangle").mkdir()
        (train / "square" / "000.png").rename(train / "triangle" / "000.png")
    elif kind == "empty-class":
        for p in (train / "square").iterdir():
            p.unlink()
    elif kind == "missing-class":
        for p in (train / "square").iterdir():
            p.unlink()
        (train / "square").rmdir()
    elif kind == "not-an-image":
        (train / "circle" / "notes.txt").write_text("hello")
    elif kind == "corrupt":
        (train / "circle" / "broken.png").write_bytes(b"\x89PNG not really")
    elif kind == "stray-file":
        (train / "readme.md").write_text("hello")


BAD_IMAGES = [
    ("unknown-class", ["unknown class folder 'triangle'", "['circle', 'square']"]),
    ("empty-class", ["square", "empty"]),
    ("missing-class", ["no folder for class 'square'"]),
    ("not-an-image", ["notes.txt", "not an image file"]),
    ("corrupt", ["broken.png", "cannot be read as an image"]),
    ("stray-file", ["readme.md", "outside the class folders"]),
]


@pytest.mark.parametrize("kind,fragments", BAD_IMAGES, ids=[b[0] for b in BAD_IMAGES])
def test_a_bad_image_folder_is_one_error(imgs, kind, fragments):
    _break_images(imgs, kind)
    with pytest.raises(SchemaError) as err:
        image_dataset(imgs, size=None, n_private=10).load(AssetStore())
    for frag in fragments:
        assert frag in str(err.value), str(err.value)


def test_bad_image_parameters_are_config_errors(imgs):
    for bad, fragment in (({"channels": 2}, "channels"), ({"classes": []}, "classes"),
                          ({"classes": ["a", "a"]}, "more than once"),
                          ({"classes": ["a/b", "c"]}, "folder names"),
                          ({"size": None}, None)):
        if fragment is None:  # no size and no n_private: N is unknown
            with pytest.raises(ConfigError, match="size = N"):
                image_dataset(imgs, **bad).private_size(AssetStore())
            continue
        with pytest.raises(ConfigError, match=fragment):
            image_dataset(imgs, **bad)


# --------------------------------------------------------------------------- texts
GOOD_WORDS = ("great", "lovely", "superb", "fine", "tasty")
BAD_WORDS = ("awful", "bland", "dull", "cold", "salty")


def reviews(n: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        label = "positive" if i % 2 == 0 else "negative"
        words = rng.choice(GOOD_WORDS if label == "positive" else BAD_WORDS, 5)
        out.append({"text": "the soup was " + " and ".join(words), "sentiment": label})
    return out


def write_jsonl(path: Path, items: list[dict]) -> None:
    path.write_text("".join(json.dumps(item) + "\n" for item in items))


@pytest.fixture
def txt(tmp_path):
    folder = tmp_path / "texts"
    folder.mkdir()
    write_jsonl(folder / "train.jsonl", reviews(24, 0))
    write_jsonl(folder / "test.jsonl", reviews(16, 1))
    return folder


TEXT_PARAMS = {"label_column": "sentiment", "labels": ["positive", "negative"],
               "domain": "restaurant review", "max_words": 12, "size": 24}


def text_dataset(folder: Path, private="train.jsonl", eval_="test.jsonl", **params):
    return datasets.create("text-file", **{"private": str(folder / private),
                                           "eval": str(folder / eval_), **TEXT_PARAMS, **params})


def test_a_text_file_loads_with_public_labels_and_prompts(txt):
    bundle = text_dataset(txt).load(AssetStore())
    items = reviews(24, 0)
    assert len(bundle.private) == 24 and len(bundle.eval) == 16
    assert bundle.private_labels.tolist() == [0, 1] * 12
    assert bundle.private[0] == " ".join(items[0]["text"].split()[:12])  # cut to max_words
    assert bundle.schema.describe(1) == "a negative restaurant review"
    pd.DataFrame(items).to_csv(txt / "train.csv", index=False)
    from_csv = text_dataset(txt, private="train.csv").load(AssetStore())
    assert from_csv.private == bundle.private
    assert from_csv.private_labels.tolist() == bundle.private_labels.tolist()
    plain = text_dataset(txt, label_column=None, labels=None).load(AssetStore())
    assert plain.schema.label_names == ("restaurant review",) and set(plain.private_labels) == {0}
    assert plain.schema.describe(0) == "a restaurant review"


BAD_TEXTS = [
    ("label", lambda items: items[3].update(sentiment="neutral"),
     ["line 4", "label 'neutral'", "['positive', 'negative']"]),
    ("missing-key", lambda items: items[2].pop("sentiment"), ["line 3", "missing ['sentiment']"]),
    ("empty-text", lambda items: items[5].update(text="  "), ["line 6", "empty"]),
    ("not-a-string", lambda items: items[1].update(text=5), ["line 2", "not a string"]),
]


@pytest.mark.parametrize("kind,edit,fragments", BAD_TEXTS, ids=[b[0] for b in BAD_TEXTS])
def test_a_bad_text_file_is_one_error(txt, kind, edit, fragments):
    items = reviews(24, 0)
    edit(items)
    write_jsonl(txt / "train.jsonl", items)
    with pytest.raises(SchemaError) as err:
        text_dataset(txt).load(AssetStore())
    for frag in ["train.jsonl", *fragments]:
        assert frag in str(err.value), str(err.value)


def test_bad_text_lines_and_columns(txt):
    (txt / "train.jsonl").write_text('{"text": "ok", "sentiment": "positive"}\nnot json\n')
    with pytest.raises(SchemaError, match="line 2: not JSON"):
        text_dataset(txt, size=None, n_private=2).load(AssetStore())
    pd.DataFrame(reviews(24, 0)).rename(columns={"text": "body"}).to_csv(txt / "t.csv",
                                                                          index=False)
    with pytest.raises(SchemaError, match=r"missing columns \['text'\]"):
        text_dataset(txt, private="t.csv").load(AssetStore())
    with pytest.raises(ConfigError, match="labels"):
        text_dataset(txt, labels=None)
    with pytest.raises(ConfigError, match="label_prompt"):
        text_dataset(txt, label_prompt="no placeholder")


# --------------------------------------------------------------------------- through the CLI
TABLE_SECTION = """
[[section]]
name = "mine"
dataset = "csv"
dataset_params = {{ schema = "{root}/schema.toml", private = "{root}/private.csv", eval = "{root}/eval.csv" }}
n_samples = 40
metrics = ["histogram-intersection", "pair-histogram-intersection"]
methods = [{{ name = "independent-marginals" }}, {{ name = "uniform" }}]
"""
IMAGE_SECTION = """
[[section]]
name = "shapes"
dataset = "image-folder"
dataset_params = {{ private = "{root}/train", eval = "{root}/test", height = 8, width = 8, channels = 1, classes = ["circle", "square"], size = 24 }}
n_samples = 20
metrics = ["downstream-accuracy"]
methods = [{{ name = "dp-merf", params = {{ steps = 20 }} }}, {{ name = "real" }}]
"""
TEXT_SECTION = """
[[section]]
name = "soup"
dataset = "text-file"
dataset_params = {{ private = "{root}/train.jsonl", eval = "{root}/test.jsonl", label_column = "sentiment", labels = ["positive", "negative"], domain = "restaurant review", max_words = 12, size = 24 }}
n_samples = 10
metrics = ["downstream-accuracy"]
methods = [{{ name = "public-only", params = {{ api = "llm-text", api_params = {{ llm = "tiny", mode = "mixed", max_new_tokens = 12 }} }} }}, {{ name = "real" }}]
"""


def write_suite(path: Path, section: str, root: Path) -> Path:
    path.write_text('name = "mine"\nseeds = [0]\nepsilons = [4.0]\ndelta = 1e-5\n'
                    + section.format(root=root))
    return path


BAD_RUNS = [  # (fixture, how to break it, section, fragments of the error line)
    ("tab", lambda f: _bad_table("missing-column").to_csv(f / "private.csv", index=False),
     TABLE_SECTION, ["section 'mine'", "missing columns ['city']"]),
    ("tab", lambda f: _bad_table("outside").to_csv(f / "private.csv", index=False),
     TABLE_SECTION, ["'age' row 7", "outside the public bounds"]),
    ("tab", lambda f: _bad_table("category").to_csv(f / "eval.csv", index=False),
     TABLE_SECTION, ["eval.csv", "'city'", "'Marseille'"]),
    ("tab", lambda f: (f / "schema.toml").write_text(SCHEMA.replace("upper = 100", "upper = ")),
     TABLE_SECTION, ["schema.toml", "invalid TOML"]),
    ("tab", lambda f: (f / "schema.toml").write_text(SCHEMA.replace("lower = 0\n", "", 1)),
     TABLE_SECTION, ["column 'age'", "needs 'lower'"]),
    ("tab", lambda f: (f / "private.csv").unlink(), TABLE_SECTION,
     ["private file", "private.csv", "does not exist"]),
    ("imgs", lambda f: _break_images(f, "unknown-class"), IMAGE_SECTION,
     ["section 'shapes'", "unknown class folder 'triangle'"]),
    ("imgs", lambda f: _break_images(f, "empty-class"), IMAGE_SECTION, ["square", "empty"]),
    ("imgs", lambda f: _break_images(f, "not-an-image"), IMAGE_SECTION,
     ["notes.txt", "not an image"]),
    ("txt", lambda f: write_jsonl(f / "train.jsonl", [*reviews(23, 0), {"text": "meh",
                                                                       "sentiment": "so-so"}]),
     TEXT_SECTION, ["section 'soup'", "line 24", "label 'so-so'"]),
]


@pytest.mark.parametrize("case", BAD_RUNS, ids=[f"{c[0]}-{i}" for i, c in enumerate(BAD_RUNS)])
def test_a_bad_file_stops_dparena_run_with_one_line_and_writes_nothing(
        request, tmp_path, capsys, monkeypatch, case):
    fixture, breaker, section, fragments = case
    folder = request.getfixturevalue(fixture)
    suite = write_suite(tmp_path / "suite.toml", section, folder)
    breaker(folder)
    monkeypatch.chdir(tmp_path)
    before = snapshot(tmp_path)
    code, _, err = run_in_process(capsys, monkeypatch, "run", suite, "--db", tmp_path / "out" / "runs.sqlite")
    assert_one_error_line(code, err, *fragments)
    assert snapshot(tmp_path) == before  # no store, no artifacts, no leaderboard


def finished_runs(db: Path) -> list[tuple[str, str, str]]:
    with sqlite3.connect(db) as con:
        return con.execute("SELECT label, status, artifact FROM runs ORDER BY label").fetchall()


def stored_value(db: Path, artifact: str, name: str) -> float:
    """The metric value the run recorded for the run that wrote ``artifact``."""
    with sqlite3.connect(db) as con:
        [(value,)] = con.execute("SELECT m.value FROM metric_values m JOIN runs r ON r.key = m.key "
                                 "WHERE r.artifact = ? AND m.name = ?", (artifact, name)).fetchall()
    return value


def params_options(params: dict) -> list[str]:
    out = []
    for key, value in params.items():
        out += ["--dataset-param", f"{key}={json.dumps(value) if not isinstance(value, str) else value}"]
    return out


def score(capsys, monkeypatch, dataset, params, synthetic, metric):
    code, out, err = run_in_process(capsys, monkeypatch, "score", "--dataset", dataset,
                         *params_options(params), "--synthetic", synthetic, "--metric", metric,
                         "--json")
    assert code == 0, err
    return {v["name"]: v["value"] for v in json.loads(out)}


def test_your_table_runs_end_to_end(tab, tmp_path, capsys, monkeypatch):
    suite = write_suite(tmp_path / "suite.toml", TABLE_SECTION, tab)
    db = tmp_path / "out" / "runs.sqlite"
    result = dparena("run", suite, "--db", db, "--strict", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    runs = finished_runs(db)
    assert [(label, status) for label, status, _ in runs] == [
        ("independent-marginals", "ok"), ("uniform", "ok")]
    assert "csv(eval=" in (tmp_path / "out" / "leaderboard.md").read_text()
    again = dparena("run", suite, "--db", db, cwd=tmp_path)
    assert "2 already done" in again.stderr  # same files, same runs
    params = {"schema": str(tab / "schema.toml"), "private": str(tab / "private.csv"),
              "eval": str(tab / "eval.csv")}
    values = score(capsys, monkeypatch, "csv", params, runs[0][2], "histogram-intersection")
    assert 0.5 < values["histogram-intersection"] <= 1.0
    # dparena score on the run's artifact gives the value the run recorded
    assert values["histogram-intersection"] == pytest.approx(
        stored_value(db, runs[0][2], "histogram-intersection"))
    # the eval split scored against itself is the perfect score
    own = tmp_path / "own.csv"
    pd.read_csv(tab / "eval.csv").drop(columns=["row_id"]).to_csv(own, index=False)
    assert score(capsys, monkeypatch, "csv", params, own,
                 "histogram-intersection")["histogram-intersection"] == pytest.approx(1.0)


@pytest.mark.slow
def test_your_image_folder_runs_end_to_end(imgs, tmp_path, capsys, monkeypatch):
    suite = write_suite(tmp_path / "suite.toml", IMAGE_SECTION, imgs)
    db = tmp_path / "out" / "runs.sqlite"
    result = dparena("run", suite, "--db", db, "--strict", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    runs = finished_runs(db)
    assert [(label, status) for label, status, _ in runs] == [("dp-merf", "ok"), ("real", "ok")]
    params = {"private": str(imgs / "train"), "eval": str(imgs / "test"), **IMAGE_PARAMS}
    real = score(capsys, monkeypatch, "image-folder", params, runs[1][2], "downstream-accuracy")
    assert real["downstream-accuracy"] >= 0.9  # circles and squares: the real images separate them
    merf = score(capsys, monkeypatch, "image-folder", params, runs[0][2], "downstream-accuracy")
    assert merf["downstream-accuracy"] == pytest.approx(
        stored_value(db, runs[0][2], "downstream-accuracy"))  # the value the run recorded


@pytest.mark.slow
def test_your_text_file_runs_end_to_end(txt, tmp_path, capsys, monkeypatch):
    suite = write_suite(tmp_path / "suite.toml", TEXT_SECTION, txt)
    db = tmp_path / "out" / "runs.sqlite"
    result = dparena("run", suite, "--db", db, "--strict", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    runs = finished_runs(db)
    assert [(label, status) for label, status, _ in runs] == [("public-only", "ok"),
                                                              ("real", "ok")]
    params = {"private": str(txt / "train.jsonl"), "eval": str(txt / "test.jsonl"), **TEXT_PARAMS}
    real = score(capsys, monkeypatch, "text-file", params, runs[1][2], "downstream-accuracy")
    assert real["downstream-accuracy"] >= 0.9  # the real reviews' words give the label away
    public = score(capsys, monkeypatch, "text-file", params, runs[0][2], "downstream-accuracy")
    assert public["downstream-accuracy"] == pytest.approx(
        stored_value(db, runs[0][2], "downstream-accuracy"))  # the value the run recorded


# --------------------------------------------------------------------------- airline
AIRLINE = ROOT / "benchmarks" / "schemas" / "airline.toml"
AIRLINE_HEADER = ["", "id", "Gender", "Customer Type", "Age", "Type of Travel", "Class",
                  "Flight Distance", "Inflight wifi service", "Departure/Arrival time convenient",
                  "Ease of Online booking", "Gate location", "Food and drink", "Online boarding",
                  "Seat comfort", "Inflight entertainment", "On-board service",
                  "Leg room service", "Baggage handling", "Checkin service", "Inflight service",
                  "Cleanliness", "Departure Delay in Minutes", "Arrival Delay in Minutes",
                  "satisfaction"]


def test_the_airline_schema_reads_the_kaggle_layout(tmp_path):
    spec = read_schema_file(AIRLINE)
    assert spec.size == 103_904 and spec.schema.target == "satisfaction"
    assert len(spec.schema.columns) == 23 and spec.drop == ("Unnamed: 0", "id")
    ratings = [c for c in spec.schema.columns if isinstance(c, Numeric) and c.upper == 5]
    assert len(ratings) == 14 and all(c.lower == 0 and c.integer for c in ratings)
    # two made-up rows in the files' layout (a saved index, id, the 23 columns)
    rows = [[0, 70172, "Male", "Loyal Customer", 13, "Personal Travel", "Eco Plus", 460,
             *[3] * 14, 25, 18.0, "neutral or dissatisfied"],
            [1, 5047, "Female", "disloyal Customer", 25, "Business travel", "Business", 235,
             *[0, 1, 2, 3, 4, 5, 1, 2, 3, 4, 5, 1, 2, 3], 2000, "", "satisfied"]]
    path = tmp_path / "train.csv"
    pd.DataFrame(rows, columns=AIRLINE_HEADER).to_csv(path, index=False)
    frame = spec.conform(read_table_file(path), str(path))
    assert list(frame.columns) == spec.schema.names
    assert frame["Departure Delay in Minutes"].tolist() == [25, 1440]  # clipped to the public cap
    assert frame["Arrival Delay in Minutes"].tolist() == [18, 0]  # the declared fill


def test_the_paper_suite_runs_airline_from_the_users_download(tmp_path, capsys, monkeypatch):
    if (ROOT / "data" / "airline" / "train.csv").exists():
        pytest.skip("the airline files are present: the section would run")
    monkeypatch.chdir(ROOT)
    suite = load_suite(ROOT / "benchmarks" / "suites" / "paper-dp2stage.toml")
    airline = [s for s in suite.specs if s.section == "airline"]
    assert airline and {s.dataset for s in airline} == {"csv"}
    assert {s.n_samples for s in airline} == {103_904}  # n_samples = "private": the declared N
    db = tmp_path / "runs.sqlite"
    code, _, err = run_in_process(capsys, monkeypatch, "run", ROOT / "benchmarks/suites/paper-dp2stage.toml",
                       "--db", db, "--only", "section=airline")
    assert_one_error_line(code, err, "data/airline/train.csv", "kaggle.com/datasets/teejmahal20", "--only")
    assert not db.exists() and not list(tmp_path.iterdir())
