"""Where runs execute: the back ends of the runner's one driver loop (:meth:`Runner.run`).

The driver submits a :class:`Job`, waits for finished ones and kills those over their time or
memory limit; only the driver writes the store. :class:`LocalExecutor` forks one worker process
per run (``jobs`` at a time); :class:`RayExecutor` submits each run as a Ray task with the
resources its method declares.
"""

from __future__ import annotations

import math
import os
import sys
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from dparena.datasets.base import DatasetBundle
from dparena.harness.provenance import now
from dparena.harness.stages import execute, one_line
from dparena.harness.store import RunRecord
from dparena.harness.suite import RunSpec


@dataclass(frozen=True, eq=False)
class Job:
    """One run handed to an executor: its spec, its dataset and where it may write. Also the
    handle the executor gives back (compared by identity)."""

    spec: RunSpec
    bundle_key: str  # the same for every run on the same (dataset, params)
    bundle: DatasetBundle
    artifact_dir: Path
    cache_dir: Path
    work_dir: Path
    state: dict[str, Any] = field(default_factory=dict, compare=False)  # the executor's own


class Executor(ABC):
    """A back end of the runner: ``slots`` runs in flight at once."""

    slots: float = 1

    def start(self) -> None:  # noqa: B027 - an optional hook
        """Called once before the first job."""

    @abstractmethod
    def submit(self, job: Job) -> None:
        """Start ``job``."""

    @abstractmethod
    def wait(self, jobs: list[Job]) -> list[tuple[Job, RunRecord]]:
        """Wait a little (well under a second) for some of ``jobs`` to finish; their records."""

    @abstractmethod
    def kill(self, job: Job) -> None:
        """Stop ``job`` now (it is over its time or memory limit)."""

    def memory_mb(self, job: Job) -> float | None:
        """The resident memory of the job's process, where this back end can see it."""
        return None


class LocalExecutor(Executor):
    """Each run in its own forked worker process, ``jobs`` at a time, each with ``cpus // jobs``
    threads. A worker that crashes is a failed run; a worker dies with the driver (Linux)."""

    def __init__(self, jobs: int = 1):
        import multiprocessing as mp

        self.jobs = max(1, int(jobs))
        self.slots = self.jobs
        self.threads = max(1, (os.cpu_count() or 1) // self.jobs)
        self._ctx = mp.get_context("fork")

    def submit(self, job: Job) -> None:
        recv, send = self._ctx.Pipe(duplex=False)
        proc = self._ctx.Process(
            target=_worker,
            args=(job.spec, job.bundle, job.artifact_dir, job.cache_dir, job.work_dir,
                  self.threads, send),
            daemon=True,
        )
        proc.start()
        send.close()
        job.state.update(proc=proc, conn=recv)

    def wait(self, jobs: list[Job]) -> list[tuple[Job, RunRecord]]:
        by_conn: dict[Connection, Job] = {job.state["conn"]: job for job in jobs}
        done = []
        for conn in wait(list(by_conn), timeout=0.2):
            job = by_conn[conn]
            proc = job.state["proc"]
            try:
                rec = conn.recv()
            except (EOFError, OSError):
                proc.join()
                rec = RunRecord(job.spec, "failed", created_at=now(),
                                error=f"worker died (exit code {proc.exitcode})")
            proc.join()
            conn.close()
            done.append((job, rec))
        return done

    def kill(self, job: Job) -> None:
        job.state["proc"].kill()
        job.state["proc"].join()
        job.state["conn"].close()

    def memory_mb(self, job: Job) -> float | None:
        return rss_mb(job.state["proc"].pid)


class RayExecutor(Executor):
    """Each run as a Ray task with the resources its method declares (``resources``, default one
    CPU; a spec's ``memory_mb`` becomes Ray's ``memory``). Workers write artifacts under the
    store's folder, which must therefore be on a filesystem every Ray node shares (always true
    locally). ``address`` None starts or joins a local Ray instance; "auto" or "ray://host:port"
    joins a cluster. Every pending run is submitted at once; Ray schedules them."""

    slots = math.inf

    def __init__(self, address: str | None = None):
        self.address = address
        self._ray: Any = None
        self._task: Any = None
        self._refs: dict[str, Any] = {}  # bundle key -> the bundle in Ray's object store

    def start(self) -> None:
        from dparena.errors import require

        ray = require("ray", "ray")
        if not ray.is_initialized():
            os.environ.setdefault("RAY_AUTH_MODE", "disabled")
            ray.init(address=self.address, include_dashboard=False, log_to_driver=False,
                     configure_logging=False)
        self._ray, self._task = ray, ray.remote(_ray_execute)

    def submit(self, job: Job) -> None:
        from dparena.methods import methods

        spec = job.spec
        if job.bundle_key not in self._refs:
            self._refs[job.bundle_key] = self._ray.put(job.bundle)
        res = dict(getattr(methods.get(spec.method), "resources", {"num_cpus": 1}))
        if spec.memory_mb is not None:
            res["memory"] = int(spec.memory_mb * 2**20)
        job.state["ref"] = self._task.options(**res).remote(
            spec, self._refs[job.bundle_key], job.artifact_dir, job.cache_dir, job.work_dir,
            int(res.get("num_cpus", 1)))

    def wait(self, jobs: list[Job]) -> list[tuple[Job, RunRecord]]:
        by_ref = {job.state["ref"]: job for job in jobs}
        ready, _ = self._ray.wait(list(by_ref), num_returns=1, timeout=1.0)
        done = []
        for ref in ready:
            job = by_ref[ref]
            try:
                rec = self._ray.get(ref)
            except Exception as exc:  # noqa: BLE001 - a crashed worker is a failed run
                rec = RunRecord(job.spec, "failed", created_at=now(),
                                error=f"ray task failed: {one_line(exc)}")
            done.append((job, rec))
        return done

    def kill(self, job: Job) -> None:
        self._ray.cancel(job.state["ref"], force=True)


def _worker(spec: RunSpec, bundle: DatasetBundle, artifact_dir: Path, cache_dir: Path,
            work_dir: Path, threads: int, conn: Connection) -> None:
    _die_with_parent()
    os.environ["OMP_NUM_THREADS"] = str(threads)
    if "torch" in sys.modules:  # configure torch only where it is already loaded
        sys.modules["torch"].set_num_threads(threads)
    rec = execute(spec, bundle, artifact_dir, cache_dir, work_dir)
    rec.peak_rss_mb = peak_rss_mb()
    conn.send(rec)
    conn.close()


def _ray_execute(spec: RunSpec, bundle: DatasetBundle, artifact_dir: Path, cache_dir: Path,
                 work_dir: Path, threads: int) -> RunRecord:
    os.environ["OMP_NUM_THREADS"] = str(threads)
    rec = execute(spec, bundle, artifact_dir, cache_dir, work_dir)
    rec.peak_rss_mb = peak_rss_mb()
    return rec


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this worker when the driver dies, so no orphan outlives a killed suite."""
    try:
        import ctypes
        import signal

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: orphans finish their run and exit
        pass


def rss_mb(pid: int) -> float | None:
    """Current resident memory of a process (Linux /proc), or None."""
    return _status_mb(f"/proc/{pid}/status", "VmRSS:")


def peak_rss_mb() -> float | None:
    """Peak resident memory of this process (Linux /proc), or None."""
    return _status_mb("/proc/self/status", "VmHWM:")


def _status_mb(path: str, field_name: str) -> float | None:
    try:
        with open(path) as fh:
            for line in fh:
                if line.startswith(field_name):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None
