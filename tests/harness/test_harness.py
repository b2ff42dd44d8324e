import json
import math
import sqlite3

import pytest

import tests.plugins  # noqa: F401 - registers the test-only methods
from dparena.harness.runner import Runner
from dparena.harness.store import Store
from dparena.harness.suite import load_suite, parse_suite
from dparena.io import read_parquet
from dparena.leaderboard.aggregate import build_tables

SUITE = """
name = "tiny"
seeds = [0]
epsilons = [1.0, 10.0]
delta = "1/(n*ln(n))"

[[section]]
name = "adult"
dataset = "adult"
dataset_params = { n_private = 1500, n_eval = 1500 }
n_samples = 1000
metrics = ["histogram-intersection", "ml-efficacy"]
metric_params = { "ml-efficacy" = { xgb_estimators = 20 } }
methods = [
  { name = "independent-marginals" },
  { name = "real" },
  { name = "uniform" },
  { name = "test-overspend" },
  { name = "test-raise" },
  { name = "test-crash" },
]
"""


@pytest.fixture
def suite_file(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(SUITE)
    return path


def test_suite_expansion(suite_file):
    suite = load_suite(suite_file)
    dp = [s for s in suite.specs if s.is_dp]
    refs = [s for s in suite.specs if not s.is_dp]
    assert len(dp) == 4 * 2  # 4 DP methods x 2 eps x 1 seed
    assert len(refs) == 2  # references once per seed, no ε
    assert all(s.epsilon is None and math.isinf(s.budget.epsilon) for s in refs)
    assert all(s.delta == pytest.approx(1 / (1500 * math.log(1500))) for s in suite.specs)
    assert len({s.key for s in suite.specs}) == len(suite.specs)
    first = next(s for s in dp if s.method == "independent-marginals")
    assert first.name == ("adult,n_eval=1500,n_private=1500:method=independent-marginals,"
                          "eps=1,seed=0")


def test_key_changes_with_params_and_version(suite_file):
    from dataclasses import replace

    spec = load_suite(suite_file).specs[0]
    assert replace(spec, seed=5).key != spec.key
    assert replace(spec, method_params={"bins": 8}).key != spec.key
    assert replace(spec, dataset_version="99").key != spec.key
    assert replace(spec, package_version="9.9").key != spec.key
    assert replace(spec, label="other").key == spec.key  # display only


def _pinned_specs():
    from dparena.harness.suite import RunSpec

    common = dict(suite="quick", section="adult", dataset="adult",
                  dataset_params={"n_private": 10000, "n_eval": 8000}, dataset_version="2",
                  n_samples=10000, package_version="0.2.0")
    return [
        RunSpec(**common, method="independent-marginals", method_params={"given": "income"},
                method_version="1", label="independent-marginals|given=income", is_dp=True,
                epsilon=1.0, delta=1.09e-05, seed=0,
                metrics=("histogram-intersection", "ml-efficacy"),
                metric_params={"ml-efficacy": {"xgb_estimators": 100}}, audit={"n_private": 300}),
        RunSpec(**common, method="real", method_params={}, method_version="1", label="real",
                is_dp=False, epsilon=None, delta=1.09e-05, seed=1,
                metrics=("histogram-intersection",)),
        RunSpec(**{**common, "dataset": "mnist"}, method="pe-image",
                method_params={"api": "drawtext"}, method_version="3", label="pe-image|drawtext",
                is_dp=True, epsilon=10.0, delta=2.35e-05, seed=1, metrics=("fid",),
                secure_noise=True),
    ]


def test_run_keys_survive_the_is_dp_rename():
    """Keys computed before RunSpec.private became is_dp (dparena 0.2, commit 3f25fd2): the
    field keeps its stored name "private" in the hash and in the stored spec JSON."""
    from dparena.harness.suite import RunSpec

    specs = _pinned_specs()
    assert [s.key for s in specs] == ["88c3e6b740d8a9bbfb5cd54a", "de2387b2d86f7e243f6deb5e",
                                      "26cd73713ff35e2b304f4cc2"]
    for spec in specs:
        stored = json.loads(spec.to_json())
        assert stored["private"] is spec.is_dp and "is_dp" not in stored
        assert RunSpec.from_json(spec.to_json()) == spec
    # a spec JSON as dparena 0.2 stored it reads back to the same spec and key
    old = ('{"audit": null, "dataset": "adult", "dataset_params": {"n_eval": 8000, "n_private": '
           '10000}, "dataset_version": "2", "delta": 1.09e-05, "epsilon": null, "label": "real", '
           '"memory_mb": null, "method": "real", "method_params": {}, "method_version": "1", '
           '"metric_params": {}, "metrics": ["histogram-intersection"], "n_samples": 10000, '
           '"package_version": "0.2.0", "private": false, "section": "adult", "secure_noise": '
           'false, "seed": 1, "suite": "quick", "timeout_s": null}')
    assert RunSpec.from_json(old) == specs[1] and RunSpec.from_json(old).key == specs[1].key


def test_a_method_that_still_says_private_is_refused():
    from dparena.methods.base import Method

    with pytest.raises(TypeError, match="`private` is now `is_dp`"):
        type("OldPlugin", (Method,), {"private": False, "generate": lambda self, t, ledger: None})


def test_end_to_end_tiny_suite_and_resume(suite_file, tmp_path):
    suite = load_suite(suite_file)
    store = Store(tmp_path / "runs.sqlite")
    summary = Runner(store).run(suite.specs)
    assert summary.total == 10 and summary.skipped == 0
    runs = {(r.method, r.epsilon, r.seed): r for r in store.runs()}
    assert len(runs) == 10

    ok = runs[("independent-marginals", 1.0, 0)]
    assert ok.status == "ok" and ok.spent_epsilon <= 1.0 + 1e-9
    assert ok.ledger[0]["mechanism"] == "gaussian"
    assert read_parquet(ok.artifact).shape == (1000, 15)
    assert 0.5 < ok.metrics["histogram-intersection"].value <= 1
    assert ok.peak_rss_mb > 10 and ok.timings["generate_s"] > 0
    assert ok.versions["dparena"]
    assert ok.info["sigma"] > 0  # the method's Synthetic.info is kept with the run
    # with the public N the run used (n_private here), also when it failed in the worker (a
    # crashed worker records nothing; its table's N then comes from the dataset's documentation)
    for key in (("independent-marginals", 1.0, 0), ("test-overspend", 1.0, 0),
                ("test-raise", 1.0, 0), ("real", None, 0)):
        assert runs[key].info["public_size"] == 1500, key

    over = runs[("test-overspend", 1.0, 0)]
    assert over.status == "invalid" and "exceeds the budget" in over.error
    assert over.spent_epsilon == pytest.approx(2.0, abs=1e-6)
    assert runs[("test-raise", 1.0, 0)].status == "failed"
    assert "deliberate failure" in runs[("test-raise", 1.0, 0)].error
    assert "worker died" in runs[("test-crash", 10.0, 0)].error
    assert math.isinf(runs[("real", None, 0)].spent_epsilon)
    assert runs[("uniform", None, 0)].spent_epsilon == 0.0

    # the leaderboard ranks only valid DP rows and shows the anchors
    table = next(t for t in build_tables(store.runs()) if t.epsilon == 1.0)
    rows = {r.label: r for r in table.rows}
    col = "histogram-intersection"
    assert rows["independent-marginals"].cells[col].rank == 1
    assert rows["test-overspend"].status == "invalid" and rows["test-overspend"].cells[col].rank is None
    assert rows["real"].kind == "reference" and rows["real"].cells[col].rank is None
    assert rows["test-raise"].cells[col].empty == "failed"
    real, marg, unif = (rows[k].cells[col].stat.mean for k in ("real", "independent-marginals", "uniform"))
    assert unif < marg < real

    # resume: nothing is re-run; --retry-failed re-runs only the failed ones
    again = Runner(store).run(suite.specs)
    assert again.skipped == 10 and again.ok == 0
    retried = Runner(store).run(suite.specs, retry_failed=True)
    assert retried.skipped == 6 and len(retried.failed) == 4
    con = sqlite3.connect(store.path)
    assert con.execute("SELECT COUNT(*), COUNT(DISTINCT key) FROM runs").fetchone() == (10, 10)


def test_timeout_is_recorded_as_failed(tmp_path):
    raw = {
        "name": "t", "seeds": [0], "epsilons": [1.0], "delta": 1e-5,
        "section": [{"dataset": "adult", "dataset_params": {"n_private": 100, "n_eval": 100},
                     "n_samples": 50, "metrics": ["histogram-intersection"],
                     "methods": [{"name": "test-sleep", "params": {"seconds": 30}}]}],
    }
    store = Store(tmp_path / "runs.sqlite")
    summary = Runner(store, timeout=1.0).run(parse_suite(raw).specs)
    assert summary.failed and "timed out" in summary.failed[0][1]


def test_suite_limits_stop_slow_and_hungry_runs(tmp_path):
    raw = {
        "name": "t", "seeds": [0], "epsilons": [1.0], "delta": 1e-5, "timeout_s": 20,
        "section": [{"dataset": "adult", "dataset_params": {"n_private": 100, "n_eval": 100},
                     "n_samples": 50, "metrics": ["histogram-intersection"], "memory_mb": 400,
                     "methods": [{"name": "test-hog"}]}],
    }
    specs = parse_suite(raw).specs
    assert specs[0].timeout_s == 20 and specs[0].memory_mb == 400
    raw["timeout_s"] = 30
    assert parse_suite(raw).specs[0].key == specs[0].key  # limits are not the run's identity
    summary = Runner(Store(tmp_path / "runs.sqlite")).run(specs)
    assert summary.failed and "memory cap of 400 MB" in summary.failed[0][1]


def test_parallel_jobs_give_the_same_records(suite_file, tmp_path):
    specs = [s for s in load_suite(suite_file).specs
             if s.method in ("independent-marginals", "uniform")][:3]
    a, b = Store(tmp_path / "a.sqlite"), Store(tmp_path / "b.sqlite")
    Runner(a, jobs=1).run(specs)
    Runner(b, jobs=2).run(specs)

    def values(store):
        return {(r.key, n): v.value for r in store.runs() for n, v in r.metrics.items()}

    assert values(a) == values(b)


def test_ledger_json_has_no_private_values(suite_file, tmp_path):
    specs = [s for s in load_suite(suite_file).specs if s.method == "independent-marginals"][:1]
    store = Store(tmp_path / "r.sqlite")
    Runner(store).run(specs)
    ledger = store.runs()[0].ledger
    assert json.dumps(ledger)  # serialisable
    assert set(ledger[0]["params"]) == {"sigma", "sensitivity", "histograms", "bins"}


def test_store_adds_the_info_column_to_an_older_database(tmp_path):
    """A database written before runs kept the method's info gains the column; old rows read {}."""
    from dparena.harness.store import SCHEMA, json_safe_info

    path = tmp_path / "old.sqlite"
    con = sqlite3.connect(path)
    con.executescript(SCHEMA.replace(",\n    info TEXT NOT NULL DEFAULT '{}'", ""))
    assert "info" not in {r[1] for r in con.execute("PRAGMA table_info(runs)")}
    con.execute("INSERT INTO runs (key, name, dataset, method, label, private, status, spec, "
                "created_at) VALUES ('k', 'n', 'adult', 'real', 'real', 0, 'ok', '{}', 'now')")
    con.commit()
    con.close()
    store = Store(path)
    [run] = store.runs()
    assert run.info == {} and run.key == "k"
    big = json_safe_info({"sigma": 1.5, "history": list(range(10_000)), 3: "x"})
    assert big["sigma"] == 1.5 and big["3"] == "x" and big["history"].startswith("<")


def test_store_keeps_the_accountant_and_adds_its_column_to_an_older_database(tmp_path):
    """A run's accountant (how its ε was composed) round-trips; an older database gains the
    column and its runs read "" (shown as "?" in the leaderboards)."""
    from dparena.harness.store import SCHEMA, RunRecord

    path = tmp_path / "old.sqlite"
    con = sqlite3.connect(path)
    old_schema = SCHEMA.replace(",\n    info TEXT NOT NULL DEFAULT '{}'", "").replace(
        ",\n    accountant TEXT NOT NULL DEFAULT ''", "")
    con.executescript(old_schema)
    assert not {"info", "accountant"} & {r[1] for r in con.execute("PRAGMA table_info(runs)")}
    con.execute("INSERT INTO runs (key, name, dataset, method, label, private, status, spec, "
                "created_at) VALUES ('k', 'n', 'adult', 'real', 'real', 0, 'ok', '{}', 'now')")
    con.commit()
    con.close()
    store = Store(path)
    [run] = store.runs()
    assert run.accountant == "" and run.info == {}

    raw = {"name": "acc", "seeds": [0], "epsilons": [1.0], "delta": 1e-5,
           "section": [{"dataset": "adult", "metrics": [],
                        "methods": [{"name": "independent-marginals"}]}]}
    [spec] = parse_suite(raw).specs
    store.record(RunRecord(spec, "ok", spent_epsilon=0.0, accountant="GDP (exact)",
                           ledger=[{"mechanism": "gaussian", "accountant": "GDP (exact)"}],
                           created_at="later"))
    new = next(r for r in store.runs() if r.key == spec.key)
    assert new.accountant == "GDP (exact)" and new.ledger[0]["accountant"] == "GDP (exact)"
    assert build_tables([new])[0].rows[0].accountant == "GDP (exact)"


TWINS = """
name = "twins"
seeds = [0, 1]
epsilons = [1.0]
delta = "1/(n*ln(n))"

[[section]]
name = "a"
dataset = "adult"
dataset_params = { n_private = 400, n_eval = 400 }
n_samples = 200
metrics = ["histogram-intersection"]
methods = [{ name = "independent-marginals" }, { name = "uniform" }]

[[section]]
name = "b"
dataset = "adult"
dataset_params = { n_private = 300, n_eval = 300 }
n_samples = 200
metrics = ["histogram-intersection"]
methods = [{ name = "independent-marginals" }]
"""


def test_dispatch_interleaves_twins_and_starts_long_groups_first(tmp_path):
    """Suite order starts a method's seed-0 and seed-1 runs (twins: the same shared caches)
    together; the driver interleaves twin groups round-robin, and once the store has timings
    starts the groups with the longest stored totals first."""
    from dparena.harness.runner import dispatch_order

    specs = parse_suite(__import__("tomllib").loads(TWINS)).specs
    assert [(s.section, s.method) for s in specs[:2]] == [("a", "independent-marginals")] * 2
    store = Store(tmp_path / "runs.sqlite")
    started: list = []
    runner = Runner(store, jobs=1, on_start=started.append)
    assert runner.run(specs).ok == len(specs)
    groups = [(s.section, s.method) for s in started]
    assert groups == [("a", "independent-marginals"), ("a", "uniform"),
                      ("b", "independent-marginals"), ("a", "independent-marginals"),
                      ("a", "uniform"), ("b", "independent-marginals")]
    # with stored timings: the longest group first (its total), the rest after it
    estimates = {s.key: (50.0 if s.method == "uniform" else 1.0) for s in specs}
    first = dispatch_order(specs, estimates)
    assert [(s.section, s.method) for s in first[:3]] == [
        ("a", "uniform"), ("a", "independent-marginals"), ("b", "independent-marginals")]
    assert sorted(s.key for s in first) == sorted(s.key for s in specs)


def test_two_workers_do_not_start_twins_together_when_other_work_waits():
    from dparena.harness.runner import _next_index

    specs = parse_suite(__import__("tomllib").loads(TWINS)).specs
    a_im0, a_im1 = specs[0], specs[1]
    b_im = next(s for s in specs if s.section == "b")
    a_uni = next(s for s in specs if s.method == "uniform")
    # a's dataset not warm yet (no run of it finished): b's run goes first, not a's twin nor a's
    # other method (both would fill a's shared caches while a_im0 fills them)
    assert _next_index([a_im1, a_uni, b_im], [a_im0], warm=set()) == 2
    from dparena.harness.runner import _bundle_key

    assert _next_index([a_im1, a_uni, b_im], [a_im0], warm={_bundle_key(a_im0)}) == 1
    assert _next_index([a_im1], [a_im0], warm=set()) == 0  # nothing else: no idle worker


def test_every_shipped_suite_loads_and_is_documented():
    """A suite under benchmarks/suites parses (names, parameters, δ rules, orderings) and has its
    row in docs/suites.md, so a new suite is neither broken nor undocumented."""
    from tests.paths import ROOT

    listed = (ROOT / "docs" / "suites.md").read_text()
    paths = sorted((ROOT / "benchmarks" / "suites").glob("*.toml"))
    assert len(paths) >= 9
    for path in paths:
        assert load_suite(path).specs, path.name
        assert f"| `{path.stem}` |" in listed, f"{path.name} has no row in docs/suites.md"


def test_quick_suite_runs_every_method_and_every_metric_family():
    """The quick suite (make demo, CI) keeps its coverage while it is cut to fit: every registered
    method and every metric but fluency-perplexity (the perplexity family under a SmolLM2
    reference LM, too slow for 2 cores; `perplexity` and `validity` run)."""
    from dparena.methods import methods
    from dparena.metrics import metrics
    from tests.paths import ROOT

    specs = load_suite(ROOT / "benchmarks" / "suites" / "quick.toml").specs
    test_only = {n for n in methods.names() if n.startswith("test-")}
    assert set(methods.names()) - test_only == {s.method for s in specs}
    assert set(metrics.names()) - {m for s in specs for m in s.metrics} == {"fluency-perplexity"}
