"""A suite's [[ordering]] claims: validated when the suite loads, judged on real stored runs."""

from __future__ import annotations

import copy
import subprocess
import sys

import pytest

from dparena.errors import ConfigError
from dparena.harness.runner import Runner
from dparena.harness.store import Store
from dparena.harness.suite import parse_suite
from dparena.leaderboard.orderings import difference_ci, judge, to_markdown
from tests.harness.test_zero_valid_rows import _NoValidRows  # noqa: F401  (registers the method)

SECTION = {"name": "t", "dataset": "adult", "dataset_params": {"n_private": 300, "n_eval": 300},
           "n_samples": 300, "metrics": ["histogram-intersection", "ml-efficacy"],
           "methods": [{"name": "independent-marginals"}, {"name": "uniform"},
                       {"name": "test-no-valid-rows"}]}


def _suite(orderings, seeds=(0, 1, 2)):
    return {"name": "o", "seeds": list(seeds), "epsilons": [1.0], "delta": 1e-5,
            "section": [copy.deepcopy(SECTION)], "ordering": orderings}


def _claim(**kw):
    return {"section": "t", "metric": "histogram-intersection", "better": "independent-marginals",
            "worse": "uniform", "epsilon": 1.0, **kw}


@pytest.mark.parametrize("bad, says", [
    ({"section": "nope"}, "no section named 'nope'"),
    ({"metric": "fid"}, "metric 'fid' is not computed in section 't'"),
    ({"better": "aim"}, "better = 'aim' is not a label run at epsilon 1"),
    ({"worse": "independent-marginals"}, "better and worse are both"),
    ({"epsilon": 4.0}, "is not a label run at epsilon 4"),
    ({"epsilon": "one"}, "epsilon must be a finite number"),
    ({"colour": "red"}, "colour"),
    ({"source": 3}, "source must be a string"),
])
def test_bad_orderings_are_one_config_error(bad, says):
    with pytest.raises(ConfigError, match=says.replace("(", r"\(")):
        parse_suite(_suite([_claim(**bad)]))


def test_missing_keys_and_wrong_shape():
    claim = _claim()
    del claim["worse"], claim["epsilon"]
    with pytest.raises(ConfigError, match="missing worse, epsilon"):
        parse_suite(_suite([claim]))
    with pytest.raises(ConfigError, match=r"\[\[ordering\]\] tables"):
        parse_suite(_suite({"better": "x"}))


def test_bad_ordering_through_the_cli_is_one_error_line(tmp_path):
    suite = tmp_path / "s.toml"
    suite.write_text('name = "o"\nseeds = [0]\nepsilons = [1.0]\n[[section]]\nname = "t"\n'
                     'dataset = "adult"\nmetrics = ["histogram-intersection"]\n'
                     'methods = ["uniform"]\n[[ordering]]\nsection = "t"\n'
                     'metric = "histogram-intersection"\nbetter = "uniform"\nworse = "aim"\n'
                     'epsilon = 1.0\n')
    out = subprocess.run([sys.executable, "-m", "dparena.cli", "run", str(suite), "--db",
                          str(tmp_path / "r.sqlite")], capture_output=True, text=True)
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and out.stderr.startswith("error:")
    assert "worse = 'aim'" in out.stderr
    assert not (tmp_path / "r.sqlite").exists()


def test_difference_ci_is_oriented_and_needs_two_runs_a_side():
    diff, lo, hi = difference_ci([0.9, 0.8, 0.85], [0.5, 0.55, 0.6], sign=1.0)
    assert diff == pytest.approx(0.3) and 0 < lo <= diff <= hi
    diff, lo, hi = difference_ci([0.9, 0.8, 0.85], [0.5, 0.55, 0.6], sign=-1.0)  # lower is better
    assert diff == pytest.approx(-0.3) and lo <= diff <= hi < 0
    assert difference_ci([0.9], [0.5, 0.6], sign=1.0)[1:] == (None, None)


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    """(suite, store path) of the claims below, every run done."""
    claims = [_claim(source="marginals beat uniform"),
              _claim(better="uniform", worse="independent-marginals"),
              _claim(metric="ml-efficacy/f1", better="independent-marginals",
                     worse="test-no-valid-rows"),
              _claim(metric="ml-efficacy/f1", better="test-no-valid-rows",
                     worse="independent-marginals")]
    suite = parse_suite(_suite(claims))
    db = tmp_path_factory.mktemp("orderings") / "runs.sqlite"
    assert Runner(Store(db)).run(suite.specs).ok == len(suite.specs)
    return suite, db


@pytest.fixture(scope="module")
def judged(ran):
    suite, db = ran
    return judge(Store(db, mode="r").runs(), suite.orderings)


def test_the_orderings_page_names_each_sections_n_seeds_and_samples(ran, tmp_path):
    from dparena.leaderboard.publish import write_orderings

    suite, db = ran
    text = write_orderings(Store(db, mode="r"), suite, tmp_path, quiet=True).read_text()
    assert ("\n- section t: N = 300 private records (n_private) · seeds 0, 1, 2 · 300 samples "
            "per run\n") in text


def test_orderings_judged_on_stored_runs(judged):
    holds, reversed_, empty_worse, empty_better = judged
    assert holds.verdict == "holds" and holds.better.n == holds.worse.n == 3
    assert holds.ci_low > 0 and holds.difference == pytest.approx(
        holds.better.mean - holds.worse.mean)
    assert reversed_.verdict == "reversed" and reversed_.ci_high < 0
    assert reversed_.difference == pytest.approx(-holds.difference)
    assert empty_worse.verdict == "holds (worse has 0 valid rows)" and empty_worse.worse is None
    assert empty_better.verdict == "reversed (better has 0 valid rows)"
    text = to_markdown(judged)
    assert "marginals beat uniform" in text and "**reversed**" in text
    assert text.count("0 valid rows") >= 2


def test_orderings_without_runs_say_no_data(tmp_path):
    suite = parse_suite(_suite([_claim()]))
    Store(tmp_path / "runs.sqlite")
    [j] = judge(Store(tmp_path / "runs.sqlite", mode="r").runs(), suite.orderings)
    assert j.verdict == "no data" and j.difference is None
