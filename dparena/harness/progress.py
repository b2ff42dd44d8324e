"""Progress of a suite and of its long runs, with an ETA from the store's earlier timings.

Three pieces, all used by ``dparena run``:

* :func:`estimate_seconds`: what each pending run should take, the median stored duration (the
  sum of its stage timings) of the most similar earlier runs in the store: the same run (an older
  package version), else the same configuration at another ε or seed, else the same method on the
  same dataset, else the same method. :class:`Eta` turns those into a suite ETA, rescaled by how
  fast this session's finished runs went against their estimates.
* :class:`ProgressFile`: the worker's side of per-run progress. A long method calls
  ``task.report(stage, done, total)`` (PE iterations, DP-SGD steps); the harness points that at
  ``<work dir>/progress.json``, rewritten atomically at most once a second.
* :class:`SuiteProgress`: the driver's side. On a terminal, live bars (the suite with its ETA, one
  per running run); elsewhere (logs, CI) plain lines: one each time the suite passes another 10%
  of its runs and one each time a run passes another 10% of its steps, so a suite of M runs of
  S steps prints at most 10 + 10·M lines whatever S is. ``quiet`` prints nothing.

:func:`timings_table` is the per-stage time table of ``dparena run --timings``;
:func:`timings_report` the same with the wall time and per-(section, method) totals as JSON
(``dparena run --timings-json``, ``make quick-timings``: benchmarks/perf/quick-suite.json).

Progress carries positions in public schedules only (iteration t of T, step s of S), never a
value computed from private data.
"""

from __future__ import annotations

import json
import math
import statistics
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dparena.harness.suite import RunSpec

FILE = "progress.json"
WRITE_EVERY_S = 1.0  # a worker rewrites its progress file at most this often
POLL_S = 1.0  # how often the driver reads the files of the runs in flight
STEPS = 10  # lines per bar when the output is not a terminal (one per 10%)


# -- ETA from stored timings -----------------------------------------------------------------------
def run_seconds(timings: dict[str, Any]) -> float:
    """A stored run's duration: the sum of its stage timings (generate, write, metrics, audit)."""
    return float(sum(v for v in timings.values() if isinstance(v, int | float)))


def _similarity_keys(spec: dict[str, Any]) -> tuple:
    """Keys from most to least specific under which runs are taken as alike in duration."""
    params = json.dumps(spec.get("method_params") or {}, sort_keys=True, default=str)
    data = json.dumps(spec.get("dataset_params") or {}, sort_keys=True, default=str)
    return (("name", spec.get("name")),
            ("config", spec.get("dataset"), data, spec.get("method"), params,
             spec.get("n_samples"), tuple(spec.get("metrics") or ())),
            ("method-dataset", spec.get("dataset"), spec.get("method")),
            ("method", spec.get("method")))


def _spec_fields(spec: RunSpec) -> dict[str, Any]:
    return {"name": spec.name, "dataset": spec.dataset, "dataset_params": spec.dataset_params,
            "method": spec.method, "method_params": spec.method_params,
            "n_samples": spec.n_samples, "metrics": spec.metrics}


def _field(row: Any, name: str) -> Any:
    """A column of a stored run: a ``StoredRun`` attribute (or a plain mapping's key)."""
    return row.get(name) if isinstance(row, dict) else getattr(row, name, None)


def estimate_seconds(specs: Iterable[RunSpec], history: Iterable[Any]
                     ) -> dict[str, float | None]:
    """Each spec's expected duration (key -> seconds, None when nothing alike was ever run) from
    ``history``, the rows of ``Store.runs()``; failed runs and rows without timings are left out."""
    by_key: dict[tuple, list[float]] = {}
    for row in history:
        if _field(row, "status") not in ("ok", "invalid") or not _field(row, "timings"):
            continue
        raw = _field(row, "spec")
        try:
            spec = dict(json.loads(raw) if isinstance(raw, str) else raw or {})
        except (TypeError, ValueError):
            continue
        spec["name"] = _field(row, "name") or spec.get("name")
        seconds = run_seconds(_field(row, "timings"))
        for key in _similarity_keys(spec):
            by_key.setdefault(key, []).append(seconds)
    out: dict[str, float | None] = {}
    for spec in specs:
        out[spec.key] = next((statistics.median(by_key[k]) for k in
                              _similarity_keys(_spec_fields(spec)) if k in by_key), None)
    return out


@dataclass
class Eta:
    """Time left in a suite: the estimates of the runs not finished, less what the running ones
    have already spent, over ``jobs`` parallel workers.

    Estimates are rescaled by this session's speed (actual over estimated seconds of the runs
    finished so far, within 1/4..4); a run without an estimate counts as the median of this
    session's finished runs, else of the known estimates.
    """

    estimates: dict[str, float | None]
    jobs: int = 1
    started: dict[str, float] = field(default_factory=dict)  # key -> clock at start
    finished: dict[str, float] = field(default_factory=dict)  # key -> seconds taken

    def start(self, key: str, now: float) -> None:
        self.started[key] = now

    def finish(self, key: str, now: float) -> None:
        begun = self.started.pop(key, None)
        self.finished[key] = (now - begun) if begun is not None else 0.0

    def _speed(self) -> float:
        pairs = [(s, self.estimates[k]) for k, s in self.finished.items()
                 if self.estimates.get(k)]
        if not pairs:
            return 1.0
        return min(4.0, max(0.25, sum(s for s, _ in pairs) / sum(e for _, e in pairs)))

    def seconds_left(self, now: float) -> float | None:
        """Expected seconds until every run is finished; None when nothing is known yet."""
        left = [k for k in self.estimates if k not in self.finished]
        if not left:
            return 0.0
        speed = self._speed()
        known = [self.estimates[k] * speed for k in left if self.estimates.get(k)]
        done = list(self.finished.values())
        fallback = (statistics.median(done) if done else
                    statistics.median(known) if known else None)
        if fallback is None:
            return None
        work = 0.0
        for k in left:
            est = self.estimates.get(k)
            est = est * speed if est else fallback
            if k in self.started:
                est = max(est - (now - self.started[k]), 0.0)
            work += est
        return work / max(1, min(self.jobs, len(left)))


def format_seconds(seconds: float | None) -> str:
    """``1h02m``, ``12m05s``, ``42s``; ``?`` for None."""
    if seconds is None or not math.isfinite(seconds):
        return "?"
    s = int(round(seconds))
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


# -- per-run progress: the worker writes, the driver reads -----------------------------------------
class ProgressFile:
    """``task.progress`` in a harness worker: ``(stage, done, total)`` to ``<work_dir>/progress.json``
    (atomically; at most every ``every_s`` seconds, but always the first and the last step)."""

    def __init__(self, work_dir: Path, every_s: float = WRITE_EVERY_S,
                 clock: Callable[[], float] = time.monotonic):
        self.path = Path(work_dir) / FILE
        self.every_s, self.clock = every_s, clock
        self._last: float | None = None

    def __call__(self, stage: str, done: int, total: int) -> None:
        now = self.clock()
        if self._last is not None and now - self._last < self.every_s and done < total:
            return
        from dparena.io import write_text_atomic

        self._last = now
        self.path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps({"stage": str(stage), "done": int(done), "total": int(total)})
        try:
            write_text_atomic(self.path, text)
        except OSError:  # progress is a courtesy: never fail a run over it
            pass


def read_progress(work_dir: Path) -> tuple[str, int, int] | None:
    """The last ``(stage, done, total)`` a run reported, or None."""
    try:
        data = json.loads((Path(work_dir) / FILE).read_text())
        return str(data["stage"]), int(data["done"]), int(data["total"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


# -- the driver's display --------------------------------------------------------------------------
def run_label(spec: RunSpec) -> str:
    """A short name for a run in progress lines: ``mnist pe-image eps=2 seed=0``."""
    eps = "ref" if spec.epsilon is None else f"{spec.epsilon:g}"
    return f"{spec.dataset} {spec.label} eps={eps} seed={spec.seed}"


class SuiteProgress:
    """The suite's bar and the bars of its running runs (see the module docstring).

    ``started(spec)`` / ``finished(spec)`` are the runner's hooks; :meth:`poll` reads the progress
    files of the runs in flight (``work_dir(spec)``), every ``poll_s`` seconds in a background
    thread while the display is open (``poll_s=None``: only when called).
    """

    def __init__(self, console, total: int, estimates: dict[str, float | None], *,
                 jobs: int = 1, done_before: int = 0, title: str = "suite",
                 work_dir: Callable[[RunSpec], Path] | None = None, quiet: bool = False,
                 terminal: bool | None = None, poll_s: float | None = POLL_S,
                 clock: Callable[[], float] = time.monotonic):
        self.console, self.total, self.title = console, total, title
        self.done_before, self.done = done_before, 0
        self.eta = Eta(estimates, jobs)
        self.work_dir, self.quiet, self.poll_s, self.clock = work_dir, quiet, poll_s, clock
        self.terminal = console.is_terminal if terminal is None else terminal
        self.running: dict[str, RunSpec] = {}
        self._steps: dict[str, int] = {}  # bar -> tenths already printed (non-terminal mode)
        self._tasks: dict[str, Any] = {}  # run key -> rich task id (terminal mode)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._live = None
        self._bar = None
        self._t0 = clock()

    # -- lifecycle
    def __enter__(self) -> SuiteProgress:
        if self.quiet:
            return self
        if self.terminal:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            self._live = Progress(TextColumn("{task.description}"), BarColumn(),
                                  MofNCompleteColumn(), TimeElapsedColumn(),
                                  TextColumn("{task.fields[note]}"), console=self.console)
            self._live.start()
            self._bar = self._live.add_task(self._suite_text(), total=self.total, note="")
        if self.poll_s is not None and self.work_dir is not None:
            self._thread = threading.Thread(target=self._loop, name="dparena-progress",
                                            daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._live is not None:
            self._live.stop()

    def _loop(self) -> None:
        while not self._stop.wait(self.poll_s):
            self.poll()

    # -- the runner's hooks
    def started(self, spec: RunSpec) -> None:
        if self.work_dir is not None:  # a failed earlier attempt's position is not this one's
            try:
                (Path(self.work_dir(spec)) / FILE).unlink(missing_ok=True)
            except OSError:
                pass
        with self._lock:
            self.running[spec.key] = spec
            self.eta.start(spec.key, self.clock())
            if self._live is not None:
                self._live.update(self._bar, description=self._suite_text(), note=self._eta_text())
                self._tasks[spec.key] = self._live.add_task(f"  {run_label(spec)}", total=None,
                                                            note="")

    def finished(self, spec: RunSpec) -> None:
        with self._lock:
            self.running.pop(spec.key, None)
            self.eta.finish(spec.key, self.clock())
            self.done += 1
            if self._live is not None:
                task = self._tasks.pop(spec.key, None)
                if task is not None:
                    self._live.remove_task(task)
                self._live.update(self._bar, completed=self.done, description=self._suite_text(),
                                  note=self._eta_text())
            elif not self.quiet:
                self._step_line("", self.done, self.total, (
                    f"{self.title}: {self.done}/{self.total} runs "
                    f"({self.done * 100 // max(self.total, 1)}%), elapsed "
                    f"{format_seconds(self.clock() - self._t0)}, {self._eta_text()}"))

    def poll(self) -> None:
        """Read the progress files of the runs in flight and show what moved."""
        if self.quiet or self.work_dir is None:
            return
        with self._lock:
            running = list(self.running.values())
            if self._live is not None:  # the ETA counts down between events too
                self._live.update(self._bar, note=self._eta_text())
        for spec in running:
            got = read_progress(self.work_dir(spec))
            if got is None:
                continue
            stage, done, total = got
            with self._lock:
                if spec.key not in self.running:
                    continue
                if self._live is not None:
                    self._live.update(self._tasks[spec.key], total=max(total, 1),
                                      completed=min(done, total), note=f"{stage} {done}/{total}")
                    self._live.update(self._bar, note=self._eta_text())
                else:
                    self._step_line(spec.key, done, total,
                                    f"  {run_label(spec)}: {stage} {done}/{total}")

    # -- text
    def _step_line(self, bar: str, done: int, total: int, text: str) -> None:
        """Print ``text`` when ``bar`` has passed another tenth of ``total`` (non-terminal)."""
        tenth = STEPS if total <= 0 or done >= total else done * STEPS // total
        if tenth > self._steps.get(bar, 0):
            self._steps[bar] = tenth
            self.console.print(text, highlight=False, markup=False, soft_wrap=True)

    def _suite_text(self) -> str:
        before = f" ({self.done_before} done before)" if self.done_before else ""
        return f"{self.title}{before}"

    def _eta_text(self) -> str:
        return f"ETA {format_seconds(self.eta.seconds_left(self.clock()))}"


# -- dparena run --timings -------------------------------------------------------------------------
def stage_name(timing_key: str) -> str:
    """``generate_s`` -> ``generate``, ``metric:fid_s`` -> ``metric:fid``."""
    return timing_key[:-2] if timing_key.endswith("_s") else timing_key


def timings_table(rows: list[dict[str, Any]], loads: dict[str, float] | None = None
                  ) -> list[tuple[str, int, float, float, float]]:
    """(stage, count, total s, mean s, max s) per stage: ``load`` (datasets the driver loaded,
    ``loads``: dataset -> seconds), then the runs' stored stages in pipeline order (generate,
    write, the metrics by total time, audit), then ``run`` (whole runs: the sum of their stages)."""
    per: dict[str, list[float]] = {}
    if loads:
        per["load"] = [float(v) for v in loads.values()]
    runs = []
    for row in rows:
        timings = _field(row, "timings") or {}
        for key, value in timings.items():
            if isinstance(value, int | float):
                per.setdefault(stage_name(key), []).append(float(value))
        if timings:
            runs.append(run_seconds(timings))

    def order(stage: str) -> tuple:
        fixed = {"load": 0, "generate": 1, "write": 2, "audit": 4}
        return (fixed.get(stage, 3), -sum(per[stage]), stage)

    table = [(s, len(per[s]), sum(per[s]), sum(per[s]) / len(per[s]), max(per[s]))
             for s in sorted(per, key=order)]
    if runs:
        table.append(("run", len(runs), sum(runs), sum(runs) / len(runs), max(runs)))
    return table


def timings_report(rows: list[Any], loads: dict[str, float] | None, wall_s: float, *,
                   suite: str, jobs: int, ran: int, machine: dict[str, Any] | None = None
                   ) -> dict[str, Any]:
    """The invocation's wall time and per-stage table as a JSON-ready dict: ``wall_s``, ``jobs``,
    ``runs`` (the suite's runs with stored timings) and ``ran`` (those this invocation ran: the
    wall time is a whole suite's only when ``ran == runs``), ``stages`` (:func:`timings_table`),
    ``sum_run_s`` / ``ideal_wall_s`` (the runs' total over ``jobs`` workers: what perfect packing
    would give), and ``groups``: per (section, label) the run count and seconds of generate and
    of whole runs, longest first. Only durations and public configuration, no metric value."""
    table = timings_table(rows, loads)
    groups: dict[tuple[str, str], dict[str, float]] = {}
    for row in rows:
        timings = _field(row, "timings") or {}
        if not timings:
            continue
        key = (str(_field(row, "section") or ""), str(_field(row, "label") or _field(row, "method")))
        g = groups.setdefault(key, {"runs": 0, "generate_s": 0.0, "run_s": 0.0})
        g["runs"] += 1
        g["generate_s"] += float(timings.get("generate_s", 0.0) or 0.0)
        g["run_s"] += run_seconds(timings)
    total = sum(g["run_s"] for g in groups.values())
    return {
        "suite": suite, "jobs": jobs, "wall_s": round(wall_s, 1), "runs": len(rows), "ran": ran,
        "sum_run_s": round(total, 1), "ideal_wall_s": round(total / max(jobs, 1), 1),
        "machine": machine or {},
        "stages": [{"stage": st, "count": n, "total_s": round(t, 1), "mean_s": round(m, 2),
                    "max_s": round(mx, 2)} for st, n, t, m, mx in table],
        "groups": [{"section": sec, "label": lab, "runs": int(g["runs"]),
                    "generate_s": round(g["generate_s"], 1), "run_s": round(g["run_s"], 1)}
                   for (sec, lab), g in sorted(groups.items(), key=lambda kv: -kv[1]["run_s"])],
    }
