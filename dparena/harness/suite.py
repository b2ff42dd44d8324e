"""Suite files: TOML that crosses datasets, methods, budgets and seeds into RunSpecs.

A suite has top-level defaults (``seeds``, ``epsilons``, ``delta``) and one or more
``[[section]]`` tables, each naming a dataset (with ``dataset_params``), ``n_samples``, ``metrics``
and a list of ``methods`` (``{name, params, label}``); a section may override the defaults.
DP methods run once per (ε, seed); non-private references once per seed.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import dparena
from dparena.errors import ConfigError
from dparena.types import Budget, resolve_delta

_SUITE_KEYS = {"name", "description", "seeds", "epsilons", "delta", "section", "timeout_s",
               "memory_mb", "secure_noise"}
_SECTION_KEYS = {"name", "dataset", "dataset_params", "n_samples", "metrics", "metric_params",
                 "methods", "seeds", "epsilons", "delta", "audit", "timeout_s", "memory_mb",
                 "secure_noise"}
_AUDIT_KEYS = {"canaries", "runs", "confidence", "n_private", "n_samples"}
_METHOD_KEYS = {"name", "params", "label"}
# a suite's name is the folder of its results (results/<name>/): one safe path component
_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,99}")


@dataclass(frozen=True)
class RunSpec:
    """One run: its canonical ``name`` is its identity and ``key`` (a content hash) its store key."""

    suite: str
    section: str
    dataset: str
    dataset_params: dict[str, Any]
    dataset_version: str
    method: str
    method_params: dict[str, Any]
    method_version: str
    label: str
    private: bool
    epsilon: float | None  # None for non-private references
    delta: float
    seed: int
    n_samples: int
    metrics: tuple[str, ...]
    metric_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    audit: dict[str, Any] | None = None
    timeout_s: float | None = None  # execution limits: not part of the run's identity
    memory_mb: float | None = None
    package_version: str = dparena.__version__
    secure_noise: bool = False  # DP noise from OS entropy (part of the identity only when on)

    @property
    def budget(self) -> Budget:
        return Budget(self.epsilon, self.delta) if self.epsilon is not None else Budget.non_private()

    @property
    def name(self) -> str:
        parts = [f"method={self.method}"]
        parts += [f"{k}={_fmt(v)}" for k, v in sorted(self.method_params.items())]
        parts.append(f"eps={_fmt(self.epsilon) if self.epsilon is not None else 'ref'}")
        parts.append(f"seed={self.seed}")
        ds = self.dataset + "".join(f",{k}={_fmt(v)}" for k, v in sorted(self.dataset_params.items()))
        return f"{ds}:{','.join(parts)}"

    @property
    def key(self) -> str:
        payload = {k: v for k, v in asdict(self).items()
                   if k not in {"suite", "section", "label", "timeout_s", "memory_mb"}}
        if not self.secure_noise:  # keys of seeded runs stay what they were
            payload.pop("secure_noise")
        blob = json.dumps(payload, sort_keys=True, default=str, allow_nan=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:24]

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, default=str)

    @classmethod
    def from_json(cls, text: str) -> RunSpec:
        data = json.loads(text)
        data["metrics"] = tuple(data["metrics"])
        return cls(**data)


def _fmt(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, list | tuple):
        return "[" + ";".join(_fmt(v) for v in value) + "]"
    return str(value)


@dataclass
class Suite:
    name: str
    path: Path | None
    specs: list[RunSpec]
    description: str = ""

    def filter(self, only: list[str]) -> list[RunSpec]:
        """Keep specs matching every ``KEY=VALUE`` (keys: dataset, method, label, section, eps, seed)."""
        conditions = []
        for item in only:
            if "=" not in item:
                raise ConfigError(f"--only takes KEY=VALUE (e.g. method=aim), got {item!r}")
            key, value = item.split("=", 1)
            if key not in {"dataset", "method", "label", "section", "eps", "seed"}:
                raise ConfigError(
                    f"--only key {key!r} unknown; use dataset, method, label, section, eps or seed"
                )
            conditions.append((key, value))

        def match(spec: RunSpec) -> bool:
            for key, value in conditions:
                if key == "eps":
                    if spec.epsilon is None and value != "ref":
                        return False
                    if spec.epsilon is not None and (value == "ref" or not _float_eq(spec.epsilon, value)):
                        return False
                elif key == "seed":
                    if str(spec.seed) != value:
                        return False
                elif str(getattr(spec, key)) != value:
                    return False
            return True

        return [s for s in self.specs if match(s)]


def _float_eq(a: float, text: str) -> bool:
    try:
        return math.isclose(a, float(text))
    except ValueError:
        raise ConfigError(f"--only eps takes a number or 'ref', got {text!r}") from None


def load_suite(path: str | Path, store=None, secure_noise: bool = False) -> Suite:
    """Parse and validate a suite file; every mistake becomes a one-line ConfigError."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"suite file {path} does not exist; see benchmarks/suites/ for examples")
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    return parse_suite(raw, path=path, store=store, secure_noise=secure_noise)


def parse_suite(raw: dict[str, Any], path: Path | None = None, store=None,
                secure_noise: bool = False) -> Suite:
    """``secure_noise`` (the CLI's --secure-noise) turns OS-entropy noise on for every section."""
    from dparena.assets import AssetStore
    from dparena.datasets import datasets
    from dparena.methods import methods
    from dparena.metrics import metrics

    where = str(path) if path else "suite"
    store = store or AssetStore()
    _no_unknown(raw, _SUITE_KEYS, where)
    name = suite_name(raw["name"], where) if "name" in raw else (
        suite_name(path.stem, where, derived=True) if path else "suite")
    sections = raw.get("section")
    if not sections or not isinstance(sections, list):
        raise ConfigError(f"{where}: needs at least one [[section]] table")
    specs: list[RunSpec] = []
    for i, sec in enumerate(sections):
        swhere = f"{where} section {sec.get('name', i + 1)!r}"
        _no_unknown(sec, _SECTION_KEYS, swhere)
        sec_name = str(sec.get("name", sec.get("dataset", i + 1)))
        seeds = _int_list(sec.get("seeds", raw.get("seeds", [0])), "seeds", swhere)
        epsilons = [float(e) for e in sec.get("epsilons", raw.get("epsilons", []))]
        for eps in epsilons:
            Budget(eps, 0.0)  # validates ε > 0
        if "dataset" not in sec:
            raise ConfigError(f"{swhere}: missing 'dataset'")
        ds_name = sec["dataset"]
        ds_params = dict(sec.get("dataset_params", {}))
        dataset = datasets.create(ds_name, **ds_params)
        n_private = dataset.private_size(store)
        delta = resolve_delta(sec.get("delta", raw.get("delta", 1e-5)), n_private)
        Budget(1.0, delta)
        n_samples = sec.get("n_samples", n_private)
        if n_samples == "private":
            n_samples = n_private
        if not isinstance(n_samples, int) or n_samples < 1:
            raise ConfigError(f"{swhere}: n_samples must be a positive integer or 'private'")
        if "metrics" not in sec:  # `metrics = []` (generation only) must be written out
            raise ConfigError(f"{swhere}: list at least one metric (or metrics = [] to only "
                              f"generate)")
        metric_names = tuple(sec["metrics"])
        metric_params = {k: dict(v) for k, v in sec.get("metric_params", {}).items()}
        for m in metric_names:
            metric = metrics.create(m, **metric_params.get(m, {}))
            if not metric.supports(dataset.modality):
                raise ConfigError(
                    f"{swhere}: metric {m!r} does not apply to {dataset.modality.value} data"
                )
        for m in metric_params:
            if m not in metric_names:
                raise ConfigError(f"{swhere}: metric_params for {m!r}, which is not in metrics")
        audit = _audit_options(sec.get("audit"), swhere)
        secure = sec.get("secure_noise", raw.get("secure_noise", False))
        if not isinstance(secure, bool):
            raise ConfigError(f"{swhere}: secure_noise must be true or false")
        secure = secure or secure_noise
        limits = {}
        for key in ("timeout_s", "memory_mb"):
            value = sec.get(key, raw.get(key))
            if value is not None and (not isinstance(value, int | float) or value <= 0):
                raise ConfigError(f"{swhere}: {key} must be a positive number")
            limits[key] = value
        entries = sec.get("methods") or []
        if not entries:
            raise ConfigError(f"{swhere}: list at least one method")
        labels: set[str] = set()
        for entry in entries:
            if isinstance(entry, str):
                entry = {"name": entry}
            _no_unknown(entry, _METHOD_KEYS, f"{swhere} method {entry.get('name')!r}")
            if "name" not in entry:
                raise ConfigError(f"{swhere}: a method entry lacks 'name'")
            params = dict(entry.get("params", {}))
            method = methods.create(entry["name"], **params)
            if not method.supports(dataset.modality):
                raise ConfigError(
                    f"{swhere}: method {entry['name']!r} is for {_modalities(method)} data, "
                    f"dataset {ds_name!r} is {dataset.modality.value}"
                )
            label = entry.get("label") or entry["name"]
            if label in labels:
                raise ConfigError(
                    f"{swhere}: two methods are labelled {label!r}; give each a distinct 'label'"
                )
            labels.add(label)
            cls = type(method)
            eps_list: list[float | None] = list(epsilons) if cls.private else [None]
            if cls.private and not eps_list:
                raise ConfigError(f"{swhere}: no epsilons given for DP method {entry['name']!r}")
            for eps in eps_list:
                for seed in seeds:
                    specs.append(RunSpec(
                        suite=name, section=sec_name, dataset=ds_name, dataset_params=ds_params,
                        dataset_version=type(dataset).version, method=entry["name"],
                        method_params=params, method_version=cls.version, label=label,
                        private=cls.private, epsilon=eps, delta=delta, seed=seed,
                        n_samples=n_samples, metrics=metric_names, metric_params=metric_params,
                        audit=audit if cls.private else None, **limits,
                        secure_noise=bool(secure and cls.private),
                    ))
    keys = [s.key for s in specs]
    if len(set(keys)) != len(keys):
        raise ConfigError(f"{where}: the same run is listed twice (same dataset, method, params)")
    return Suite(name=name, path=path, specs=specs, description=raw.get("description", ""))


def suite_name(value: Any, where: str = "suite", derived: bool = False) -> str:
    """A suite name that is safe as the folder ``results/<name>/``: letters, digits, ``-_.``, not
    starting with a dot, at most 100 characters (a ConfigError otherwise)."""
    if isinstance(value, str) and _NAME.fullmatch(value):
        return value
    if derived:
        raise ConfigError(f"{where}: the file name {value!r} is not a safe results folder name; "
                          f"add name = \"...\" (letters, digits, '-', '_', '.'; no leading dot)")
    raise ConfigError(f"{where}: name must be letters, digits, '-', '_' or '.' (not starting with "
                      f"a dot, at most 100 characters), got {value!r}; it names the results folder")


def _audit_options(value: Any, where: str) -> dict[str, Any] | None:
    """``audit = true`` or ``audit = { canaries, runs, confidence, n_private, n_samples }``."""
    if value is None or value is False:
        return None
    options: dict[str, Any] = {} if value is True else dict(value)
    _no_unknown(options, _AUDIT_KEYS, f"{where} audit")
    defaults = {"canaries": None, "runs": 1, "confidence": 0.95, "n_private": 300,
                "n_samples": 1500}
    return {**defaults, **options}


def _no_unknown(table: dict, allowed: set[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown keys {unknown}; allowed: {sorted(allowed)}")


def _int_list(value: Any, what: str, where: str) -> list[int]:
    if not isinstance(value, list) or not value or not all(isinstance(v, int) for v in value):
        raise ConfigError(f"{where}: {what} must be a non-empty list of integers")
    return value


def _modalities(obj) -> str:
    mods = obj.modality if isinstance(obj.modality, tuple) else (obj.modality,)
    return "/".join(m.value for m in mods)
