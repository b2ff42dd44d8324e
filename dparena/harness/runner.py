"""The runner: named stages per run (load → generate → check ledger → write artifact → score →
record), each run in its own forked worker process, skipping runs already in the store.

A worker that raises, crashes or times out is recorded as ``failed`` and the suite goes on; the
driver process alone writes the store, one transaction per run, so killing the driver at any point
loses at most the runs in flight, which the next invocation re-does. A driver leases each run in
the store before starting it (``Store.claim``), so several drivers of one store (or Ray drivers)
split its runs instead of each running all of them; the leases of a dead driver are taken over.
"""

from __future__ import annotations

import datetime as _dt
import functools
import multiprocessing as mp
import os
import platform
import shutil
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

import dparena
from dparena.assets import AssetStore
from dparena.datasets.base import DatasetBundle
from dparena.harness.store import RunRecord, Store, json_safe_info, lease_holder, write_synthetic
from dparena.harness.suite import RunSpec
from dparena.metrics.base import EvalData, MetricContext
from dparena.privacy import Ledger
from dparena.types import Synthetic

EPS_TOLERANCE = 1e-9
LEASE_RENEW_S = 30.0  # how often a driver renews the leases of its runs in flight
LEASE_POLL_S = 1.0  # how often it asks again about runs another driver holds


@dataclass
class Summary:
    total: int = 0
    skipped: int = 0
    ok: int = 0
    invalid: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (run name, first error line)


def load_bundle(spec: RunSpec, assets: AssetStore) -> DatasetBundle:
    """The spec's dataset, with its public size N (declared, never counted) set on the bundle."""
    from dparena.datasets import datasets

    dataset = datasets.create(spec.dataset, **spec.dataset_params)
    bundle = dataset.load(assets)
    bundle.public_size = dataset.private_size(assets)
    return bundle


def execute(spec: RunSpec, bundle: DatasetBundle, artifact_dir: Path, cache_dir: Path,
            work_dir: Path | None = None) -> RunRecord:
    """Run one spec in this process and return its record (never raises)."""
    from dparena.methods import methods
    from dparena.methods.base import Task
    from dparena.metrics import metrics as metric_registry

    timings: dict[str, float] = {}
    rec = RunRecord(spec=spec, status="failed", versions=provenance(),
                    created_at=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"))
    try:
        method = methods.create(spec.method, **spec.method_params)
        ledger = Ledger()
        task = Task(
            private=bundle.private, schema=bundle.schema, budget=spec.budget,
            n_samples=spec.n_samples, seed=spec.seed, public=bundle.public,
            private_labels=bundle.private_labels, workdir=work_dir,
            public_size=bundle.public_size, secure_noise=spec.secure_noise,
        )
        t0 = time.perf_counter()
        synthetic = method.generate(task, ledger)
        timings["generate_s"] = time.perf_counter() - t0
        rec.info = json_safe_info(synthetic.info)

        synthetic, shortfall = checked_output(synthetic, spec, bundle.schema, type(method))
        if shortfall:  # a may_return_fewer method: ok, with the shortfall on record
            rec.info["shortfall"] = shortfall
            rec.info.setdefault("warning", f"returned {len(synthetic)} of the {spec.n_samples} "
                                           f"requested records")

        spent_eps, spent_delta = ledger.spent(spec.delta)
        rec.spent_epsilon, rec.spent_delta, rec.ledger = spent_eps, spent_delta, ledger.to_list()
        rec.accountant = ledger.accountant() if spec.private else "none"
        if spec.private:
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
        else:
            rec.status = "ok"

        t0 = time.perf_counter()
        path = write_synthetic(synthetic.data, synthetic.labels, artifact_dir)
        rec.artifact = str(path)
        timings["write_s"] = time.perf_counter() - t0

        real = EvalData(data=bundle.eval, schema=bundle.schema, labels=bundle.eval_labels)
        ctx = MetricContext(seed=spec.seed, dataset=spec.dataset,
                            dataset_version=spec.dataset_version, cache_dir=cache_dir)
        for name in spec.metrics:
            t0 = time.perf_counter()
            try:
                metric = metric_registry.create(name, **spec.metric_params.get(name, {}))
                headline = set(metric.headline())
                # the private split only for metrics that declare they compare against it
                seen = replace(real, private=bundle.private) if metric.needs_private else real
                for v in metric.compute(synthetic, seen, ctx):
                    rec.metrics.append({**v.to_dict(), "metric": name,
                                        "headline": v.name in headline})
            except Exception as exc:  # noqa: BLE001 - one failing metric must not lose the run
                rec.metric_errors[name] = _one_line(exc)
            timings[f"metric:{name}_s"] = time.perf_counter() - t0
        if spec.audit is not None and rec.status == "ok":
            t0 = time.perf_counter()
            try:
                from dparena.harness.audit import audit_run

                result = audit_run(method, bundle.private, bundle.schema, spec.budget, spec.seed,
                                   spec.audit, private_labels=bundle.private_labels)
                rec.audit = result.to_dict()
                rec.metrics.append({"name": "audit/eps-lower-bound", "metric": "audit",
                                    "value": result.lower_bound, "direction": "minimize",
                                    "version": "1", "headline": True})
            except Exception as exc:  # noqa: BLE001
                rec.metric_errors["audit"] = _one_line(exc)
            timings["audit_s"] = time.perf_counter() - t0
    except InvalidOutput as exc:  # the reason is the whole story: no traceback
        rec.status, rec.error = "failed", f"invalid output: {exc}"
    except Exception as exc:  # noqa: BLE001 - recorded as a failed run
        rec.status = "failed"
        rec.error = f"{_one_line(exc)}\n{traceback.format_exc()}"
    rec.timings = timings
    return rec


class InvalidOutput(Exception):
    """A method returned data that do not fit the public schema or n_samples."""


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


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:500]


def _rss_mb(pid: int) -> float | None:
    """Current resident memory of a process (Linux /proc), or None."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def _peak_rss_mb() -> float | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this worker when the driver dies, so no orphan outlives a killed suite."""
    try:
        import ctypes
        import signal

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: orphans finish their run and exit
        pass


def _worker(spec: RunSpec, bundle: DatasetBundle, artifact_dir: Path, cache_dir: Path,
            work_dir: Path, threads: int, conn: Connection) -> None:
    _die_with_parent()
    os.environ["OMP_NUM_THREADS"] = str(threads)
    if "torch" in sys.modules:  # configure torch only where it is already loaded
        sys.modules["torch"].set_num_threads(threads)
    rec = execute(spec, bundle, artifact_dir, cache_dir, work_dir)
    rec.peak_rss_mb = _peak_rss_mb()
    conn.send(rec)
    conn.close()


class Runner:
    """Runs specs in forked worker processes (``jobs`` at a time) and records each outcome."""

    def __init__(self, store: Store, assets: AssetStore | None = None, jobs: int = 1,
                 timeout: float | None = None, memory_mb: float | None = None,
                 on_start: Callable[[RunSpec], None] | None = None,
                 on_done: Callable[[RunRecord], None] | None = None):
        self.store = store
        self.assets = assets or AssetStore()
        self.jobs = max(1, int(jobs))
        self.timeout = timeout
        self.memory_mb = memory_mb
        self.on_start = on_start
        self.on_done = on_done
        self._leases: _Leases | None = None

    def pending(self, specs: list[RunSpec], retry_failed: bool = False) -> list[RunSpec]:
        statuses = ("ok", "invalid") if retry_failed else ("ok", "invalid", "failed")
        done = self.store.finished_keys(statuses)
        return [s for s in specs if s.key not in done]

    def run(self, specs: list[RunSpec], retry_failed: bool = False) -> Summary:
        remove_legacy_work(self.store)
        summary = Summary(total=len(specs))
        todo = self.pending(specs, retry_failed)
        summary.skipped = len(specs) - len(todo)
        _import_classes(todo)  # once here, so forked workers do not each import them again
        bundles: dict[str, DatasetBundle] = {}
        threads = max(1, (os.cpu_count() or 1) // self.jobs)
        ctx = mp.get_context("fork")
        cache_dir = self.store.path.parent / "cache"
        running: dict[Connection, tuple[RunSpec, Any, float]] = {}
        queue = list(todo)
        leases = self._leases = _Leases(self.store, retry_failed)
        try:
            while queue or running or leases.waiting:
                queue += leases.due()
                while queue and len(running) < self.jobs:
                    spec = queue.pop(0)
                    if not leases.take(spec, summary):  # recorded or held by another driver
                        continue
                    bundle = self._bundle(spec, bundles, summary)
                    if bundle is None:
                        continue
                    if self.on_start:
                        self.on_start(spec)
                    recv, send = ctx.Pipe(duplex=False)
                    proc = ctx.Process(
                        target=_worker,
                        args=(spec, bundle, self.store.artifact_dir(spec), cache_dir,
                              self.store.work_dir(spec), threads, send),
                        daemon=True,
                    )
                    proc.start()
                    send.close()
                    running[recv] = (spec, proc, time.monotonic())
                leases.renew([spec.key for spec, _, _ in running.values()])
                if not running:
                    if leases.waiting:  # only runs another driver holds: wait for them
                        time.sleep(0.2)
                    continue
                ready = wait(list(running), timeout=0.2)
                for conn in ready:
                    spec, proc, _ = running.pop(conn)
                    try:
                        rec = conn.recv()
                    except (EOFError, OSError):
                        proc.join()
                        rec = RunRecord(spec, "failed", created_at=_now(),
                                        error=f"worker died (exit code {proc.exitcode})")
                    proc.join()
                    conn.close()
                    self._finish(summary, rec)
                for conn, (spec, proc, started) in list(running.items()):
                    limit = spec.timeout_s if spec.timeout_s is not None else self.timeout
                    cap = spec.memory_mb if spec.memory_mb is not None else self.memory_mb
                    reason = None
                    if limit is not None and time.monotonic() - started > limit:
                        reason = f"timed out after {limit:g} s"
                    elif cap is not None and (_rss_mb(proc.pid) or 0.0) > cap:
                        reason = f"exceeded the memory cap of {cap:g} MB"
                    if reason:
                        proc.kill()
                        proc.join()
                        running.pop(conn)
                        conn.close()
                        self._finish(summary, RunRecord(spec, "failed", created_at=_now(),
                                                        error=reason))
        finally:
            leases.close()
        return summary

    def _bundle(self, spec: RunSpec, bundles: dict[str, DatasetBundle],
                summary: Summary) -> DatasetBundle | None:
        """The spec's dataset, loaded once per (dataset, params); None (recorded failed) on error."""
        bkey = f"{spec.dataset}:{sorted(spec.dataset_params.items())}"
        if bkey not in bundles:
            try:
                bundles[bkey] = load_bundle(spec, self.assets)
            except Exception as exc:  # noqa: BLE001
                self._finish(summary, RunRecord(spec, "failed", error=_one_line(exc),
                                                created_at=_now()))
                return None
        return bundles[bkey]

    def _finish(self, summary: Summary, rec: RunRecord) -> None:
        self.store.record(rec, lease=self._leases.holder if self._leases else None)
        if rec.status in ("ok", "invalid"):  # finished for good: no state to resume from
            shutil.rmtree(self.store.work_dir(rec.spec), ignore_errors=True)
        if rec.status == "ok":
            summary.ok += 1
        elif rec.status == "invalid":
            summary.invalid += 1
        else:
            summary.failed.append((rec.spec.name, rec.error.splitlines()[0] if rec.error else ""))
        if self.on_done:
            self.on_done(rec)


class RayRunner(Runner):
    """Runs each spec as a Ray task with the resources its method declares.

    The driver (this process) alone writes the store; workers write artifacts under the store's
    folder, which must therefore be on a filesystem every Ray node shares (always true locally).
    ``address`` None starts or joins a local Ray instance; "auto" or "ray://host:port" joins a
    cluster.
    """

    def __init__(self, store: Store, address: str | None = None, **kwargs: Any):
        super().__init__(store, **kwargs)
        self.address = address

    def run(self, specs: list[RunSpec], retry_failed: bool = False) -> Summary:
        from dparena.errors import require
        from dparena.methods import methods

        ray = require("ray", "ray")
        if not ray.is_initialized():
            os.environ.setdefault("RAY_AUTH_MODE", "disabled")
            ray.init(address=self.address, include_dashboard=False, log_to_driver=False,
                     configure_logging=False)
        remove_legacy_work(self.store)
        summary = Summary(total=len(specs))
        todo = self.pending(specs, retry_failed)
        summary.skipped = len(specs) - len(todo)
        _import_classes(todo)
        task = ray.remote(_ray_execute)
        bundles: dict[str, DatasetBundle] = {}
        refs: dict[str, Any] = {}
        cache_dir = self.store.path.parent / "cache"
        futures: dict[Any, tuple[RunSpec, float]] = {}
        queue = list(todo)
        leases = self._leases = _Leases(self.store, retry_failed)
        try:
            while queue or futures or leases.waiting:
                queue += leases.due()
                for spec in queue:
                    if not leases.take(spec, summary):  # recorded or held by another driver
                        continue
                    bundle = self._bundle(spec, bundles, summary)
                    if bundle is None:
                        continue
                    bkey = f"{spec.dataset}:{sorted(spec.dataset_params.items())}"
                    if bkey not in refs:
                        refs[bkey] = ray.put(bundle)
                    res = dict(getattr(methods.get(spec.method), "resources", {"num_cpus": 1}))
                    if spec.memory_mb is not None:
                        res["memory"] = int(spec.memory_mb * 2**20)
                    if self.on_start:
                        self.on_start(spec)
                    ref = task.options(**res).remote(spec, refs[bkey], self.store.artifact_dir(spec),
                                                     cache_dir, self.store.work_dir(spec),
                                                     int(res.get("num_cpus", 1)))
                    futures[ref] = (spec, time.monotonic())
                queue = []
                leases.renew([spec.key for spec, _ in futures.values()])
                if not futures:
                    time.sleep(0.2)  # only runs another driver holds: wait for them
                    continue
                done, _ = ray.wait(list(futures), num_returns=1, timeout=1.0)
                for ref in done:
                    spec, _ = futures.pop(ref)
                    try:
                        rec = ray.get(ref)
                    except Exception as exc:  # noqa: BLE001 - a crashed worker is a failed run
                        rec = RunRecord(spec, "failed", created_at=_now(),
                                        error=f"ray task failed: {_one_line(exc)}")
                    self._finish(summary, rec)
                for ref, (spec, started) in list(futures.items()):
                    limit = spec.timeout_s if spec.timeout_s is not None else self.timeout
                    if limit is not None and time.monotonic() - started > limit:
                        ray.cancel(ref, force=True)
                        futures.pop(ref)
                        self._finish(summary, RunRecord(spec, "failed", created_at=_now(),
                                                        error=f"timed out after {limit:g} s"))
        finally:
            leases.close()
        return summary


class _Leases:
    """This driver's side of the store's run leases (``Store.claim``): concurrent drivers of one
    store split its runs, each run executes once, and a dead driver's runs are taken over."""

    def __init__(self, store: Store, retry_failed: bool):
        self.store = store
        self.holder = lease_holder()
        self.done = ("ok", "invalid") if retry_failed else ("ok", "invalid", "failed")
        self.since = store.recorded_mark()  # runs recorded after this are done by someone else
        self.waiting: list[RunSpec] = []  # held by another driver's live lease
        self._renewed = self._polled = time.monotonic()

    def take(self, spec: RunSpec, summary: Summary) -> bool:
        got = self.store.claim(spec.key, self.holder, self.done, self.since)
        if got == "done":  # another driver recorded it meanwhile
            summary.skipped += 1
        elif got == "busy":
            self.waiting.append(spec)
        return got == "claimed"

    def due(self) -> list[RunSpec]:
        """The runs another driver held, to ask about again (every LEASE_POLL_S)."""
        if not self.waiting or time.monotonic() - self._polled < LEASE_POLL_S:
            return []
        self._polled = time.monotonic()
        due, self.waiting = self.waiting, []
        return due

    def renew(self, keys: list[str]) -> None:
        if time.monotonic() - self._renewed >= LEASE_RENEW_S:
            self.store.renew(keys, self.holder)
            self._renewed = time.monotonic()

    def close(self) -> None:
        """Release what is still held (runs in flight when the driver stops)."""
        self.store.release_all(self.holder)


def _ray_execute(spec: RunSpec, bundle: DatasetBundle, artifact_dir: Path, cache_dir: Path,
                 work_dir: Path, threads: int) -> RunRecord:
    os.environ["OMP_NUM_THREADS"] = str(threads)
    rec = execute(spec, bundle, artifact_dir, cache_dir, work_dir)
    rec.peak_rss_mb = _peak_rss_mb()
    return rec


def remove_legacy_work(store: Store) -> None:
    """Delete ``artifacts/<key>/work/`` folders left by dparena 0.1, before work dirs moved out of
    the published artifacts: they hold PE checkpoints with an unkeyed fingerprint of the private
    data (a membership oracle) and pickles."""
    if store.artifacts.is_dir():
        for legacy in store.artifacts.glob("*/work"):
            shutil.rmtree(legacy, ignore_errors=True)


def _import_classes(specs: list[RunSpec]) -> None:
    from dparena.methods import methods
    from dparena.metrics import metrics

    for name in {s.method for s in specs}:
        methods.get(name)
    for name in {m for s in specs for m in s.metrics}:
        metrics.get(name)


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def provenance() -> dict[str, str]:
    """Package and library versions, git commit and hardware of this process."""
    return dict(_provenance())


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@functools.cache
def _provenance() -> dict[str, str]:
    from importlib import metadata

    info = {"dparena": dparena.__version__, "python": platform.python_version(),
            "platform": platform.platform(), "cpu": _cpu_model(), "cpus": str(os.cpu_count())}
    if "torch" in sys.modules and sys.modules["torch"].cuda.is_available():
        info["gpu"] = sys.modules["torch"].cuda.get_device_name(0)
    for pkg in ("numpy", "pandas", "scikit-learn", "xgboost-cpu", "xgboost", "torch", "opacus"):
        try:
            info[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    try:
        root = Path(dparena.__file__).resolve().parent.parent
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=5)
        if out.returncode == 0:
            info["git"] = out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return info
