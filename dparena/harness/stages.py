"""The named stages of one run, in the order :func:`execute` calls them in the worker:

load (:func:`load_bundle`, in the driver, once per dataset) → :func:`generate` →
:func:`checked_output` → :func:`check_ledger` → :func:`write_artifact` → :func:`score_synthetic`
→ :func:`audit` (when the suite asks for one). ``dparena score`` runs :func:`score_synthetic` on a
file; the runner on a method's output.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from dparena.assets import AssetStore
from dparena.datasets.base import DatasetBundle
from dparena.harness.progress import ProgressFile
from dparena.harness.provenance import now, provenance
from dparena.harness.store import RunRecord, json_safe_info, write_synthetic
from dparena.harness.suite import RunSpec
from dparena.metrics.base import EvalData, MetricContext, eval_cache_home
from dparena.privacy import Ledger
from dparena.types import MetricValue, Synthetic

EPS_TOLERANCE = 1e-9


class InvalidOutput(Exception):
    """A method returned data that do not fit the public schema or n_samples."""


def load_bundle(spec: RunSpec, assets: AssetStore) -> DatasetBundle:
    """The spec's dataset, with its public size N (declared, never counted) set on the bundle."""
    from dparena.datasets import datasets

    dataset = datasets.create(spec.dataset, **spec.dataset_params)
    bundle = dataset.load(assets)
    bundle.public_size = dataset.private_size(assets)
    return bundle


def generate(method: Any, spec: RunSpec, bundle: DatasetBundle,
             work_dir: Path | None) -> tuple[Any, Ledger]:
    """``method.generate`` on the run's Task (private splits, public schema, budget, seed; never
    the eval split) with a fresh ledger: (what it returned, the ledger)."""
    from dparena.methods.base import Task

    ledger = Ledger()
    task = Task(
        private=bundle.private, schema=bundle.schema, budget=spec.budget,
        n_samples=spec.n_samples, seed=spec.seed, public=bundle.public,
        private_labels=bundle.private_labels, workdir=work_dir,
        public_size=bundle.public_size, secure_noise=spec.secure_noise,
        progress=ProgressFile(work_dir) if work_dir is not None else None,
    )
    return method.generate(task, ledger), ledger


def checked_output(synthetic: Any, spec: RunSpec, schema: Any,
                   method_cls: type) -> tuple[Synthetic, int]:
    """``synthetic`` conformed to the public schema (tables in schema order and dtypes) and its
    shortfall against ``spec.n_samples``; raises InvalidOutput naming the first offending column,
    row, image or text. Exactly ``n_samples`` records are required, or at most that many from a
    method that declares ``may_return_fewer``."""
    from dparena.datasets.schema import TableSchema
    from dparena.errors import SchemaError

    what = "the method's output"
    if not isinstance(synthetic, Synthetic):
        raise InvalidOutput(f"generate returned {type(synthetic).__name__}, not a Synthetic")
    try:
        if isinstance(schema, TableSchema):
            data, labels = schema.conform(synthetic.data, what), synthetic.labels
        else:  # ImageSchema / TextSchema: data and labels together
            data, labels = schema.conform(synthetic.data, synthetic.labels, what)
    except SchemaError as exc:
        raise InvalidOutput(str(exc)) from None
    n, wanted = len(data), spec.n_samples
    if n > wanted or (n < wanted and not getattr(method_cls, "may_return_fewer", False)):
        raise InvalidOutput(f"{what} has {n} records, but n_samples = {wanted} were requested; a "
                            f"method returns exactly n_samples records (fewer only if it declares "
                            f"may_return_fewer)")
    return replace(synthetic, data=data, labels=labels), wanted - n


def check_ledger(rec: RunRecord, ledger: Ledger) -> None:
    """Compose the ledger at the run's δ in the tightest valid accountant, store the spending on
    ``rec`` and judge it: ``ok``, or ``invalid`` when a private run booked nothing or spent more
    than its budget."""
    spec = rec.spec
    spent_eps, spent_delta = ledger.spent(spec.delta)
    rec.spent_epsilon, rec.spent_delta, rec.ledger = spent_eps, spent_delta, ledger.to_list()
    rec.accountant = ledger.accountant() if spec.is_dp else "none"
    if not spec.is_dp:
        rec.status = "ok"
        return
    within = (spent_eps <= spec.epsilon + EPS_TOLERANCE
              and spent_delta <= spec.delta * (1 + 1e-9))
    if not len(ledger):
        rec.status, rec.error = "invalid", "the method booked no privacy spending"
    elif not within:
        rec.status = "invalid"
        rec.error = (f"spent (ε={spent_eps:.6g}, δ={spent_delta:.3g}) exceeds the budget "
                     f"(ε={spec.epsilon:g}, δ={spec.delta:.3g})")
    else:
        rec.status = "ok"


def write_artifact(synthetic: Synthetic, artifact_dir: Path) -> Path:
    """The synthetic data written atomically under the run's ``artifacts/<key>/``."""
    return write_synthetic(synthetic.data, synthetic.labels, artifact_dir)


@dataclass(frozen=True)
class MetricScore:
    """What one metric gave: its values (empty when it failed), the names it shows on a
    leaderboard, its error as one line ("" when it scored) and the seconds it took."""

    metric: str
    values: tuple[MetricValue, ...]
    headline: frozenset[str]
    error: str = ""
    seconds: float = 0.0


def score_synthetic(synthetic: Synthetic, bundle: DatasetBundle,
                    metrics: Iterable[str] | Mapping[str, Mapping[str, Any]], ctx: MetricContext,
                    *, raise_errors: bool = False) -> list[MetricScore]:
    """Score ``synthetic`` against the bundle's eval split with each registered metric (a mapping
    gives each one's parameters). A metric that declares ``needs_private`` also sees the private
    split (``EvalData.private``); no other does. A failing metric is one :class:`MetricScore` with
    its error, and the others still score; ``raise_errors`` re-raises instead."""
    from dparena.metrics import metrics as registry

    params = metrics if isinstance(metrics, Mapping) else {name: {} for name in metrics}
    real = EvalData(data=bundle.eval, schema=bundle.schema, labels=bundle.eval_labels)
    scores = []
    for name, kwargs in params.items():
        t0 = time.perf_counter()
        try:
            metric = registry.create(name, **kwargs)
            headline = frozenset(metric.headline())
            # the private split only for metrics that declare they compare against it
            seen = replace(real, private=bundle.private) if metric.needs_private else real
            values = tuple(metric.compute(synthetic, seen, ctx))
        except Exception as exc:  # noqa: BLE001 - one failing metric must not lose the others
            if raise_errors:
                raise
            scores.append(MetricScore(name, (), frozenset(), one_line(exc),
                                      time.perf_counter() - t0))
            continue
        scores.append(MetricScore(name, values, headline, "", time.perf_counter() - t0))
    return scores


def audit(rec: RunRecord, method: Any, bundle: DatasetBundle) -> None:
    """The suite's canary audit of the method (``spec.audit``): its result and its ε lower bound
    as the ``audit/eps-lower-bound`` value on ``rec``, or the audit's error."""
    spec = rec.spec
    try:
        from dparena.harness.audit import audit_run

        result = audit_run(method, bundle.private, bundle.schema, spec.budget, spec.seed,
                           spec.audit, private_labels=bundle.private_labels)
        rec.audit = result.to_dict()
        rec.metrics.append({"name": "audit/eps-lower-bound", "metric": "audit",
                            "value": result.lower_bound, "direction": "minimize",
                            "version": "1", "headline": True})
    except Exception as exc:  # noqa: BLE001
        rec.metric_errors["audit"] = one_line(exc)


def execute(spec: RunSpec, bundle: DatasetBundle, artifact_dir: Path, cache_dir: Path,
            work_dir: Path | None = None) -> RunRecord:
    """Run one spec in this process through the stages and return its record (never raises)."""
    from dparena.methods import methods

    timings: dict[str, float] = {}
    # the public N the run used (declared, never counted): the leaderboards name it
    public = {"public_size": bundle.public_size} if bundle.public_size is not None else {}
    rec = RunRecord(spec=spec, status="failed", versions=provenance(), created_at=now(),
                    info=dict(public))
    try:
        method = methods.create(spec.method, **spec.method_params)
        t0 = time.perf_counter()
        synthetic, ledger = generate(method, spec, bundle, work_dir)
        timings["generate_s"] = time.perf_counter() - t0
        rec.info = {**json_safe_info(synthetic.info), **public}

        synthetic, shortfall = checked_output(synthetic, spec, bundle.schema, type(method))
        if shortfall:  # a may_return_fewer method: ok, with the shortfall on record
            rec.info["shortfall"] = shortfall
            rec.info.setdefault("warning", f"returned {len(synthetic)} of the {spec.n_samples} "
                                           f"requested records")
        check_ledger(rec, ledger)

        t0 = time.perf_counter()
        rec.artifact = str(write_artifact(synthetic, artifact_dir))
        timings["write_s"] = time.perf_counter() - t0

        ctx = MetricContext(seed=spec.seed, dataset=spec.dataset,
                            dataset_version=spec.dataset_version, cache_dir=cache_dir,
                            eval_cache_dir=eval_cache_home())
        wanted = {name: spec.metric_params.get(name, {}) for name in spec.metrics}
        for score in score_synthetic(synthetic, bundle, wanted, ctx):
            rec.metrics += [{**v.to_dict(), "metric": score.metric,
                             "headline": v.name in score.headline} for v in score.values]
            if score.error:
                rec.metric_errors[score.metric] = score.error
            timings[f"metric:{score.metric}_s"] = score.seconds
        if spec.audit is not None and rec.status == "ok":
            t0 = time.perf_counter()
            audit(rec, method, bundle)
            timings["audit_s"] = time.perf_counter() - t0
    except InvalidOutput as exc:  # the reason is the whole story: no traceback
        rec.status, rec.error = "failed", f"invalid output: {exc}"
    except Exception as exc:  # noqa: BLE001 - recorded as a failed run
        rec.status = "failed"
        rec.error = f"{one_line(exc)}\n{traceback.format_exc()}"
    rec.timings = timings
    return rec


def one_line(exc: BaseException) -> str:
    """An exception as one line: its type and the first line of its message (≤ 500 chars)."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:500]
