"""The command line as a user meets it: real subprocesses, exit codes, one-line errors."""

import json
import os
import sqlite3
import subprocess
import sys

import pytest

from tests.cli_helpers import assert_user_error, dparena
from tests.paths import ROOT

SUITE = """
name = "cli"
seeds = [0, 1]
epsilons = [2.0]
delta = 1e-5

[[section]]
dataset = "adult"
dataset_params = { n_private = 400, n_eval = 400 }
n_samples = 300
metrics = ["histogram-intersection"]
methods = [{ name = "independent-marginals" }, { name = "uniform" }]
"""


@pytest.fixture(scope="module")
def finished_db(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    suite = folder / "cli.toml"
    suite.write_text(SUITE)
    db = folder / "runs.sqlite"
    result = dparena("run", suite, "--db", db)
    assert result.returncode == 0, result.stderr
    assert (folder / "leaderboard.md").exists() and (folder / "leaderboard.html").exists()
    assert "independent-marginals" in result.stdout  # printed in the terminal
    return db


def test_list_json():
    out = dparena("list", "methods", "--json")
    assert out.returncode == 0
    names = {row["name"] for row in json.loads(out.stdout)}
    assert {"independent-marginals", "real", "uniform"} <= names
    assert_user_error(dparena("list", "widgets"), "unknown kind 'widgets'")
    every = json.loads(dparena("list", "--format", "json").stdout)
    assert set(every) == {"datasets", "methods", "metrics"} and "fid" in {
        row["name"] for row in every["metrics"]}
    assert_user_error(dparena("list", "--format", "xml"), "--format must be one of")


def test_usage_mistakes_are_one_line_errors():
    assert_user_error(dparena("show"), "No such command 'show'", "dparena --help")
    assert_user_error(dparena("list", "methods", "--jsn"), "--jsn")
    assert_user_error(dparena("run"), "suite")


def test_malformed_toml_names_the_line(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\nseeds = [0,\nepsilons = 1\n')
    assert_user_error(dparena("run", bad, "--db", tmp_path / "r.sqlite"), "invalid TOML", "line")
    assert not (tmp_path / "r.sqlite").exists()


@pytest.mark.parametrize("edit,fragments", [
    (("independent-marginals", "independent-marginal"), ("did you mean 'independent-marginals'",)),
    (("epsilons = [2.0]", "epsilons = [0.0]"), ("epsilon must be > 0",)),
    (("epsilons = [2.0]", "epsilons = [-1.0]"), ("epsilon must be > 0",)),
    (('"histogram-intersection"', '"histogram-intersektion"'), ("unknown metric",)),
    (("n_samples = 300", "n_samples = 0"), ("n_samples",)),
    (("seeds = [0, 1]", "seeds = [0, 1]\nfoo = 3"), ("unknown keys ['foo']",)),
])
def test_bad_suites_are_rejected_before_anything_is_written(tmp_path, edit, fragments):
    suite = tmp_path / "s.toml"
    suite.write_text(SUITE.replace(*edit))
    assert_user_error(dparena("run", suite, "--db", tmp_path / "r.sqlite"), *fragments)
    assert not (tmp_path / "r.sqlite").exists()


def test_unknown_only_filter(tmp_path):
    suite = tmp_path / "s.toml"
    suite.write_text(SUITE)
    assert_user_error(dparena("run", suite, "--only", "colour=red", "--db", tmp_path / "r.sqlite"),
                      "--only key 'colour'")


def test_rerun_skips_and_leaderboard_formats(finished_db, tmp_path):
    suite = finished_db.parent / "cli.toml"
    again = dparena("run", suite, "--db", finished_db, "--quiet")
    assert again.returncode == 0 and "4 already done" in again.stderr
    for fmt in ("md", "html", "latex", "csv", "json"):
        out = dparena("leaderboard", "--db", finished_db, "--format", fmt)
        assert out.returncode == 0 and out.stdout, fmt
    assert_user_error(dparena("leaderboard", "--db", finished_db, "--format", "pdf"), "unknown format")
    assert_user_error(dparena("leaderboard", "--db", tmp_path / "none.sqlite"), "no result database")


def test_check_gate_passes_on_itself_and_fails_on_a_regression(finished_db, tmp_path):
    baseline = tmp_path / "baseline.json"
    assert dparena("leaderboard", "--db", finished_db, "--format", "json", "--out", baseline).returncode == 0
    ok = dparena("check", "--db", finished_db, "--baseline", baseline)
    assert ok.returncode == 0, ok.stdout
    worse = tmp_path / "worse.sqlite"
    worse.write_bytes(finished_db.read_bytes())
    con = sqlite3.connect(worse)
    with con:
        con.execute("UPDATE metric_values SET value = value * 0.5 WHERE key IN "
                    "(SELECT key FROM runs WHERE method = 'independent-marginals')")
    bad = dparena("check", "--db", worse, "--baseline", baseline)
    assert bad.returncode == 1
    assert "regressed" in bad.stdout and "independent-marginals" in bad.stdout
    assert_user_error(dparena("check", "--db", finished_db, "--baseline", tmp_path / "nope.json"),
                      "baseline file")


def test_score_bring_your_own_table(tmp_path, adult_small):
    good = tmp_path / "syn.csv"
    adult_small.private.head(300).to_csv(good, index=False)
    out = dparena("score", "--dataset", "adult", "--synthetic", good,
                  "--metric", "histogram-intersection", "--json")
    assert out.returncode == 0, out.stderr
    values = {v["name"]: v["value"] for v in json.loads(out.stdout)}
    assert 0.8 < values["histogram-intersection"] <= 1.0

    frame = adult_small.private.head(50)
    frame.drop(columns=["age"]).to_csv(tmp_path / "missing.csv", index=False)
    assert_user_error(dparena("score", "--dataset", "adult", "--synthetic", tmp_path / "missing.csv"),
                      "missing columns ['age']")
    frame.assign(extra=1).to_parquet(tmp_path / "extra.parquet")
    assert_user_error(dparena("score", "--dataset", "adult", "--synthetic", tmp_path / "extra.parquet"),
                      "unexpected columns ['extra']")
    broken = frame.astype({"age": object})
    broken.loc[3, "age"] = "forty"
    broken.to_csv(tmp_path / "broken.csv", index=False)
    assert_user_error(dparena("score", "--dataset", "adult", "--synthetic", tmp_path / "broken.csv"),
                      "'age' row 3", "'forty'")
    assert_user_error(dparena("score", "--dataset", "adlt", "--synthetic", good), "did you mean 'adult'")


def test_accountant_pe():
    out = dparena("accountant", "pe", "--sigma", "2.8284271", "--steps", "5", "--delta", "1e-5")
    assert out.returncode == 0 and out.stdout.startswith("epsilon = 3.341")
    out = dparena("accountant", "pe", "--epsilon", "3.3414", "--steps", "5", "--delta", "1e-5")
    assert out.returncode == 0 and out.stdout.startswith("sigma = 2.828")
    assert_user_error(dparena("accountant", "pe", "--steps", "5", "--delta", "1e-5"), "exactly one")


def test_audit_prints_the_p_value_and_what_the_bound_means():
    env = {**os.environ, "DPARENA_PLUGINS": "tests.plugins"}
    caught = subprocess.run([sys.executable, "-m", "dparena", "audit", "--method", "test-noiseless",
                             "--epsilon", "1", "--confidence", "0.99"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=300)
    assert caught.returncode == 1, caught.stderr
    assert "exceeds the claimed ε at 99% confidence" in caught.stdout
    assert "p-value of the claim p = " in caught.stdout and "proof" not in caught.stdout.lower()
    honest = dparena("audit", "--method", "independent-marginals", "--epsilon", "1", "--json")
    assert honest.returncode == 0, honest.stderr
    result = json.loads(honest.stdout)
    assert result["p_value"] >= 0.05 and not result["failed"]


def test_run_progress_lines_and_timings_table(tmp_path):
    """Off a terminal a fresh run prints one suite line per 10% passed (4 runs: 4 lines) and,
    with --timings, a per-stage table of the suite's runs; --quiet keeps only the summary."""
    suite = tmp_path / "cli.toml"
    suite.write_text(SUITE)
    db = tmp_path / "runs.sqlite"
    report = tmp_path / "perf" / "cli-suite.json"
    result = dparena("run", suite, "--db", db, "--timings", "--timings-json", report)
    assert result.returncode == 0, result.stderr
    got = json.loads(report.read_text())  # the wall time and stage table, for benchmarks/perf
    assert got["suite"] == "cli" and got["runs"] == got["ran"] == 4 and got["jobs"] == 1
    assert got["wall_s"] > 0 and got["ideal_wall_s"] == pytest.approx(got["sum_run_s"], abs=0.1)
    stages = {row["stage"]: row for row in got["stages"]}
    assert stages["run"]["count"] == 4 and stages["load"]["count"] == 1
    assert sum(g["runs"] for g in got["groups"]) == 4
    progress = [ln.split(" runs (")[0] for ln in result.stderr.splitlines()
                if ln.startswith("cli: ")]
    assert progress == ["cli: 1/4", "cli: 2/4", "cli: 3/4", "cli: 4/4"], result.stderr
    assert "Time per stage: 4 runs (stored timings)" in result.stdout
    rows = {ln.split("│")[1].strip(): [c.strip() for c in ln.split("│")[2:-1]]
            for ln in result.stdout.splitlines() if ln.count("│") == 7}
    assert rows["load"][0] == "1"  # one dataset loaded by the driver
    for stage in ("generate", "write", "metric:histogram-intersection", "run"):
        assert rows[stage][0] == "4", (stage, result.stdout)
        assert float(rows[stage][1]) >= 0
    again = dparena("run", suite, "--db", db, "--quiet", "--timings")
    assert again.returncode == 0
    assert again.stderr.startswith("4 runs: 0 ok, 0 invalid, 0 failed, 4 already done")
    assert "cli: " not in again.stderr and "ε spent" not in again.stderr
    assert "Time per stage: 4 runs (stored timings)" in again.stdout  # from the stored timings


def _commands(group, path=()):
    import click

    for name, cmd in sorted(group.commands.items()):
        yield (*path, name), cmd
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, (*path, name))


def test_help_shows_every_bracketed_word_it_was_written_with():
    """Rich reads ``[word]`` in help text as markup and drops it: ``[[ordering]]`` printed as
    ``[]``. Every bracketed span of every command's help and option help must reach the screen."""
    import re

    import typer.main
    from typer.testing import CliRunner

    from dparena.cli import app

    root = typer.main.get_command(app)
    runner = CliRunner()
    seen = {}
    for path, cmd in _commands(root):
        texts = [cmd.help or ""] + [getattr(p, "help", None) or "" for p in cmd.params]
        wanted = {m.replace("\\[", "[") for t in texts for m in re.findall(r"\\?\[[^\]\s]*\]+", t)}
        out = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "250"}, terminal_width=250)
        assert out.exit_code == 0, out.output
        assert "[]" not in out.output, (path, out.output)
        for span in wanted:
            assert span in out.output, (path, span)
        seen[path] = wanted
    assert "[[ordering]]" in seen[("orderings",)]
