"""The SQLite result store: one row per run, its metric values, written in one transaction.

Artifacts (the synthetic data) are written to ``artifacts/<key>/`` next to the database *before*
the row is committed, through a temporary name and an atomic rename, so a row never points at a
half-written file and a killed run leaves at most an orphan that the next attempt overwrites.
"""

from __future__ import annotations

import json
import math
import os
import socket
import sqlite3
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dparena.errors import ConfigError
from dparena.harness.suite import RunSpec
from dparena.io import TMP_PREFIX, write_atomic

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    key TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    suite TEXT, section TEXT,
    dataset TEXT NOT NULL, dataset_version TEXT, dataset_params TEXT,
    method TEXT NOT NULL, method_version TEXT, method_params TEXT, label TEXT NOT NULL,
    private INTEGER NOT NULL,
    epsilon REAL, delta REAL, seed INTEGER, n_samples INTEGER,
    status TEXT NOT NULL CHECK (status IN ('ok', 'failed', 'invalid')),
    spent_epsilon REAL, spent_delta REAL,
    ledger TEXT, timings TEXT, peak_rss_mb REAL, versions TEXT,
    error TEXT NOT NULL DEFAULT '', metric_errors TEXT NOT NULL DEFAULT '{}',
    artifact TEXT, audit TEXT, spec TEXT NOT NULL, created_at TEXT NOT NULL,
    info TEXT NOT NULL DEFAULT '{}',
    accountant TEXT NOT NULL DEFAULT '',
    reproducible INTEGER
);
CREATE TABLE IF NOT EXISTS metric_values (
    key TEXT NOT NULL REFERENCES runs(key) ON DELETE CASCADE,
    metric TEXT NOT NULL, name TEXT NOT NULL, value REAL, direction TEXT NOT NULL,
    version TEXT NOT NULL, headline INTEGER NOT NULL,
    nonfinite TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (key, name)
);
CREATE TABLE IF NOT EXISTS leases (
    key TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_at REAL NOT NULL
);
"""

RUN_COLUMNS = ("key", "name", "suite", "section", "dataset", "dataset_version", "dataset_params",
               "method", "method_version", "method_params", "label", "private", "epsilon", "delta",
               "seed", "n_samples", "status", "spent_epsilon", "spent_delta", "ledger", "timings",
               "peak_rss_mb", "versions", "error", "metric_errors", "artifact", "audit", "spec",
               "created_at", "info", "accountant", "reproducible")
INFO_LIMIT = 20_000  # characters of one info value's JSON kept in the store


def json_safe_info(info: dict[str, Any]) -> dict[str, Any]:
    """The method's ``Synthetic.info`` as stored: valid JSON (NaN and infinities become the
    strings "nan", "inf", "-inf"; arrays lists), each value at most INFO_LIMIT chars."""
    out: dict[str, Any] = {}
    for key, value in info.items():
        value = _finite_json(json.loads(json.dumps(value, default=_default)))
        text = json.dumps(value, allow_nan=False)
        if len(text) > INFO_LIMIT:
            out[str(key)] = f"<{len(text):,} characters of JSON, not stored>"
        else:
            out[str(key)] = value
    return out


def _finite_json(value: Any) -> Any:
    """``value`` with every non-finite float replaced by "nan", "inf" or "-inf"."""
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {k: _finite_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite_json(v) for v in value]
    return value


@dataclass
class RunRecord:
    """The outcome of one run, as stored."""

    spec: RunSpec
    status: str
    spent_epsilon: float | None = None
    spent_delta: float | None = None
    ledger: list[dict[str, Any]] = field(default_factory=list)
    metrics: list[dict[str, Any]] = field(default_factory=list)  # MetricValue dicts + metric, headline
    metric_errors: dict[str, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    peak_rss_mb: float | None = None
    versions: dict[str, str] = field(default_factory=dict)
    error: str = ""
    artifact: str | None = None
    audit: dict[str, Any] | None = None
    created_at: str = ""
    info: dict[str, Any] = field(default_factory=dict)  # the method's Synthetic.info (JSON-safe)
    accountant: str = ""  # how the run's ε was composed (Ledger.accountant), e.g. "PRV", "none"


@dataclass(frozen=True)
class StoredValue:
    """One stored metric value. ``value`` is None when there is none, and inf, -inf or nan for a
    non-finite one (kept as NULL with its kind in the ``nonfinite`` column, so SQL aggregates
    never see it; databases written before that held NaN as NULL and infinities as they are)."""

    metric: str  # the registered metric that produced it
    name: str
    value: float | None
    direction: str = "maximize"
    version: str = "1"
    headline: bool = True

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> StoredValue:
        nonfinite, value = row.get("nonfinite") or "", row.get("value")
        number = float(nonfinite) if nonfinite else (None if value is None else float(value))
        return cls(row["metric"], row["name"], number, row["direction"], row["version"],
                   bool(row["headline"]))


@dataclass(frozen=True)
class StoredRun:
    """One run as the store holds it: the columns of ``runs`` with their JSON parsed, and its
    metric values by name. What the leaderboard, the gate and the CLI read."""

    key: str
    dataset: str
    method: str
    label: str
    status: str  # "ok", "invalid" or "failed"
    name: str = ""
    suite: str | None = None
    section: str | None = None
    dataset_version: str | None = None
    dataset_params: dict[str, Any] = field(default_factory=dict)
    method_version: str | None = None
    method_params: dict[str, Any] = field(default_factory=dict)
    is_dp: bool = True  # the ``private`` column: False for a non-private reference
    epsilon: float | None = None  # None: a non-private reference
    delta: float | None = None
    seed: int | None = None
    n_samples: int | None = None
    spent_epsilon: float | None = None
    spent_delta: float | None = None
    ledger: list[dict[str, Any]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    peak_rss_mb: float | None = None
    versions: dict[str, str] = field(default_factory=dict)
    error: str = ""
    metric_errors: dict[str, str] = field(default_factory=dict)
    artifact: str | None = None
    audit: dict[str, Any] | None = None
    spec: dict[str, Any] = field(default_factory=dict)  # the RunSpec's JSON, parsed
    created_at: str = ""
    info: dict[str, Any] = field(default_factory=dict)
    accountant: str = ""  # "" in a store written before runs named their accountant
    reproducible: bool | None = None  # None: not recorded
    metrics: dict[str, StoredValue] = field(default_factory=dict)

    @property
    def requested_metrics(self) -> tuple[str, ...]:
        """The metrics the run's spec asked for (whether or not they produced a value)."""
        return tuple(self.spec.get("metrics", ()))

    @property
    def secure_noise(self) -> bool:
        return bool(self.spec.get("secure_noise"))

    @classmethod
    def from_row(cls, row: dict[str, Any], metrics: dict[str, StoredValue]) -> StoredRun:
        """A ``runs`` row (JSON columns as text; absent columns read as ``OLD_DEFAULTS``)."""
        row = {col: row.get(col, OLD_DEFAULTS.get(col)) for col in RUN_COLUMNS}
        for col in ("ledger", "timings", "versions", "metric_errors", "method_params",
                    "dataset_params", "info", "spec"):
            row[col] = json.loads(row[col]) if row[col] else ([] if col == "ledger" else {})
        row["audit"] = json.loads(row["audit"]) if row["audit"] else None
        row["is_dp"] = bool(row.pop("private"))
        row["reproducible"] = None if row["reproducible"] is None else bool(row["reproducible"])
        for col in ("error", "accountant"):
            row[col] = row[col] or ""
        return cls(**row, metrics=metrics)


# the columns a file must have to be read as a dparena store (those of the oldest schema)
REQUIRED = {"runs": {"key", "name", "dataset", "method", "label", "status", "spec", "created_at"},
            "metric_values": {"key", "metric", "name", "value", "direction", "version",
                              "headline"}}
# what a column added since reads as in an older store
OLD_DEFAULTS = {"info": "{}", "accountant": "", "error": "", "metric_errors": "{}",
                "reproducible": None}
FORMAT = 1  # PRAGMA user_version of a store this version has written to
LEASE_TTL_S = 600.0  # a lease not renewed for this long is stale (drivers renew every 30 s)


class Store:
    """One SQLite result database.

    ``mode="w"`` (the default) is for writing: the file and its folder are created if needed and
    must be writable (checked by a write, before anything runs), an older store gains the columns
    and tables added since, and a file that is not a dparena store is refused. ``mode="r"`` only
    reads: it never creates, migrates or otherwise changes the file (SQLite's read-only mode);
    the file must exist and be a dparena store. Either way a bad file is a one-line ConfigError.
    """

    def __init__(self, path: str | Path, mode: str = "w"):
        if mode not in ("r", "w"):
            raise ValueError(f"mode must be 'r' or 'w', not {mode!r}")
        self.path = Path(path)
        self.mode = mode
        self.artifacts = self.path.parent / "artifacts"
        if self.path.is_dir():
            raise ConfigError(f"{self.path} is a folder, not a dparena result database")
        problem = _header_problem(self.path)
        if problem:
            raise ConfigError(f"{self.path}: not a dparena result database, or a damaged one "
                              f"({problem})")
        if mode == "r":
            if not self.path.exists():
                raise ConfigError(f"no result database at {self.path}; run a suite first "
                                  f"(dparena run SUITE)")
            self._guard(self._check_readable)
        else:
            self._guard(self._open_for_writing)

    def _guard(self, step) -> None:
        """Run ``step`` turning SQLite's complaints about the file into one-line ConfigErrors."""
        try:
            step()
        except sqlite3.OperationalError as exc:
            self._refuse_hot_journal(exc)
            if self.mode == "w" and _unwritable(exc):
                raise ConfigError(f"{self.path}: cannot write the result database ({exc}); "
                                  f"dparena run needs a writable file and folder") from None
            raise ConfigError(f"{self.path}: cannot read the result database ({exc})") from None
        except sqlite3.DatabaseError as exc:
            raise ConfigError(f"{self.path}: not a dparena result database, or a damaged one "
                              f"({exc})") from None
        except OSError as exc:
            raise ConfigError(f"{self.path}: cannot open the result database "
                              f"({exc.strerror or exc})") from None

    def _refuse_hot_journal(self, exc: sqlite3.DatabaseError) -> None:
        """A read-only connection that meets a hot journal (a writer killed inside a transaction,
        whenever that happened: before this store was opened or since) cannot roll it back, and
        reading commands promise not to touch the file: say what to do. (A writer rolls it back
        itself; there this error means the file cannot be written, which _guard reports.)"""
        if self.mode == "r" and getattr(exc, "sqlite_errorname", "") == "SQLITE_READONLY_ROLLBACK":
            raise ConfigError(
                f"{self.path}: a killed dparena run left an unfinished write beside it "
                f"({self.path.name}-journal); resume it with dparena run SUITE --db "
                f"{self.path}, which rolls that write back, then read it again") from None

    def _tables(self, con: sqlite3.Connection) -> dict[str, set[str]]:
        names = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {n: {r[1] for r in con.execute(f"PRAGMA table_info({_quote(n)})")} for n in names}

    def _refuse_foreign(self, tables: dict[str, set[str]]) -> None:
        if not tables:
            return
        for name, needed in REQUIRED.items():
            if not needed <= tables.get(name, set()):
                raise ConfigError(
                    f"{self.path}: not a dparena result database (it has the tables "
                    f"{', '.join(sorted(tables))}); give a new file or a store dparena wrote")

    def _check_readable(self) -> None:
        con = self._connect()
        try:
            tables = self._tables(con)
            if not tables:
                raise ConfigError(f"{self.path}: not a dparena result database (no tables); "
                                  f"run a suite into it first (dparena run SUITE --db PATH)")
            self._refuse_foreign(tables)
        finally:
            con.close()

    def _open_for_writing(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        con = self._connect()
        try:
            con.isolation_level = None  # explicit transaction: schema and migration in one
            con.execute("BEGIN IMMEDIATE")  # the write lock: refused on a read-only file
            tables = self._tables(con)
            self._refuse_foreign(tables)
            for statement in filter(str.strip, SCHEMA.split(";")):
                con.execute(statement)
            columns = tables.get("runs", set())
            if tables and "info" not in columns:  # a store written before runs kept their info
                con.execute("ALTER TABLE runs ADD COLUMN info TEXT NOT NULL DEFAULT '{}'")
            if tables and "accountant" not in columns:  # ... or named their accountant
                con.execute("ALTER TABLE runs ADD COLUMN accountant TEXT NOT NULL DEFAULT ''")
            if tables and "reproducible" not in columns:  # ... or said whether a seed fixes them
                con.execute("ALTER TABLE runs ADD COLUMN reproducible INTEGER")
            if tables and "nonfinite" not in tables.get("metric_values", set()):
                con.execute("ALTER TABLE metric_values ADD COLUMN nonfinite TEXT NOT NULL "
                            "DEFAULT ''")
            # always a write (page 1 and the journal beside the file): a read-only file or folder
            # fails here, before any run starts
            con.execute(f"PRAGMA user_version = {FORMAT}")
            con.execute("COMMIT")
        except BaseException:
            if con.in_transaction:
                con.execute("ROLLBACK")
            raise
        finally:
            con.close()

    def _connect(self) -> sqlite3.Connection:
        if self.mode == "r":  # SQLite's read-only mode: nothing is ever written to the file
            con = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True, timeout=60)
        else:
            con = sqlite3.connect(self.path, timeout=60)
            con.execute("PRAGMA foreign_keys = ON")
        return con

    def finished_keys(self, statuses: Iterable[str] = ("ok", "invalid", "failed")) -> set[str]:
        marks = ",".join("?" * len(tuple(statuses)))
        with self._connect() as con:
            rows = con.execute(f"SELECT key FROM runs WHERE status IN ({marks})", tuple(statuses))
            return {r[0] for r in rows}

    def record(self, rec: RunRecord, lease: str | None = None) -> None:
        """Insert or replace the run and its metric values in one transaction (releasing the
        run's lease if ``lease`` holds it)."""
        s = rec.spec
        row = (
            s.key, s.name, s.suite, s.section, s.dataset, s.dataset_version,
            json.dumps(s.dataset_params, sort_keys=True), s.method, s.method_version,
            json.dumps(s.method_params, sort_keys=True), s.label, int(s.is_dp), s.epsilon,
            s.delta, s.seed, s.n_samples, rec.status, rec.spent_epsilon, rec.spent_delta,
            json.dumps(rec.ledger, default=_default), json.dumps(rec.timings),
            rec.peak_rss_mb, json.dumps(rec.versions), rec.error,
            json.dumps(rec.metric_errors), rec.artifact,
            json.dumps(rec.audit) if rec.audit is not None else None, s.to_json(), rec.created_at,
            json.dumps(json_safe_info(rec.info), allow_nan=False), rec.accountant,
            _reproducible(s),
        )
        con = self._connect()
        try:
            with con:
                con.execute("DELETE FROM metric_values WHERE key = ?", (s.key,))
                con.execute(f"INSERT OR REPLACE INTO runs ({', '.join(RUN_COLUMNS)}) "
                            f"VALUES ({','.join('?' * len(row))})", row)
                con.executemany(
                    "INSERT INTO metric_values (key, metric, name, value, nonfinite, direction, "
                    "version, headline) VALUES (?,?,?,?,?,?,?,?)",
                    [(s.key, m["metric"], m["name"], *_stored_value(m["value"]), m["direction"],
                      m["version"], int(m["headline"])) for m in rec.metrics],
                )
                if lease is not None:
                    con.execute("DELETE FROM leases WHERE key = ? AND holder = ?", (s.key, lease))
        finally:
            con.close()

    def runs(self) -> list[StoredRun]:
        """Every run, ordered by name, with its metric values (:class:`StoredRun`).

        Columns added after a store was written read as their defaults (``OLD_DEFAULTS``).
        """
        con = self._connect()
        con.row_factory = sqlite3.Row
        try:
            rows = [dict(r) for r in con.execute("SELECT * FROM runs ORDER BY name")]
            values: dict[str, dict[str, StoredValue]] = {}
            for r in con.execute("SELECT * FROM metric_values"):
                values.setdefault(r["key"], {})[r["name"]] = StoredValue.from_row(dict(r))
        except sqlite3.DatabaseError as exc:
            self._refuse_hot_journal(exc)
            raise ConfigError(f"{self.path}: the result database is damaged ({exc})") from None
        finally:
            con.close()
        return [StoredRun.from_row(row, values.get(row["key"], {})) for row in rows]

    # -- leases: drivers sharing a store split its runs ------------------------------------------
    #
    # A driver claims a run before it starts it (a row in ``leases``: the run's key, the holder
    # "host:pid:uuid" and an expiry time), renews its leases while the runs are in flight and
    # releases each when it records the run. Another driver skips a run that is leased, and takes
    # it over once the lease is stale: expired, or held by a process of this host that is gone.

    def recorded_mark(self) -> int:
        """A mark of what is recorded now: runs recorded later have a larger rowid (a replaced
        row gets max(rowid) + 1)."""
        con = self._connect()
        try:
            return con.execute("SELECT COALESCE(MAX(rowid), 0) FROM runs").fetchone()[0]
        finally:
            con.close()

    def claim(self, key: str, holder: str, done: Iterable[str], since: int,
              ttl: float = LEASE_TTL_S) -> str:
        """Try to lease run ``key`` for ``holder``: "claimed"; "done" if it is recorded with a
        status in ``done`` or was recorded after ``since`` (``recorded_mark``) by anyone; "busy"
        if another driver's live lease holds it."""
        con = self._connect()
        try:
            con.isolation_level = None
            con.execute("BEGIN IMMEDIATE")  # one claim at a time across processes
            got = self._claim(con, key, holder, tuple(done), since, ttl)
            con.execute("COMMIT")
            return got
        except BaseException:
            if con.in_transaction:
                con.execute("ROLLBACK")
            raise
        finally:
            con.close()

    @staticmethod
    def _claim(con: sqlite3.Connection, key: str, holder: str, done: tuple[str, ...],
               since: int, ttl: float) -> str:
        row = con.execute("SELECT status, rowid FROM runs WHERE key = ?", (key,)).fetchone()
        if row is not None and (row[0] in done or row[1] > since):
            return "done"
        lease = con.execute("SELECT holder, expires_at FROM leases WHERE key = ?",
                            (key,)).fetchone()
        now = time.time()
        if lease is not None and lease[0] != holder and not _stale(*lease, now):
            return "busy"
        con.execute("INSERT OR REPLACE INTO leases (key, holder, expires_at) VALUES (?, ?, ?)",
                    (key, holder, now + ttl))
        return "claimed"

    def renew(self, keys: Iterable[str], holder: str, ttl: float = LEASE_TTL_S) -> None:
        keys = list(keys)
        if not keys:
            return
        con = self._connect()
        try:
            with con:
                con.execute(f"UPDATE leases SET expires_at = ? WHERE holder = ? AND key IN "
                            f"({','.join('?' * len(keys))})", (time.time() + ttl, holder, *keys))
        finally:
            con.close()

    def release(self, key: str, holder: str) -> None:
        self._release("key = ? AND holder = ?", (key, holder))

    def release_all(self, holder: str) -> None:
        self._release("holder = ?", (holder,))

    def _release(self, where: str, args: tuple) -> None:
        con = self._connect()
        try:
            with con:
                con.execute(f"DELETE FROM leases WHERE {where}", args)
        finally:
            con.close()

    def artifact_dir(self, spec: RunSpec) -> Path:
        return self.artifacts / spec.key

    def work_dir(self, spec: RunSpec) -> Path:
        """A run's private scratch space (resumable method state such as PE checkpoints).

        It lies outside ``artifacts/`` (which is published) and is deleted once the run is
        recorded as ok or invalid; only a failed or killed run leaves it, to resume from.
        """
        return self.path.parent / "work" / spec.key


def lease_holder() -> str:
    """A fresh holder name for a driver's leases: host:pid:uuid."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


def _stale(holder: str, expires_at: float, now: float) -> bool:
    """An expired lease, or one whose holder is a process of this host that is gone (or a
    zombie). Another host's processes cannot be seen: its leases go stale when they expire."""
    if expires_at < now:
        return True
    host, _, rest = holder.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    return not _alive(int(pid))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rpartition(")")[2].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _header_problem(path: Path) -> str | None:
    """What the file's SQLite header says is wrong with it (not SQLite, truncated), or None.

    An empty or absent file is fine (an empty database). Checked before SQLite opens the file,
    so that a torn copy is never written to.
    """
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(100)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return exc.strerror or str(exc)
    if size == 0:
        return None
    if len(head) < 100 or not head.startswith(b"SQLite format 3\x00"):
        return "not an SQLite file"
    page_size = int.from_bytes(head[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(head[28:32], "big")
    counter_valid = head[24:28] == head[92:96]  # else SQLite ignores the in-header size
    if counter_valid and pages and size < page_size * pages:
        return f"truncated: {size:,} bytes where its header says {page_size * pages:,}"
    return None


def _unwritable(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return any(w in text for w in ("readonly", "read-only", "unable to open", "disk i/o",
                                   "permission"))


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _reproducible(spec: RunSpec) -> int | None:
    """1 if the run's output is a function of its seed, 0 if not (secure noise, or a method whose
    noise takes no seed: ``Method.reproducible``), None if the method is not registered here."""
    if spec.secure_noise:
        return 0
    from dparena.methods import methods

    try:
        return int(bool(getattr(methods.get(spec.method), "reproducible", True)))
    except Exception:  # noqa: BLE001 - an unregistered or unimportable method: not recorded
        return None


def _stored_value(value: Any) -> tuple[float | None, str]:
    """A metric value as (value, nonfinite): inf, -inf and NaN are stored as NULL with their kind
    ("inf", "-inf", "nan"), so SQL aggregates never see them and the leaderboard shows them."""
    if value is None:
        return None, ""
    try:
        value = float(value)
    except (TypeError, ValueError):  # not a number at all: stored as one that is not a number
        return None, "nan"
    if math.isnan(value):
        return None, "nan"
    if math.isinf(value):
        return None, "inf" if value > 0 else "-inf"
    return value, ""


def _default(obj: Any) -> Any:
    if isinstance(obj, np.generic | np.ndarray):
        return obj.tolist()
    return str(obj)


def write_synthetic(synthetic_data: Any, labels: Any, folder: Path) -> Path:
    """Write synthetic data atomically: tables to Parquet, arrays to .npz, texts to JSON lines."""
    import pandas as pd

    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob(f"{TMP_PREFIX}*"):  # left by a worker killed mid-write
        stale.unlink(missing_ok=True)
    if isinstance(synthetic_data, pd.DataFrame):
        final = folder / "synthetic.parquet"
        writer = lambda p: synthetic_data.to_parquet(p, index=False)  # noqa: E731
    elif isinstance(synthetic_data, np.ndarray):
        final = folder / "synthetic.npz"

        def writer(p):
            with open(p, "wb") as fh:
                np.savez_compressed(fh, data=synthetic_data,
                                    **({"labels": np.asarray(labels)} if labels is not None else {}))
    else:
        final = folder / "synthetic.jsonl"
        items = list(synthetic_data)
        lab = list(labels) if labels is not None else [None] * len(items)

        def writer(p):
            with open(p, "w") as fh:
                for text, label in zip(items, lab, strict=True):
                    fh.write(json.dumps({"text": text, "label": label}, default=_default) + "\n")
    return write_atomic(final, writer)
