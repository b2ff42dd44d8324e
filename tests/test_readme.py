"""The README is the front door: short, the two commands first, links that resolve, and a front
table that is what `make publish` generates from the committed results."""

import math
import re
from pathlib import Path

import pytest

from dparena.harness.store import StoredRun, StoredValue
from dparena.leaderboard import publish
from dparena.leaderboard.aggregate import build_tables
from dparena.leaderboard.render import to_markdown
from tests.paths import ROOT

README = ROOT / "README.md"


def test_the_readme_is_short_and_starts_with_the_two_commands():
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 150
    first_block = re.search(r"```bash\n(.*?)```", text, re.S).group(1)
    commands = [line.split("#")[0].strip() for line in first_block.splitlines() if line.strip()]
    assert commands == ["make demo", "make test"]


def _links(path: Path):
    for target in re.findall(r"\]\(([^)\s]+)\)", path.read_text(encoding="utf-8")):
        if not re.match(r"[a-z]+://", target):
            yield target


@pytest.mark.parametrize("page", [README, *sorted((ROOT / "docs").glob("*.md"))],
                         ids=lambda p: p.name)
def test_every_relative_link_resolves(page):
    for target in _links(page):
        file, _, anchor = target.partition("#")
        resolved = (page.parent / file).resolve() if file else page
        assert resolved.exists(), f"{page.name}: {target}"
        if anchor and resolved.suffix == ".md":
            headings = re.findall(r"^#+ (.+)$", resolved.read_text(encoding="utf-8"), re.M)
            slugs = {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in headings}
            assert anchor in slugs, f"{page.name}: {target}"


def test_the_front_table_is_generated_from_the_committed_results():
    text = README.read_text(encoding="utf-8")
    inside = text.split(publish.BEGIN, 1)[1].split(publish.END, 1)[0]
    generated = publish.front_table(ROOT / "results", ROOT / "benchmarks" / "suites")
    assert inside.strip() == generated.strip(), \
        "README's front table is stale: python -m dparena.leaderboard.publish README.md results"
    # every block says which suite, N, samples and seeds, and every DP row its accountant
    for block in publish.FRONT:
        assert f"[`{block.suite}`](results/{block.suite}/leaderboard.md)" in inside
    rows = [line for line in inside.splitlines() if line.startswith("| ") and "---" not in line]
    assert all(not line.rstrip(" |").endswith("?") for line in rows[1:])


def _run(label, eps, seed, values, validity=None, status="ok"):
    metrics = {name: StoredValue(name, name, v) for name, v in values.items()}
    if validity is not None:
        metrics["validity"] = StoredValue("validity", "validity", validity)
    return StoredRun(
        key=f"{label}-{eps}-{seed}", dataset="adult", dataset_params={"n_private": 80},
        dataset_version="1", method=label.split("|")[0], label=label, epsilon=eps,
        delta=1e-5, seed=seed, status=status, error="",
        spent_epsilon=math.inf if eps is None else eps,
        spec={"metrics": ["fid", "util", "validity"]}, suite="toy",
        n_samples=40, created_at="2026-01-01T00:00:00+00:00", accountant="PRV",
        metrics=metrics)


TOY_SUITE = """
name = "toy"
seeds = [0, 1]
epsilons = [1.0, 10.0]
delta = 1e-5

[[section]]
name = "toy-section"
dataset = "adult"
dataset_params = { n_private = 80 }
n_samples = 40
metrics = ["histogram-intersection"]
methods = [{ name = "uniform", label = "lm|big" }, { name = "real" }]
"""


def _toy(tmp_path, runs):
    results, suites = tmp_path / "results", tmp_path / "suites"
    (results / "toy").mkdir(parents=True)
    suites.mkdir()
    (results / "toy" / "leaderboard.md").write_text(to_markdown(build_tables(runs)))
    (suites / "toy.toml").write_text(TOY_SUITE)
    block = publish.Block("toy", "toy-section", "Toy | data", ("fid", "util"), (1.0, 10.0),
                          ("lm|big", "real"))
    return results, suites, block


def test_the_front_table_reads_what_the_leaderboard_renders(tmp_path):
    runs = [_run("lm|big", eps, seed, {"fid": 0.25 * eps + 0.01 * seed, "util": 0.5})
            for eps in (1.0, 10.0) for seed in (0, 1)]
    runs += [_run("real", None, seed, {"fid": 0.9, "util": 0.75}) for seed in (0, 1)]
    results, suites, block = _toy(tmp_path, runs)
    table = publish.front_table(results, suites, (block,))
    lines = table.splitlines()
    assert lines[2] == "| **Toy \\| data** | lm\\|big | 0.255 / 2.505 | 0.500 / 0.500 | PRV |"
    assert lines[3].startswith("| [`toy`](results/toy/leaderboard.md) · N = 80 · 40 samples · "
                               "seeds 0, 1 | real | 0.900 | 0.750 | — (not private) |")
    # publishing twice gives the same README; without markers it refuses, changing nothing
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n{publish.BEGIN}\nold\n{publish.END}\ntail\n")
    spliced = publish.splice(readme.read_text(), table)
    assert publish.splice(spliced, table) == spliced and spliced.endswith(f"{publish.END}\ntail\n")
    with pytest.raises(publish.PublishError, match="lacks the markers"):
        publish.splice("# no markers\n", table)


def test_a_missing_row_or_file_is_one_line(tmp_path):
    runs = [_run("real", None, 0, {"fid": 0.9, "util": 0.75})]
    results, suites, block = _toy(tmp_path, runs)
    with pytest.raises(publish.PublishError, match=r"has no adult\(n_private=80\) table at ε=1"):
        publish.front_table(results, suites, (block,))
    runs.append(_run("other", 1.0, 0, {"fid": 0.1, "util": 0.2}))
    runs.append(_run("other", 10.0, 0, {"fid": 0.1, "util": 0.2}))
    results, suites, block = _toy(tmp_path / "b", runs)
    with pytest.raises(publish.PublishError, match=r"no row 'lm\|big'"):
        publish.front_table(results, suites, (block,))
    with pytest.raises(publish.PublishError, match="leaderboard.md is missing"):
        publish.front_table(tmp_path / "nowhere", suites, (block,))


def test_a_block_names_the_public_n_of_its_dataset():
    from dparena.datasets import public_size

    # the documented size of the private split under the section's parameters, not "full split"
    assert public_size("adult", {"split": "dp2stage"}) == 30_932
    assert public_size("adult", {}) == 32_561
    assert public_size("mnist", {"n_eval": 2000}) == 50_000
    assert public_size("adult", {"n_private": 500}) == 500
    # a dataset this process does not know: the subsample size the suite gives
    assert public_size("toy", {"n_private": 80}) == 80
    assert public_size("toy", {}) is None
    # the user's files: the size their schema declares; none declared: unknown, not a traceback
    airline = {"schema": str(ROOT / "benchmarks" / "schemas" / "airline.toml"), "private": "p.csv",
               "eval": "e.csv"}
    assert public_size("csv", airline) == 103_904
    folder = {"private": "p", "eval": "e", "height": 28, "width": 28, "channels": 1,
              "classes": ["a", "b"]}
    assert public_size("image-folder", folder) is None
    block = publish.Block("s", "x", "t", ("f", "u"), (1.0, 10.0), ("a",))
    assert " · N not declared · 10 samples · seed 0" in publish._facts(
        block, publish.Section("image-folder(...)", None, {"a": (10,)}, {"a": (0,)}))


SECTION_WITH_DEFAULTS = """
name = "defaults"
epsilons = [1.0, 10.0]
delta = 1e-5

[[section]]
name = "split"
dataset = "adult"
dataset_params = { split = "dp2stage" }
metrics = ["histogram-intersection"]
methods = [{ name = "mst" }, { name = "real" }]

[[section]]
name = "more-seeds"
seeds = [0, 1, 2]
dataset = "adult"
dataset_params = { split = "dp2stage" }
n_samples = 500
metrics = ["histogram-intersection"]
methods = [{ name = "aim" }]
"""


def test_a_block_reads_its_section_as_the_suite_loader_does(tmp_path):
    """Defaults the section leaves out are the loader's: n_samples = the public N, seeds = [0];
    a section on the same dataset adds its labels' seeds."""
    suite = tmp_path / "defaults.toml"
    suite.write_text(SECTION_WITH_DEFAULTS)
    section = publish._section(suite, "split")
    assert section == publish.Section(
        "adult(split=dp2stage)", 30_932, {"mst": (30_932,), "real": (30_932,), "aim": (500,)},
        {"mst": (0,), "real": (0,), "aim": (0, 1, 2)})
    block = publish.Block("defaults", "split", "t", ("f", "u"), (1.0, 10.0),
                          ("mst", "aim", "real"))
    assert publish._facts(block, section) == (
        "[`defaults`](results/defaults/leaderboard.md) · N = 30,932 · 30,932 samples (aim: 500) · "
        "seed 0 (aim: 0, 1, 2)")
    # seeds are named as they are, sample counts with thousands separators
    odd = publish.Section("d", 10, {"a": (1_000,), "b": (2_000,), "c": (1_000,)},
                          {"a": (1_234,), "b": (0,), "c": (1_234,)})
    assert publish._facts(publish.Block("s", "x", "t", ("f", "u"), (1.0, 10.0), ("a", "b", "c")),
                          odd).endswith(" · 1,000 samples (b: 2,000) · seed 1234 (b: 0)")
    with pytest.raises(publish.PublishError, match="has no section 'nope'"):
        publish._section(suite, "nope")
    suite.write_text(SECTION_WITH_DEFAULTS.replace('"mst"', '"msst"'))
    with pytest.raises(publish.PublishError, match="unknown method 'msst'"):
        publish._section(suite, "split")


def test_an_old_failed_cell_of_an_lm_without_valid_rows_reads_0_valid_rows():
    row = {"validity": "0.000 (2)", "util": "failed"}
    assert publish._value("failed", row) == "0 valid rows"
    assert publish._value("failed", {"validity": "0.250 (1)"}) == "failed"
    assert publish._value("**0.776 ±0.004 (1)**", row) == "0.776"
    # today's leaderboards write the words themselves: kept whole, not read as the number 0
    assert publish._value("0 valid rows", {}) == "0 valid rows"
    assert publish._value("0.000 (3)", {}) == "0.000" and publish._value("12 (2)", {}) == "12"
