"""The `dparena` command line: small subcommands, heavy imports inside each command body."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import typer

from dparena.errors import ConfigError, DparenaError

app = typer.Typer(
    add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
    help="Benchmark differentially private synthetic data at matched privacy budgets.",
)
accountant_app = typer.Typer(no_args_is_help=True, help="Privacy accountant calculators.")
app.add_typer(accountant_app, name="accountant")
schema_app = typer.Typer(no_args_is_help=True, help="Public schema files of your own tables.")
app.add_typer(schema_app, name="schema")

LIST_FORMATS = ("table", "json", "md")


@app.command("list")
def list_cmd(
    kind: str = typer.Argument(None, help="datasets, methods or metrics (default: all three)"),
    fmt: str = typer.Option("table", "--format", help="table, json or md (docs/catalogue.md)."),
    as_json: bool = typer.Option(False, "--json", help="Same as --format json."),
):
    """List registered datasets, methods and metrics, as their classes describe themselves.

    Examples: dparena list methods --json;  dparena list --format md > docs/catalogue.md
    """
    from dparena import listing

    if fmt not in LIST_FORMATS:
        raise ConfigError(f"--format must be one of {', '.join(LIST_FORMATS)}, got {fmt!r}")
    fmt = "json" if as_json else fmt
    if kind is not None:
        listing.registry(kind)  # an unknown kind is an error before anything is printed
    kinds = listing.KINDS if kind is None else (kind,)
    if fmt == "md":
        typer.echo(listing.markdown(kinds), nl=False)
        return
    if fmt == "json":
        rows = listing.rows(kind) if kind is not None else {k: listing.rows(k) for k in kinds}
        typer.echo(json.dumps(rows, indent=1))
        return
    from rich.console import Console
    from rich.table import Table

    for k in kinds:
        table = Table(title=k)
        for col in ("name", "modality", "description", "extra"):
            table.add_column(col)
        for r in listing.rows(k):
            table.add_row(r["name"], r["modality"], r["description"],
                          f"dparena[{r['extra']}]" if r["extra"] else "")
        Console().print(table)


@app.command()
def fetch(
    names: list[str] = typer.Argument(None, help="Asset or dataset names (default: every asset)."),
):
    """Download and verify assets into $DPARENA_HOME (default ~/.cache/dparena).

    Example: dparena fetch adult
    """
    from rich.progress import Progress

    from dparena.assets import ASSETS, AssetStore
    from dparena.datasets import datasets
    from dparena.errors import UnknownNameError
    from dparena.registry import did_you_mean

    store = AssetStore()
    wanted: list[str] = []
    for name in names or list(ASSETS):  # every name is checked before anything is fetched
        if name in ASSETS:
            wanted.append(name)
        elif name in datasets:
            wanted.extend(datasets.create(name).assets())
        else:
            raise UnknownNameError(
                f"unknown asset or dataset {name!r}{did_you_mean(name, [*ASSETS, *datasets])} "
                f"(datasets: {', '.join(datasets)}; assets: {', '.join(ASSETS)})")
    with Progress(transient=False) as progress:
        task = progress.add_task("fetching", total=len(wanted))
        for name in wanted:
            progress.update(task, description=name)
            path = store.path(name, progress=lambda msg: progress.update(task, description=msg))
            progress.advance(task)
            progress.console.print(f"{name}: {path}")


@app.command()
def run(
    suite: Path = typer.Argument(..., help="Suite TOML file, e.g. benchmarks/suites/quick.toml."),
    db: Path = typer.Option(None, help="Result database (default results/<suite>/runs.sqlite)."),
    jobs: int = typer.Option(1, help="Runs in parallel (each in its own process)."),
    only: list[str] = typer.Option(None, help="Keep runs matching KEY=VALUE (dataset, method, "
                                               "label, section, eps, seed); repeatable."),
    retry_failed: bool = typer.Option(False, help="Re-run runs recorded as failed."),
    timeout: float = typer.Option(None, help="Per-run time limit in seconds."),
    strict: bool = typer.Option(False, help="Exit 1 if any run failed or was INVALID."),
    executor: str = typer.Option("local", help="local (forked processes) or ray."),
    address: str = typer.Option(None, help="Ray cluster address (with --executor ray)."),
    quiet: bool = typer.Option(False, help="No progress, warnings or leaderboard on the screen: "
                               "only failures, each run's ε spent and the summary."),
    secure_noise: bool = typer.Option(False, help="Draw every DP noise sample from OS entropy "
                                      "(not reproducible; use it when the output is released)."),
    timings: bool = typer.Option(False, help="Print a per-stage time table (load, generate, write, "
                                 "each metric) of the suite's runs at the end."),
    timings_json: Path = typer.Option(None, help="Also write the wall time, the per-stage table and "
                                      "per-method totals to this JSON file (e.g. "
                                      "benchmarks/perf/quick-suite.json)."),
):
    """Run a suite, skipping runs already in the database; write the leaderboard next to it.

    Progress: on a terminal, live bars with an ETA from the store's earlier timings; in a log,
    a line per 10% of the suite and per 10% of each long run (PE iterations, DP-SGD steps).

    Example: dparena run benchmarks/suites/quick.toml --only method=independent-marginals
    """
    import time

    from rich.console import Console

    from dparena.harness.executors import LocalExecutor, RayExecutor
    from dparena.harness.progress import SuiteProgress, estimate_seconds
    from dparena.harness.runner import Runner
    from dparena.harness.store import Store
    from dparena.harness.suite import check_datasets, load_suite
    from dparena.leaderboard.publish import print_tables, write_leaderboards, write_orderings

    if jobs < 1:
        raise ConfigError("--jobs must be >= 1")
    if timeout is not None and not (math.isfinite(timeout) and timeout > 0):
        raise ConfigError(f"--timeout must be a positive number of seconds, got {timeout:g}")
    if executor not in ("local", "ray"):
        raise ConfigError(f"unknown executor {executor!r}: use local or ray")
    spec = load_suite(suite, secure_noise=secure_noise)
    specs = spec.filter(only) if only else spec.specs
    if not specs:
        raise ConfigError("no run matches the --only filters")
    db = db or Path("results") / spec.name / "runs.sqlite"
    _check_db_path(db)
    check_datasets(specs)  # the user's own data files, before anything is written
    store = Store(db)
    console = Console(stderr=True)
    wall0 = time.perf_counter()
    backend = RayExecutor(address) if executor == "ray" else LocalExecutor(jobs)
    runner = Runner(store, timeout=timeout, executor=backend)
    todo = runner.pending(specs, retry_failed)
    estimates = estimate_seconds(todo, store.runs()) if todo and not quiet else {}
    with SuiteProgress(console, len(todo), estimates, jobs=jobs, title=spec.name,
                       done_before=len(specs) - len(todo), work_dir=store.work_dir,
                       quiet=quiet) as progress:

        def done(rec):
            progress.finished(rec.spec)
            if rec.status != "ok":
                console.print(f"[{'red' if rec.status == 'failed' else 'yellow'}]{rec.status}"
                              f"[/]: {rec.spec.name}: {rec.error.splitlines()[0] if rec.error else ''}")
            elif rec.info.get("warning") and not quiet:  # e.g. an LM that produced no valid row
                console.print(f"[yellow]warning[/]: {rec.spec.name}: {rec.info['warning']}")
            # what each run spent is shown even with --quiet
            if rec.spec.is_dp and rec.spent_epsilon is not None:
                console.print(f"[dim]ε spent {rec.spent_epsilon:.4g} of {rec.spec.epsilon:g} "
                              f"(δ {rec.spec.delta:.3g}, accountant {rec.accountant}): "
                              f"{rec.spec.name}[/]", highlight=False)

        runner.on_start, runner.on_done = progress.started, done
        summary = runner.run(specs, retry_failed)
    console.print(f"{summary.total} runs: {summary.ok} ok, {summary.invalid} invalid, "
                  f"{len(summary.failed)} failed, {summary.skipped} already done ({db})")
    tables = write_leaderboards(store, db.parent)
    if not quiet:
        print_tables(tables)
    typer.echo(f"wrote {db.parent / 'leaderboard.md'} and {db.parent / 'leaderboard.html'}",
               err=True)
    if spec.orderings:
        write_orderings(store, spec, db.parent, quiet)
    if timings or timings_json:
        keys = {s.key for s in specs}
        rows = [r for r in store.runs() if r.key in keys]
        wall_s = time.perf_counter() - wall0
        if timings:
            _print_timings(rows, runner.load_seconds, wall_s)
        if timings_json:
            _write_timings(timings_json, rows, runner.load_seconds, wall_s, suite=spec.name,
                           jobs=jobs, ran=summary.ok + summary.invalid + len(summary.failed))
    if strict and (summary.failed or summary.invalid):
        raise typer.Exit(1)


@app.command()
def orderings(
    suite: Path = typer.Argument(..., help="Suite TOML file with \\[\\[ordering]] tables."),
    db: Path = typer.Option(None, help="Result database (default results/<suite>/runs.sqlite)."),
):
    """Judge the suite's \\[\\[ordering]] claims on stored runs; write orderings.md beside the db.

    Example: dparena orderings benchmarks/suites/ordering-cpu.toml
    """
    from dparena.harness.store import Store
    from dparena.harness.suite import load_suite
    from dparena.leaderboard.publish import write_orderings

    spec = load_suite(suite)
    if not spec.orderings:
        raise ConfigError(f"{suite} has no [[ordering]] tables; add some (see docs/protocols.md)")
    db = db or Path("results") / spec.name / "runs.sqlite"
    _check_db_path(db)
    if not db.exists():
        raise ConfigError(f"--db {db} does not exist; run the suite first: dparena run {suite}")
    write_orderings(Store(db, mode="r"), spec, db.parent, quiet=False)


def _check_db_path(db: Path) -> None:
    """A result database path is a new file or an existing SQLite file (else a ConfigError)."""
    if db.is_dir():
        raise ConfigError(f"--db {db} is a folder; give a file path such as {db / 'runs.sqlite'}")
    if db.exists():
        try:
            with open(db, "rb") as fh:
                head = fh.read(16)
        except OSError as exc:
            raise ConfigError(f"--db {db} cannot be read ({exc.strerror or exc})") from None
        if head and head != b"SQLite format 3\x00":
            raise ConfigError(f"--db {db} exists and is not an SQLite database; give a new path "
                              f"or a runs.sqlite written by dparena run")


def _write_timings(path: Path, rows, loads: dict[str, float], wall_s: float, *, suite: str,
                   jobs: int, ran: int) -> None:
    """``--timings-json``: :func:`dparena.harness.progress.timings_report`, written atomically."""
    import json
    import os
    import platform

    from dparena.harness.progress import timings_report
    from dparena.io import write_text_atomic

    machine = {"cpus": os.cpu_count(), "machine": platform.machine(),
               "python": platform.python_version()}
    report = timings_report(rows, loads, wall_s, suite=suite, jobs=jobs, ran=ran,
                            machine=machine)
    write_text_atomic(path, json.dumps(report, indent=1) + "\n")
    typer.echo(f"wrote {path}", err=True)


def _print_timings(rows, loads: dict[str, float], wall_s: float) -> None:
    """The per-stage time table of ``dparena run --timings`` (stdout)."""
    from rich.console import Console
    from rich.table import Table as RichTable

    from dparena.harness.progress import format_seconds, timings_table

    table = timings_table(rows, loads)
    whole = sum(t for stage, _, t, _, _ in table if stage in ("load", "run")) or 1.0
    rt = RichTable(title=f"Time per stage: {len(rows)} runs (stored timings), wall "
                         f"{format_seconds(wall_s)}", title_justify="left")
    for name, justify in (("stage", "left"), ("count", "right"), ("total s", "right"),
                          ("mean s", "right"), ("max s", "right"), ("share", "right")):
        rt.add_column(name, justify=justify)
    for stage, count, total, mean, most in table:
        share = "" if stage == "run" else f"{total / whole:.0%}"
        rt.add_row(stage, str(count), f"{total:.1f}", f"{mean:.2f}", f"{most:.2f}", share,
                   style="bold" if stage == "run" else None)
    Console(width=max(100, Console().width)).print(rt)


@app.command()
def leaderboard(
    db: Path = typer.Option(Path("results/quick/runs.sqlite"), help="Result database."),
    fmt: str = typer.Option("md", "--format", help="md, html, latex, csv or json."),
    out: Path = typer.Option(None, help="Write to this file instead of standard output."),
    all_metrics: bool = typer.Option(False, help="Show every metric value, not just headlines."),
):
    """Aggregate a result database over seeds and render the leaderboard.

    Example: dparena leaderboard --db results/quick/runs.sqlite --format json --out baseline.json
    """
    from dparena.io import write_text_atomic
    from dparena.leaderboard.publish import load_tables
    from dparena.leaderboard.render import FORMATS, render

    if fmt not in FORMATS:
        raise ConfigError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")
    text = render(load_tables(db, all_metrics), fmt)
    if out is None:
        typer.echo(text, nl=False)
    else:
        write_text_atomic(out, text)
        typer.echo(f"wrote {out}", err=True)


@app.command()
def check(
    db: Path = typer.Option(..., help="Result database to check."),
    baseline: Path = typer.Option(..., help="Baseline from `dparena leaderboard --format json`."),
    tolerance: float = typer.Option(0.05, help="Allowed relative drop of a mean (0.05 = 5%)."),
    allow_missing: bool = typer.Option(False, help="Report baseline entries without a current "
                                                   "value (failed, absent) instead of failing."),
    unseeded_tolerance: float = typer.Option(
        0.4, help="Allowed relative drop of a single run of a method whose noise takes no seed "
                  "(AIM, MST, secure noise); smaller drops beyond --tolerance are reported as "
                  "noisy."),
):
    """Exit 1 if any metric regressed or went missing against the baseline; print what changed.

    Example: dparena check --db results/quick/runs.sqlite --baseline results/baseline.json
    """
    from dparena.leaderboard.gate import check_database, failures, format_comparisons

    comps = check_database(db, baseline, tolerance, allow_missing, unseeded_tolerance)
    typer.echo(format_comparisons(comps, allow_missing))
    if failures(comps, allow_missing):
        raise typer.Exit(1)


@app.command()
def score(
    dataset: str = typer.Option(..., help="Registered dataset whose eval split is the reference."),
    synthetic: Path = typer.Option(..., help="Synthetic data: a table (.csv or .parquet), texts "
                                   "(.jsonl of {text, label}) or images (.npz of data, labels)."),
    metric: list[str] = typer.Option(None, help="Metric name (repeatable; default: all that apply)."),
    dataset_param: list[str] = typer.Option(None, help="Dataset parameter KEY=VALUE (repeatable)."),
    seed: int = typer.Option(0, help="Seed for metrics that train models."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
):
    """Score existing synthetic data against a dataset's eval split (no generator needed).

    Tables: .csv or .parquet with the schema's columns; texts: .jsonl, one {"text": ..., "label":
    INDEX} per line; images: .npz with uint8 "data" [N, H, W, C] and integer "labels" (the
    formats of a run's artifacts/). Every value is checked against the public schema first.

    Example: dparena score --dataset adult --synthetic my_synth.csv --metric ml-efficacy
    """
    from dparena.assets import AssetStore
    from dparena.datasets import datasets
    from dparena.harness.stages import score_synthetic
    from dparena.metrics import metrics as registry
    from dparena.metrics.base import MetricContext, eval_cache_home
    from dparena.types import Synthetic

    ds = datasets.create(dataset, **_key_values(dataset_param, "--dataset-param"))
    if seed < 0:
        raise ConfigError(f"--seed must be >= 0, got {seed}")
    names = metric or [n for n in registry.names() if registry.create(n).supports(ds.modality)]
    for m in [registry.create(n) for n in names]:  # every name checked before data are read
        if not m.supports(ds.modality):
            raise ConfigError(f"metric {m.name!r} does not apply to {ds.modality.value} data")
    if not synthetic.exists():
        raise ConfigError(f"synthetic file {synthetic} does not exist")
    if synthetic.is_dir():
        raise ConfigError(f"{synthetic} is a folder; give the synthetic data file")
    data, labels = _read_synthetic(synthetic, ds.schema)  # checked before any data is loaded
    if len(data) == 0:
        raise ConfigError(f"{synthetic}: the file has no rows")
    bundle = ds.load(AssetStore())
    ctx = MetricContext(seed=seed, dataset=dataset, dataset_version=ds.version,
                        eval_cache_dir=eval_cache_home())
    # privacy-risk metrics (needs_private) compare against the private split
    scores = score_synthetic(Synthetic(data, labels=labels), bundle, names, ctx,
                             raise_errors=True)
    values = [v for score in scores for v in score.values]
    if not values:  # e.g. validity / perplexity, which score a method's own LM
        raise ConfigError(f"{', '.join(names)} gave no value for a file: they score the "
                          f"generating method's own model; choose other --metric values")
    if as_json:
        typer.echo(json.dumps([v.to_dict() for v in values], indent=1))
        return
    width = max(len(v.name) for v in values)
    for v in values:
        typer.echo(f"{v.name:<{width}}  {v.value:.4f} {v.direction.arrow}")


def _read_synthetic(path: Path, schema):
    """(data, labels) of a synthetic file, conformed to ``schema`` (one-line errors)."""
    import zipfile

    import numpy as np
    import pandas as pd

    from dparena.datasets.schema import ImageSchema, TableSchema, TextSchema
    from dparena.io import read_parquet

    what = str(path)
    formats = {TableSchema: (".csv", ".txt", ".parquet"), TextSchema: (".jsonl",),
               ImageSchema: (".npz",)}
    allowed = next(v for k, v in formats.items() if isinstance(schema, k))
    if path.suffix not in allowed:
        kinds = {".csv": "a .csv or .parquet file", ".jsonl": "a .jsonl file of {\"text\": ..., "
                 "\"label\": INDEX} lines", ".npz": "an .npz file with arrays data and labels"}
        raise ConfigError(f"{path}: {schema.kind if hasattr(schema, 'kind') else 'table'} data "
                          f"need {kinds[allowed[0]]}")
    try:
        if isinstance(schema, TableSchema):
            if path.suffix == ".parquet":
                frame = read_parquet(path)
            else:
                frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
            return schema.conform(frame, what=what), None
        if isinstance(schema, TextSchema):
            from dparena.datasets.files import jsonl_objects

            items = [item for _, item in jsonl_objects(path, ("text", "label"))]
            texts = [item["text"] for item in items]
            labels = [item["label"] for item in items]
            if not texts:
                return [], None
            return schema.conform(texts, np.array(labels, dtype=object), what=what)
        with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as arrays:
            missing = [k for k in ("data", "labels") if k not in arrays.files]
            if missing:
                raise ConfigError(f"{path}: missing arrays {missing}; save it with "
                                  f"np.savez(path, data=images, labels=labels)")
            images, labels = arrays["data"], arrays["labels"]
        return schema.conform(images, labels, what=what)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"{path}: could not read it ({reason})") from None


@app.command()
def audit(
    method: str = typer.Option(..., help="Registered method to audit."),
    dataset: str = typer.Option("adult", help="Registered dataset whose private split is used."),
    epsilon: float = typer.Option(..., help="The ε the method claims (its budget)."),
    delta: float = typer.Option(1e-5, help="The δ of the budget."),
    canaries: int = typer.Option(None, help="Canaries in one run (default: every available one)."),
    runs: int = typer.Option(1, help="1: one-run analysis; R > 1: R one-canary runs, "
                                     "Clopper–Pearson bound."),
    n_private: int = typer.Option(300, help="Records of the private split to audit on."),
    n_samples: int = typer.Option(None, help="Synthetic records per run (default: 5 × n_private "
                                             "rows for tables, n_private images or texts)."),
    confidence: float = typer.Option(0.95, help="Confidence of the lower bound."),
    param: list[str] = typer.Option(None, help="Method parameter KEY=VALUE (repeatable)."),
    seed: int = typer.Option(0),
    as_json: bool = typer.Option(False, "--json"),
):
    """Empirical lower bound on a method's ε from canaries; exit 1 if it exceeds the claimed ε.

    Example: dparena audit --method independent-marginals --epsilon 1 --canaries 30
    """
    from dparena.assets import AssetStore
    from dparena.datasets import datasets
    from dparena.harness.audit import audit_run
    from dparena.methods import methods
    from dparena.types import Budget

    _check_budget(epsilon, delta)
    budget = Budget(epsilon, delta)
    if not 0 < confidence < 1 or runs < 1:
        raise ConfigError("--confidence must be in (0, 1) and --runs >= 1")
    for option, value, least in (("--canaries", canaries, 1), ("--n-private", n_private, 2),
                                 ("--n-samples", n_samples, 1), ("--seed", seed, 0)):
        if value is not None and value < least:
            raise ConfigError(f"{option} must be >= {least}, got {value}")
    m = methods.create(method, **_key_values(param, "--param"))
    ds = datasets.create(dataset)
    if not m.supports(ds.modality):
        raise ConfigError(f"method {method!r} is for {'/'.join(_modalities(m))} data, dataset "
                          f"{dataset!r} is {ds.modality.value}")
    if runs > 1 and ds.modality.value != "tabular":
        raise ConfigError(f"{ds.modality.value} audits use the one-run analysis only; drop --runs")
    bundle = ds.load(AssetStore())
    result = audit_run(m, bundle.private, bundle.schema, budget, seed,
                       {"canaries": canaries, "runs": runs, "confidence": confidence,
                        "n_private": n_private, "n_samples": n_samples},
                       private_labels=bundle.private_labels)
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=1))
    else:
        level = f"{confidence * 100:g}%"
        verdict = (f"AUDIT-FAILED: exceeds the claimed ε at {level} confidence" if result.failed
                   else f"consistent with the claim at {level} confidence")
        typer.echo(f"{method} on {dataset}: claimed ε = {epsilon:g} (δ = {delta:g}); audited lower "
                   f"bound ε ≥ {result.lower_bound:.3f} at {level} confidence "
                   f"({result.analysis}, {result.correct}/{result.guesses} correct guesses, "
                   f"{result.canaries} canaries); p-value of the claim p = {result.p_value:.3g}: "
                   f"{verdict}")
        typer.echo(f"attack: {result.attack}")
    if result.failed:
        raise typer.Exit(1)


def _check_budget(epsilon: float, delta: float) -> None:
    """A claimed DP budget: finite ε > 0 and δ in (0, 1)."""
    if not (math.isfinite(epsilon) and epsilon > 0):
        raise ConfigError(f"--epsilon must be a finite number > 0, got {epsilon:g}")
    if not 0 < delta < 1:
        raise ConfigError(f"--delta must be in (0, 1), got {delta:g}")


def _modalities(obj) -> list[str]:
    mods = obj.modality if isinstance(obj.modality, tuple) else (obj.modality,)
    return [m.value for m in mods]


def _key_values(items: list[str] | None, option: str) -> dict:
    out = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"{option} takes KEY=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        try:
            out[k] = json.loads(v)
        except json.JSONDecodeError:
            out[k] = v
    return out


@schema_app.command("draft")
def schema_draft(
    file: Path = typer.Argument(..., help="A PUBLIC table (.csv or .parquet) to draft from."),
    target: str = typer.Option(None, help="The target column (what ML-efficacy predicts)."),
    out: Path = typer.Option(None, help="Write the draft here (default: standard output)."),
    fmt: str = typer.Option(None, "--format", help="csv or parquet (default: from the extension)."),
    force: bool = typer.Option(False, help="Overwrite --out if it exists."),
):
    """Draft a schema file (TOML) for `dataset = "csv"` from a table you declare public.

    Bounds, categories and the size are READ FROM FILE: if it holds private records, they are not
    private. Review the draft (its comments say what to check) before using it.

    Example: dparena schema draft public_sample.csv --target income --out schema.toml
    """
    from dparena.datasets.files import require_file
    from dparena.datasets.table_files import draft_schema, read_table_file
    from dparena.io import write_text_atomic

    require_file(file, "table", "schema draft")
    if out is not None:
        if out.is_dir():
            raise ConfigError(f"--out {out} is a folder; give a file path such as "
                              f"{out / 'schema.toml'}")
        if out.exists() and not force:
            raise ConfigError(f"--out {out} exists; choose another path or pass --force")
    text = draft_schema(read_table_file(file, fmt, "schema draft"), str(file), target)
    typer.echo(f"warning: the draft's bounds, categories and size are read from {file}, which you "
               f"declared public; if it holds private records they are not private: replace them "
               f"with documented values before use", err=True)
    if out is None:
        typer.echo(text, nl=False)
    else:
        write_text_atomic(out, text)
        typer.echo(f"wrote {out}: review every line before using it", err=True)


@accountant_app.command("pe")
def accountant_pe(
    steps: int = typer.Option(..., help="Number of PE iterations T."),
    delta: float = typer.Option(..., help="Target δ."),
    sigma: float = typer.Option(None, help="Histogram noise σ (prints ε)."),
    epsilon: float = typer.Option(None, help="Target ε (prints σ)."),
):
    """Private Evolution's accountant: T Gaussian histograms of sensitivity 1 (μ = √T/σ GDP).

    Example: dparena accountant pe --sigma 2.828 --steps 5 --delta 1e-5
    """
    from dparena.privacy import pe_epsilon, pe_sigma

    if (sigma is None) == (epsilon is None):
        raise ConfigError("give exactly one of --sigma or --epsilon")
    if steps < 1 or not 0 < delta < 1:
        raise ConfigError("--steps must be >= 1 and --delta in (0, 1)")
    if sigma is not None:
        if not (math.isfinite(sigma) and sigma > 0):
            raise ConfigError(f"--sigma must be a finite number > 0, got {sigma:g}")
        value = _computed(lambda: pe_epsilon(sigma, steps, delta),
                          f"--sigma {sigma:g} is too small for a finite ε over {steps} steps")
        typer.echo(f"epsilon = {value:.6f}")
    else:
        if not (math.isfinite(epsilon) and epsilon > 0):
            raise ConfigError(f"--epsilon must be a finite number > 0, got {epsilon:g}")
        value = _computed(lambda: pe_sigma(epsilon, steps, delta),
                          f"no finite σ gives ε = {epsilon:g} at δ = {delta:g}")
        typer.echo(f"sigma = {value:.6f}")


def _computed(compute, too_far: str) -> float:
    """``compute()``, or a ConfigError saying ``too_far`` where the accountant cannot give a finite
    answer (σ → 0 gives ε → ∞)."""
    import warnings

    try:
        with warnings.catch_warnings():  # the solver's overflow warnings: the error line says it
            warnings.simplefilter("ignore", RuntimeWarning)
            value = compute()
    except (ValueError, OverflowError, ArithmeticError):
        value = math.nan
    if not (math.isfinite(value) and value >= 0):
        raise ConfigError(f"{too_far}; use a value nearer 1")
    return value


def main() -> None:
    """Entry point: user mistakes print one line and exit 2."""
    from dparena.plugins import load_plugins

    try:
        load_plugins()
        rc = app(standalone_mode=False)
    except DparenaError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        typer.echo("aborted", err=True)
        sys.exit(130)
    except Exception as exc:
        # click's usage errors (unknown command or option, missing argument); typer vendors its
        # own copy of click, so match the class by name rather than by click's type
        if any(cls.__name__ == "ClickException" for cls in type(exc).__mro__):
            message = " ".join(exc.format_message().split())
            if "command" in message:
                message = message.rstrip(".") + "; run 'dparena --help' for the commands"
            typer.echo(f"error: {message}", err=True)
            sys.exit(exc.exit_code)
        raise
    sys.exit(rc if isinstance(rc, int) else 0)


if __name__ == "__main__":
    main()
