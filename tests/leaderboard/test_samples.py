"""Samples beside the leaderboards (``leaderboard/samples.py``): each row's first-seed grid, texts
or rows, written by ``write_leaderboards`` into ``samples/`` and shown in the HTML and Markdown;
a non-private reference's only for a dataset whose records are public.

One tiny suite on real data (Adult, MNIST, Rotten Tomatoes) and on the user's own files (a CSV
table, a text file) is run once for the module and published; the tests read what it wrote.
"""

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import tests.plugins  # noqa: F401 - registers test-copy-texts, test-raise, test-overspend
from dparena.harness.runner import Runner
from dparena.harness.store import Store, StoredRun
from dparena.harness.suite import load_suite
from dparena.io import read_parquet
from dparena.leaderboard import samples
from dparena.leaderboard.aggregate import build_tables
from dparena.leaderboard.publish import write_leaderboards
from dparena.methods import methods
from dparena.methods.baselines.marginals import IndependentMarginals

EVIL = "<script>alert(1)</script>"


if "test-fail-seed0" not in methods:
    @methods.register("test-fail-seed0")
    class FailsOnSeedZero(IndependentMarginals):
        """Independent marginals that raise on seed 0: its samples must come from seed 1."""

        def generate(self, task, ledger):
            if task.seed == 0:
                raise RuntimeError("deliberate failure on seed 0")
            return super().generate(task, ledger)


SCHEMA = """
target = "label"
size = 30

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
name = "label"
kind = "categorical"
categories = ["no", "yes"]
"""

SUITE = """
name = "samples"
seeds = [0, 1]
epsilons = [1.0]
delta = 1e-5

[[section]]
name = "adult"
dataset = "adult"
dataset_params = {{ n_private = 300, n_eval = 300 }}
n_samples = 40
metrics = ["histogram-intersection"]
methods = [{{ name = "independent-marginals" }}, {{ name = "real" }}, {{ name = "test-raise" }},
           {{ name = "test-overspend" }}, {{ name = "test-fail-seed0" }}]

[[section]]
name = "mnist"
dataset = "mnist"
dataset_params = {{ n_private = 400, n_eval = 50 }}
n_samples = 60
seeds = [0]
metrics = []
methods = [{{ name = "dp-merf", params = {{ steps = 5, n_features = 100, hidden = [20] }} }},
           {{ name = "real" }}]

[[section]]
name = "rt"
dataset = "rotten-tomatoes"
dataset_params = {{ n_private = 100, n_eval = 20 }}
n_samples = 10
seeds = [0]
metrics = []
methods = [{{ name = "real" }}]

[[section]]
name = "mine"
dataset = "csv"
dataset_params = {{ schema = "{root}/schema.toml", private = "{root}/private.csv", eval = "{root}/eval.csv" }}
n_samples = 20
seeds = [0]
metrics = ["histogram-intersection"]
methods = [{{ name = "independent-marginals" }}, {{ name = "real" }}]

[[section]]
name = "notes"
dataset = "text-file"
dataset_params = {{ private = "{root}/private.jsonl", eval = "{root}/eval.jsonl", label_column = "tone", labels = ["calm", "loud"], domain = "note", max_words = 100, size = 12 }}
n_samples = 8
seeds = [0]
metrics = []
methods = [{{ name = "test-copy-texts" }}, {{ name = "real" }}]
"""


def _user_files(root: Path) -> pd.DataFrame:
    """The user's private table (returned, to look for its rows later), eval table and texts."""
    rng = np.random.default_rng(7)
    frames = []
    for n, name in ((30, "private"), (20, "eval")):
        frame = pd.DataFrame({"age": rng.integers(18, 90, n), "city": rng.choice(
            ["Lyon", "Nice", "Paris"], n), "label": rng.choice(["no", "yes"], n)})
        frame.to_csv(root / f"{name}.csv", index=False)
        frames.append(frame)
    (root / "schema.toml").write_text(SCHEMA)
    for n, name in ((12, "private"), (6, "eval")):
        with open(root / f"{name}.jsonl", "w") as fh:
            for i in range(n):  # every text a script tag and longer than the 300 shown
                text = f"{EVIL} note {i} " + " ".join(["quite"] * 70)
                fh.write(json.dumps({"text": text, "tone": ["calm", "loud"][i % 2]}) + "\n")
    return frames[0]


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    root = tmp_path_factory.mktemp("samples")
    data = root / "data"
    data.mkdir()
    private_table = _user_files(data)
    (root / "suite.toml").write_text(SUITE.format(root=data))
    store = Store(root / "out" / "runs.sqlite")
    Runner(store).run(load_suite(root / "suite.toml").specs)
    folder = root / "out"
    write_leaderboards(store, folder)
    return {"store": store, "folder": folder, "private_table": private_table,
            "html": (folder / "leaderboard.html").read_text(),
            "md": (folder / "leaderboard.md").read_text(),
            "shown": samples.write_samples(store.runs(), root / "again",
                                           store.artifacts)}


def _runs(published, **match):
    return [r for r in published["store"].runs()
            if all(getattr(r, k) == v for k, v in match.items())]


def _shown(published, dataset, label):
    found = [s for s in published["shown"] if s.dataset.startswith(dataset)
             and s.label == label]
    assert len(found) <= 1
    return found[0] if found else None


def _files(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.suffix in (".png", ".md",
                                                                                ".html")}


# ------------------------------------------------------------------ what must never be shown
def _section(html: str, dataset: str) -> str:
    """The HTML of the first leaderboard section whose dataset starts with ``dataset``."""
    return next(part for part in html.split("<section class='board'")[1:]
                if part.split("<h2>", 1)[1].startswith(dataset))


def _sample_html(section: str, caption: str) -> str:
    """The inside of one sample's block (after its heading)."""
    return section.split(f"<div class='sample'><h4>{caption}</h4>", 1)[1].split("</div>", 1)[0]


def test_the_users_real_rows_are_withheld(published):
    assert [r.status for r in _runs(published, dataset="csv", method="real")] == ["ok"]
    real = _shown(published, "csv(", "real")
    assert real is not None and not real.rows and not real.grid and not real.texts
    assert real.why_none == ("withheld: real is a non-private reference whose output may hold "
                             "records of the private split, and csv is not a public dataset")
    inside = _sample_html(_section(published["html"], "csv("), "real (seed 0)")
    assert inside == f"<p class='withheld'>{real.why_none}</p>"
    page = next(p.read_text() for p in (published["folder"] / "samples").glob("csv*.md"))
    block = page.split("## real (seed 0)\n", 1)[1].split("\n## ", 1)[0]
    assert block.strip() == real.why_none and "|" not in block
    # the DP method's rows of the same table are shown, in both formats
    marg = _shown(published, "csv(", "independent-marginals")
    assert len(marg.rows) == samples.N_ROWS and marg.columns == ("age", "city", "label")
    assert "<table><thead><tr><th>age</th><th>city</th><th>label</th>" in _sample_html(
        _section(published["html"], "csv("), "independent-marginals (seed 0)")
    assert "| age | city | label |" in page


def test_the_users_real_texts_are_withheld_and_dp_texts_are_escaped(published):
    assert _shown(published, "text-file(", "real").why_none.startswith("withheld")
    copied = _shown(published, "text-file(", "test-copy-texts")
    assert len(copied.texts) == samples.N_TEXTS
    assert all(len(t) <= samples.TEXT_CHARS and t.endswith("…") for _, t in copied.texts)
    assert {k for k, _ in copied.texts} <= {"calm", "loud"}
    html, md = published["html"], published["md"]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert EVIL not in html and "<script>alert" not in html
    page = next(p for p in (published["folder"] / "samples").glob("*.md")
                if "test-copy-texts" in p.read_text())
    assert "&lt;script&gt;" in page.read_text() and "<script>" not in page.read_text()
    assert "<script>" not in md


def test_failed_and_invalid_runs_contribute_nothing(published):
    assert all(r.status == "failed" for r in _runs(published, method="test-raise"))
    assert all(r.status == "invalid" for r in _runs(published, method="test-overspend"))
    for label in ("test-raise", "test-overspend"):
        assert _shown(published, "adult(", label) is None
        assert label not in "".join(p.name for p in (published["folder"] / "samples").iterdir())
        assert f"<h4>{label}" not in published["html"]
    # a row with a failed seed 0 shows its seed 1
    fails = _shown(published, "adult(", "test-fail-seed0")
    assert fails.seed == 1 and len(fails.rows) == samples.N_ROWS
    assert "<h4>test-fail-seed0 (seed 1)</h4>" in published["html"]


def test_a_reference_on_an_unknown_dataset_or_without_artifact_shows_nothing(tmp_path):
    runs = [StoredRun(key="r", dataset="toy", method="real", label="real", status="ok",
                      is_dp=False, seed=0, artifact=str(tmp_path / "r.parquet")),
            # a store that says DP for a method whose class says otherwise: not trusted
            StoredRun(key="u", dataset="toy", method="uniform", label="uniform", status="ok",
                      is_dp=True, epsilon=1.0, seed=0, artifact=str(tmp_path / "u.parquet")),
            StoredRun(key="m", dataset="toy", method="independent-marginals", label="m",
                      status="ok", epsilon=1.0, seed=0, artifact=None)]
    pd.DataFrame({"a": [1.0, 2.0]}).to_parquet(tmp_path / "r.parquet")
    pd.DataFrame({"a": [1.0, 2.0]}).to_parquet(tmp_path / "u.parquet")
    got = {s.label: s for s in samples.write_samples(runs, tmp_path)}
    assert got["real"].why_none.startswith("withheld") and not got["real"].rows
    assert got["uniform"].why_none.startswith("withheld") and not got["uniform"].rows
    assert got["m"].why_none.startswith("no samples: the run's artifact is not there")
    assert not (tmp_path / "samples").exists()


# ------------------------------------------------------------------ what is shown
def test_dp_rows_are_shown_from_the_first_seed(published):
    for dataset in ("adult(", "csv("):
        marg = _shown(published, dataset, "independent-marginals")
        assert marg.seed == 0 and not marg.why_none and not marg.note
        [run] = _runs(published, method="independent-marginals", seed=0, dataset=dataset[:-1])
        frame = read_parquet(run.artifact)
        spread = frame.iloc[samples.spread(len(frame), samples.N_ROWS)]
        assert marg.columns == tuple(frame.columns)
        assert marg.rows == tuple(tuple(samples._value(v) for v in row)
                                  for row in spread.itertuples(index=False, name=None))
    adult = _shown(published, "adult(", "independent-marginals")
    assert adult.columns[-1] == "income" and len(adult.columns) == 15
    cell = re.escape(f"<td>{adult.rows[0][0]}</td>")
    assert re.search(cell, published["html"])


def test_samples_are_spread_over_the_output_not_its_first_records(tmp_path):
    # a generator that returns its rows grouped (OpenDP's MST and AIM write them clique by
    # clique) must not be judged by its first few rows: the shown ones span the whole output
    assert samples.spread(100, 5) == [0, 25, 50, 74, 99]
    assert samples.spread(3, 5) == [0, 1, 2] and samples.spread(0, 5) == []
    assert samples.spread(6, 5) == [0, 1, 2, 4, 5]  # distinct, first and last always in
    path = tmp_path / "sorted.parquet"
    pd.DataFrame({"i": range(1000), "g": ["a"] * 500 + ["b"] * 500}).to_parquet(path)
    base = {"dataset": "toy", "label": "m", "epsilon": 1.0}
    got = samples._rows(path, base, "")
    assert [r[0] for r in got.rows] == ["0", "250", "500", "749", "999"]
    assert {r[1] for r in got.rows} == {"a", "b"}
    texts = tmp_path / "texts.jsonl"
    texts.write_text("".join(json.dumps({"text": f"t{i}"}) + "\n" + ("\n" if i % 2 else "")
                             for i in range(40)))
    shown = samples._texts(_run_without_classes(), texts, base, "")
    assert [t for _, t in shown.texts] == ["t0", "t10", "t20", "t29", "t39"]


def _run_without_classes():
    from types import SimpleNamespace

    return SimpleNamespace(dataset="toy", dataset_params={}, info={})


def test_real_records_of_a_public_dataset_are_shown_and_labelled(published):
    for dataset in ("adult(", "mnist(", "rotten-tomatoes("):
        real = _shown(published, dataset, "real")
        assert not real.why_none and real.note.startswith("real records from the private split")
        assert "public dataset" in real.note
    rt = _shown(published, "rotten-tomatoes(", "real")
    [run] = _runs(published, dataset="rotten-tomatoes", method="real")
    with open(run.artifact) as fh:
        records = [json.loads(line) for line in fh]
    shown = [records[i] for i in samples.spread(len(records), samples.N_TEXTS)]
    names = ("fresh", "rotten")
    assert rt.texts == tuple((names[x["label"]], samples.shorten(x["text"])) for x in shown)
    assert "real records from the private split, shown because adult is a public dataset" in (
        published["html"])


def test_image_grids_have_a_row_per_class_and_are_in_the_pages(published):
    folder = published["folder"]
    for label in ("dp-merf", "real"):
        shown = _shown(published, "mnist(", label)
        assert shown.grid.startswith("samples/") and shown.grid.endswith(".png")
        with Image.open(folder / shown.grid) as png:
            # 10 classes of 28x28 MNIST digits: a label column of 80 px, 10 images a row, 2 px gaps
            assert png.size == (80 + 10 * (28 + 2) + 2, 2 + 10 * (28 + 2))
        assert f"<img class='grid' src='{shown.grid}'" in published["html"]
        assert f"]({shown.grid})" in published["md"]
    md_pages = [p.name for p in (folder / "samples").glob("*.md")]
    assert any(f"[samples page](samples/{name})" in published["md"] for name in md_pages)


def test_the_grid_puts_each_class_on_its_row(tmp_path):
    """Three classes of 8x8 images (scaled x4 to 32 px): class k's j-th image at row k, column j,
    at most 10 a class, white where a class has fewer."""
    values = {0: [10 * j for j in range(12)], 1: [200], 2: []}
    images, labels = [], []
    for k, vs in values.items():
        for v in vs:
            images.append(np.full((8, 8, 1), v, dtype=np.uint8))
            labels.append(k)
    png = samples.grid_png(np.stack(images), np.asarray(labels), ("zero", "one", "two"))
    assert png.size == (80 + 10 * (32 + 2) + 2, 2 + 3 * (32 + 2))
    pixels = np.asarray(png)

    def centre(k, j):
        return pixels[2 + k * 34 + 16, 80 + 2 + j * 34 + 16]

    assert [int(centre(0, j)[0]) for j in range(10)] == [10 * j for j in range(10)]
    assert int(centre(1, 0)[0]) == 200 and (centre(1, 1) == 255).all()
    assert (centre(2, 0) == 255).all()
    for k in range(3):  # each class name is drawn in the label column of its row
        assert (pixels[2 + k * 34: 2 + k * 34 + 32, 2:78] < 128).any(), k
    assert (pixels[2:, :2] == 255).all()  # and nothing left of it


def test_publishing_again_gives_identical_files_and_drops_stale_ones(published):
    folder = published["folder"]
    before = _files(folder)
    assert any(name.endswith(".png") for name in before)
    (folder / "samples" / "old-run-0123abcd.png").write_bytes(b"not ours any more")
    (folder / "samples" / "my-notes.md").write_text("a file of the user's, not ours")
    write_leaderboards(published["store"], folder)
    assert not (folder / "samples" / "old-run-0123abcd.png").exists()
    assert (folder / "samples" / "my-notes.md").read_text() == "a file of the user's, not ours"
    (folder / "samples" / "my-notes.md").unlink()
    assert _files(folder) == before
    tables = build_tables(published["store"].runs())
    pages = {samples.page_name(t) for t in tables if samples.samples_of(t, published["shown"])}
    assert {f"samples/{p.name}" for p in (folder / "samples").glob("*.md")} == pages


# ------------------------------------------------------------------ what counts as public
def test_only_the_published_records_of_a_public_dataset_count_as_public():
    from dparena.datasets import datasets
    from dparena.datasets.adult import Adult

    yelp, adult = datasets.get("yelp"), datasets.get("adult")
    assert yelp.records_public({"n_private": 100})
    # the same class pointed at another hub dataset: those records are not the published ones
    assert not yelp.records_public({"hub_id": "me/private-tickets"})
    assert adult.records_public({"n_private": 300, "split": "dp2stage"})

    class MyAdultFiles(Adult):  # a plugin reading its own rows through Adult's code
        pass

    assert not MyAdultFiles.records_public({})
    assert not datasets.get("csv").records_public({})


def test_a_row_the_audit_rejects_is_withheld_on_a_users_dataset(published):
    runs = published["store"].runs()
    tables = build_tables(runs)
    leaky = [row for t in tables if t.dataset.startswith("text-file(") for row in t.rows
             if row.label == "test-copy-texts"]
    assert leaky and all(row.status == "ok" for row in leaky)
    shown = {s.label: s for s in samples.write_samples(runs, Path("/nonexistent"),
                                                       published["store"].artifacts, tables)
             if s.dataset.startswith("text-file(")}
    assert shown["test-copy-texts"].texts  # a DP claim the audit has not doubted: shown
    for row in leaky:
        row.audit_failed = True
    again = {s.label: s for s in samples.write_samples(runs, Path("/nonexistent"),
                                                       published["store"].artifacts, tables)
             if s.dataset.startswith("text-file(")}
    assert again["test-copy-texts"].why_none.startswith("withheld: the privacy audit")
    assert not again["test-copy-texts"].texts


def test_rows_that_no_table_shows_as_ok_write_no_file(published, tmp_path):
    runs = published["store"].runs()
    tables = build_tables(runs)
    for table in tables:  # every row INVALID: nothing may be written, not even for a moment
        for row in table.rows:
            row.status = "invalid"
    assert samples.write_samples(runs, tmp_path, published["store"].artifacts, tables) == []
    assert not (tmp_path / "samples").exists()


def test_generated_text_is_inert_in_the_markdown_pages(tmp_path):
    from dparena.leaderboard.render import samples_markdown

    text = "see [here](http://x.example) ![img](http://y.example/a.png) *loud* `code`"
    runs = [StoredRun(key="t", dataset="rotten-tomatoes", method="independent-marginals",
                      label="m", status="ok", is_dp=True, epsilon=1.0, seed=0,
                      artifact=str(tmp_path / "t.jsonl"))]
    (tmp_path / "t.jsonl").write_text(json.dumps({"text": text, "label": 0}) + "\n"
                                      + json.dumps({"text": "", "label": 1}) + "\n")
    got = samples.write_samples(runs, tmp_path)
    tables = build_tables(runs)
    page = samples_markdown(tables[0], got)
    assert "](http" not in page and "![" not in page and "*loud*" not in page
    assert "\\[here\\]\\(http://x.example\\)" in page


def test_an_artifact_without_records_says_so(tmp_path):
    pd.DataFrame({"a": pd.Series([], dtype=float)}).to_parquet(tmp_path / "e.parquet")
    runs = [StoredRun(key="e", dataset="adult", method="independent-marginals", label="m",
                      status="ok", is_dp=True, epsilon=1.0, seed=0,
                      artifact=str(tmp_path / "e.parquet"))]
    (got,) = samples.write_samples(runs, tmp_path)
    assert got.why_none == "no samples: the run returned no records" and not got.rows
