"""The runner: one driver loop over a suite's runs, skipping those already in the store.

Each run goes through the named stages of :mod:`dparena.harness.stages` (load → generate → check
ledger → write artifact → score → record) on an executor back end
(:mod:`dparena.harness.executors`: forked local workers, or Ray tasks). A run that raises,
crashes or times out is recorded as ``failed`` and the suite goes on; the driver process alone
writes the store, one transaction per run, so killing the driver at any point loses at most the
runs in flight, which the next invocation re-does. A driver leases each run in the store before
starting it (``Store.claim``), so several drivers of one store (or Ray drivers) split its runs
instead of each running all of them; the leases of a dead driver are taken over.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dparena.assets import AssetStore
from dparena.datasets.base import DatasetBundle
from dparena.harness.executors import Executor, Job, LocalExecutor, RayExecutor
from dparena.harness.provenance import now
from dparena.harness.stages import checked_output, execute, load_bundle, one_line
from dparena.harness.store import RunRecord, Store, lease_holder
from dparena.harness.suite import RunSpec

__all__ = ["RayRunner", "Runner", "Summary", "checked_output", "dispatch_order", "execute",
           "load_bundle", "remove_legacy_work"]  # execute, checked_output, load_bundle: from stages

LEASE_RENEW_S = 30.0  # how often a driver renews the leases of its runs in flight
LEASE_POLL_S = 1.0  # how often it asks again about runs another driver holds


@dataclass
class Summary:
    total: int = 0
    skipped: int = 0
    ok: int = 0
    invalid: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (run name, first error line)


class Runner:
    """Runs specs on an executor (default: forked local workers, ``jobs`` at a time) and records
    each outcome."""

    def __init__(self, store: Store, assets: AssetStore | None = None, jobs: int = 1,
                 timeout: float | None = None, memory_mb: float | None = None,
                 on_start: Callable[[RunSpec], None] | None = None,
                 on_done: Callable[[RunRecord], None] | None = None,
                 executor: Executor | None = None):
        self.store = store
        self.assets = assets or AssetStore()
        self.executor = executor if executor is not None else LocalExecutor(jobs)
        self.timeout = timeout
        self.memory_mb = memory_mb
        self.on_start = on_start
        self.on_done = on_done
        self.load_seconds: dict[str, float] = {}  # dataset (with params) -> seconds to load it
        self._leases: _Leases | None = None

    def pending(self, specs: list[RunSpec], retry_failed: bool = False) -> list[RunSpec]:
        statuses = ("ok", "invalid") if retry_failed else ("ok", "invalid", "failed")
        done = self.store.finished_keys(statuses)
        return [s for s in specs if s.key not in done]

    def run(self, specs: list[RunSpec], retry_failed: bool = False) -> Summary:
        executor = self.executor
        executor.start()
        remove_legacy_work(self.store)
        summary = Summary(total=len(specs))
        todo = self.pending(specs, retry_failed)
        summary.skipped = len(specs) - len(todo)
        _import_classes(todo)  # once here, so forked workers do not each import them again
        bundles: dict[str, DatasetBundle] = {}
        cache_dir = self.store.path.parent / "cache"
        running: dict[Job, float] = {}  # job -> when it started
        queue = dispatch_order(todo, self._estimates(todo))
        # datasets whose shared caches (eval features) a finished run has filled already
        warm = {_bundle_key(s) for s in specs if s.key not in {t.key for t in todo}}
        leases = self._leases = _Leases(self.store, retry_failed)
        try:
            while queue or running or leases.waiting:
                queue += leases.due()
                while queue and len(running) < executor.slots:
                    spec = queue.pop(_next_index(queue, [j.spec for j in running], warm))
                    if not leases.take(spec, summary):  # recorded or held by another driver
                        continue
                    bundle = self._bundle(spec, bundles, summary)
                    if bundle is None:
                        continue
                    if self.on_start:
                        self.on_start(spec)
                    job = Job(spec, _bundle_key(spec), bundle, self.store.artifact_dir(spec),
                              cache_dir, self.store.work_dir(spec))
                    executor.submit(job)
                    running[job] = time.monotonic()
                leases.renew([job.spec.key for job in running])
                if not running:
                    if leases.waiting:  # only runs another driver holds: wait for them
                        time.sleep(0.2)
                    continue
                for job, rec in executor.wait(list(running)):
                    running.pop(job)
                    warm.add(job.bundle_key)
                    self._finish(summary, rec)
                for job, started in list(running.items()):
                    reason = self._over_limit(job, started)
                    if reason:
                        executor.kill(job)
                        running.pop(job)
                        self._finish(summary, RunRecord(job.spec, "failed", created_at=now(),
                                                        error=reason))
        finally:
            leases.close()
        return summary

    def _estimates(self, specs: list[RunSpec]) -> dict[str, float | None]:
        """Each spec's expected seconds from the store's stored timings (None: nothing alike)."""
        from dparena.harness.progress import estimate_seconds

        if not specs:
            return {}
        try:
            return estimate_seconds(specs, self.store.runs())
        except Exception:  # noqa: BLE001 - an ordering hint only: never stop a suite for it
            return {}

    def _over_limit(self, job: Job, started: float) -> str | None:
        """Why ``job`` must be stopped now (its time limit or memory cap), or None."""
        spec = job.spec
        limit = spec.timeout_s if spec.timeout_s is not None else self.timeout
        cap = spec.memory_mb if spec.memory_mb is not None else self.memory_mb
        if limit is not None and time.monotonic() - started > limit:
            return f"timed out after {limit:g} s"
        if cap is not None and (self.executor.memory_mb(job) or 0.0) > cap:
            return f"exceeded the memory cap of {cap:g} MB"
        return None

    def _bundle(self, spec: RunSpec, bundles: dict[str, DatasetBundle],
                summary: Summary) -> DatasetBundle | None:
        """The spec's dataset, loaded once per (dataset, params); None (recorded failed) on error."""
        bkey = _bundle_key(spec)
        if bkey not in bundles:
            try:
                t0 = time.perf_counter()
                bundles[bkey] = load_bundle(spec, self.assets)
                self.load_seconds[bkey] = time.perf_counter() - t0
            except Exception as exc:  # noqa: BLE001
                self._finish(summary, RunRecord(spec, "failed", error=one_line(exc),
                                                created_at=now()))
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
    """A :class:`Runner` on the :class:`~dparena.harness.executors.RayExecutor`."""

    def __init__(self, store: Store, address: str | None = None, **kwargs: Any):
        super().__init__(store, executor=RayExecutor(address), **kwargs)
        self.address = address


def _bundle_key(spec: RunSpec) -> str:
    return f"{spec.dataset}:{sorted(spec.dataset_params.items())}"


def _twin_key(spec: RunSpec) -> tuple:
    """Runs that differ only in ε and seed: they fill the same shared caches (DP-2Stage's stage-1
    model, a method's compiled code), so two of them should not start together."""
    return (spec.section, spec.label, spec.method)


def dispatch_order(specs: list[RunSpec], estimates: dict[str, float | None] | None = None
                   ) -> list[RunSpec]:
    """The order in which the driver starts ``specs``: round-robin over their twin groups (runs
    that differ only in ε and seed), so consecutive runs come from different methods and
    sections instead of suite order, where a method's ε = 1 seed-0 and seed-1 runs start together
    and both wait on the same shared cache. Groups the store's timings know (``estimates``: key ->
    seconds, from :func:`dparena.harness.progress.estimate_seconds`) come longest total first,
    so the long runs start early and the suite's tail is short runs; groups never run before
    (no estimate) come first, in suite order. Within a group, suite order."""
    estimates = estimates or {}
    groups: dict[tuple, list[RunSpec]] = {}
    for spec in specs:
        groups.setdefault(_twin_key(spec), []).append(spec)

    def rank(item: tuple[int, list[RunSpec]]) -> tuple:
        position, members = item
        known = [estimates.get(s.key) for s in members]
        if any(v is None for v in known):
            return (0, 0.0, position)
        return (1, -sum(known), position)

    ordered = [members for _, members in sorted(enumerate(groups.values()), key=rank)]
    out: list[RunSpec] = []
    for turn in range(max((len(m) for m in ordered), default=0)):
        out += [m[turn] for m in ordered if turn < len(m)]
    return out


def _next_index(queue: list[RunSpec], running: list[RunSpec], warm: set[str]) -> int:
    """Which queued run to start now: the first that neither is a twin of a running run nor
    would fill a dataset's shared caches (eval-split features) that a running run is filling
    (no run of that dataset finished yet, ``warm``); if every queued run collides, the first
    (a collision only costs a wait on the cache lock, an idle worker costs more)."""
    twins = {_twin_key(s) for s in running}
    filling = {_bundle_key(s) for s in running} - warm
    for i, spec in enumerate(queue):
        if _twin_key(spec) not in twins and _bundle_key(spec) not in filling:
            return i
    return 0


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
