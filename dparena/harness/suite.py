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
from dparena.errors import ConfigError, DparenaError
from dparena.types import Budget, resolve_delta

_SUITE_KEYS = {"name", "description", "seeds", "epsilons", "delta", "section", "ordering",
               "timeout_s", "memory_mb", "secure_noise"}
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
    is_dp: bool  # False for the non-private references (stored and hashed as "private")
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
        payload = {k: v for k, v in self._serialized().items()
                   if k not in {"suite", "section", "label", "timeout_s", "memory_mb"}}
        if not self.secure_noise:  # keys of seeded runs stay what they were
            payload.pop("secure_noise")
        blob = json.dumps(payload, sort_keys=True, default=str, allow_nan=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:24]

    def to_json(self) -> str:
        return json.dumps(self._serialized(), sort_keys=True, default=str)

    @classmethod
    def from_json(cls, text: str) -> RunSpec:
        data = json.loads(text)
        for field_name, stored in _STORED_NAMES.items():
            if stored in data:
                data[field_name] = data.pop(stored)
        data["metrics"] = tuple(data["metrics"])
        return cls(**data)

    def _serialized(self) -> dict[str, Any]:
        """The fields under their stored names: what the key hashes and the store keeps."""
        return {_STORED_NAMES.get(k, k): v for k, v in asdict(self).items()}


# fields renamed in code whose stored (and hashed) name stays, so run keys and stored records of
# earlier versions are unchanged: ``is_dp`` was ``private`` (the store's column keeps that name)
_STORED_NAMES = {"is_dp": "private"}


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
    orderings: list[Ordering] = field(default_factory=list)

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
    if path.is_dir():
        raise ConfigError(f"{path} is a folder; give a suite .toml file (see benchmarks/suites/)")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read suite file {path} ({exc.strerror or exc})") from None
    try:
        text = data.decode("utf-8-sig")
        if "\x00" in text:
            raise UnicodeError
    except UnicodeError:
        kind = " (it looks like UTF-16)" if data[:2] in (b"\xff\xfe", b"\xfe\xff") else ""
        raise ConfigError(f"{path} is not UTF-8 text{kind}; save the suite as a UTF-8 TOML "
                          f"file") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    return parse_suite(raw, path=path, store=store, secure_noise=secure_noise)


def parse_suite(raw: dict[str, Any], path: Path | None = None, store=None,
                secure_noise: bool = False) -> Suite:
    """Validate a parsed suite completely (types, ranges, names) before anything runs.

    ``secure_noise`` (the CLI's --secure-noise) turns OS-entropy noise on for every section.
    """
    from dparena.assets import AssetStore
    from dparena.datasets import datasets
    from dparena.methods import methods
    from dparena.metrics import metrics

    where = str(path) if path else "suite"
    store = store or AssetStore()
    _table(raw, "a suite", where)
    _no_unknown(raw, _SUITE_KEYS, where)
    name = suite_name(raw["name"], where) if "name" in raw else (
        suite_name(path.stem, where, derived=True) if path else "suite")
    description = raw.get("description", "")
    if not isinstance(description, str):
        raise ConfigError(f"{where}: description must be a string, got {description!r}")
    for key in ("seeds", "epsilons", "delta", "timeout_s", "memory_mb", "secure_noise"):
        if key in raw:  # the defaults are checked even where every section overrides them
            _TOP_CHECKS[key](raw[key], where)
    sections = raw.get("section")
    if not sections or not isinstance(sections, list):
        raise ConfigError(f"{where}: needs at least one [[section]] table")
    specs: list[RunSpec] = []
    for i, sec in enumerate(sections):
        if not isinstance(sec, dict):
            raise ConfigError(f"{where}: section {i + 1} must be a [[section]] table, got {sec!r}")
        swhere = f"{where} section {sec.get('name', i + 1)!r}"
        _no_unknown(sec, _SECTION_KEYS, swhere)
        if "dataset" not in sec:
            raise ConfigError(f"{swhere}: missing 'dataset'")
        ds_name = _text(sec["dataset"], "dataset", swhere)
        sec_name = _text(sec.get("name", ds_name), "name", swhere)
        seeds = _seeds(sec.get("seeds", raw.get("seeds", [0])), swhere)
        epsilons = _epsilons(sec.get("epsilons", raw.get("epsilons", [])), swhere)
        ds_params = _table(sec.get("dataset_params", {}), "dataset_params", swhere)
        dataset = datasets.create(ds_name, **ds_params)
        n_private = dataset.private_size(store)
        delta = _delta(sec.get("delta", raw.get("delta", 1e-5)), swhere, n_private)
        n_samples = sec.get("n_samples", n_private)
        if n_samples == "private":
            n_samples = n_private
        if not _is_int(n_samples) or n_samples < 1:
            raise ConfigError(f"{swhere}: n_samples must be a positive integer or 'private', got "
                              f"{n_samples!r}")
        if "metrics" not in sec:  # `metrics = []` (generation only) must be written out
            raise ConfigError(f"{swhere}: list at least one metric (or metrics = [] to only "
                              f"generate)")
        metric_names = sec["metrics"]
        if not isinstance(metric_names, list) or not all(isinstance(m, str) for m in metric_names):
            raise ConfigError(f"{swhere}: metrics must be a list of metric names (see dparena "
                              f"list metrics), got {metric_names!r}")
        metric_names = tuple(metric_names)
        metric_params = {k: _table(v, f"metric_params for {k!r}", swhere) for k, v in
                         _table(sec.get("metric_params", {}), "metric_params", swhere).items()}
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
        if audit is not None and audit["runs"] > 1 and dataset.modality.value != "tabular":
            raise ConfigError(f"{swhere}: {dataset.modality.value} audits use the one-run "
                              f"analysis only; drop runs from audit")
        secure = _bool(sec.get("secure_noise", raw.get("secure_noise", False)), "secure_noise",
                       swhere)
        secure = secure or secure_noise
        limits = {key: _limit(sec.get(key, raw.get(key)), key, swhere)
                  for key in ("timeout_s", "memory_mb")}
        entries = sec.get("methods") or []
        if not isinstance(entries, list):
            raise ConfigError(f"{swhere}: methods must be a list of method names or "
                              f"{{ name, params, label }} tables, got {entries!r}")
        if not entries:
            raise ConfigError(f"{swhere}: list at least one method")
        labels: set[str] = set()
        for entry in entries:
            if isinstance(entry, str):
                entry = {"name": entry}
            if not isinstance(entry, dict):
                raise ConfigError(f"{swhere}: a method entry must be a name or a {{ name, params, "
                                  f"label }} table, got {entry!r}")
            _no_unknown(entry, _METHOD_KEYS, f"{swhere} method {entry.get('name')!r}")
            if "name" not in entry:
                raise ConfigError(f"{swhere}: a method entry lacks 'name'")
            m_name = _text(entry["name"], "a method's name", swhere)
            mwhere = f"{swhere} method {m_name!r}"
            params = _table(entry.get("params", {}), "params", mwhere)
            method = methods.create(m_name, **params)
            if not method.supports(dataset.modality):
                raise ConfigError(
                    f"{swhere}: method {m_name!r} is for {_modalities(method)} data, "
                    f"dataset {ds_name!r} is {dataset.modality.value}"
                )
            label = _text(entry.get("label", m_name), "label", mwhere)
            if label in labels:
                raise ConfigError(
                    f"{swhere}: two methods are labelled {label!r}; give each a distinct 'label'"
                )
            labels.add(label)
            cls = type(method)
            eps_list: list[float | None] = list(epsilons) if cls.is_dp else [None]
            if cls.is_dp and not eps_list:
                raise ConfigError(f"{swhere}: no epsilons given for DP method {m_name!r}")
            for eps in eps_list:
                for seed in seeds:
                    specs.append(RunSpec(
                        suite=name, section=sec_name, dataset=ds_name, dataset_params=ds_params,
                        dataset_version=dataset.version, method=m_name,
                        method_params=params, method_version=cls.version, label=label,
                        is_dp=cls.is_dp, epsilon=eps, delta=delta, seed=seed,
                        n_samples=n_samples, metrics=metric_names, metric_params=metric_params,
                        audit=audit if cls.is_dp else None, **limits,
                        secure_noise=bool(secure and cls.is_dp),
                    ))
    keys = [s.key for s in specs]
    if len(set(keys)) != len(keys):
        raise ConfigError(f"{where}: the same run is listed twice (same dataset, method, params)")
    orderings = _orderings(raw.get("ordering", []), specs, where)
    return Suite(name=name, path=path, specs=specs, description=description,
                 orderings=orderings)


@dataclass(frozen=True)
class Ordering:
    """A paper's claim that ``better`` beats ``worse`` on column ``metric`` at ``epsilon`` in
    ``section``; judged on the stored runs by ``dparena.leaderboard.orderings``."""

    section: str
    metric: str
    better: str
    worse: str
    epsilon: float
    source: str = ""


_ORDERING_KEYS = {"section", "metric", "better", "worse", "epsilon", "source"}


def _orderings(value: Any, specs: list[RunSpec], where: str) -> list[Ordering]:
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise ConfigError(f"{where}: ordering must be [[ordering]] tables with section, metric, "
                          f"better, worse and epsilon")
    out = []
    for i, entry in enumerate(value):
        owhere = f"{where} ordering {i + 1}"
        _no_unknown(entry, _ORDERING_KEYS, owhere)
        missing = [k for k in ("section", "metric", "better", "worse", "epsilon")
                   if k not in entry]
        if missing:
            raise ConfigError(f"{owhere}: missing {', '.join(missing)}")
        section = _text(entry["section"], "section", owhere)
        in_section = [s for s in specs if s.section == section]
        if not in_section:
            known = sorted({s.section for s in specs})
            raise ConfigError(f"{owhere}: no section named {section!r}; sections: {known}")
        metric = _text(entry["metric"], "metric", owhere)
        if metric.split("/", 1)[0] not in in_section[0].metrics:
            raise ConfigError(f"{owhere}: metric {metric!r} is not computed in section "
                              f"{section!r} (its metrics: {list(in_section[0].metrics)})")
        if not _is_number(entry["epsilon"]) or not math.isfinite(entry["epsilon"]):
            raise ConfigError(f"{owhere}: epsilon must be a finite number, got "
                              f"{entry['epsilon']!r}")
        eps = float(entry["epsilon"])
        labels = {s.label for s in in_section
                  if s.epsilon is None or math.isclose(s.epsilon, eps)}
        pair = []
        for key in ("better", "worse"):
            label = _text(entry[key], key, owhere)
            if label not in labels:
                raise ConfigError(f"{owhere}: {key} = {label!r} is not a label run at "
                                  f"epsilon {eps:g} in section {section!r}; labels: "
                                  f"{sorted(labels)}")
            pair.append(label)
        if pair[0] == pair[1]:
            raise ConfigError(f"{owhere}: better and worse are both {pair[0]!r}")
        source = entry.get("source", "")
        if not isinstance(source, str):
            raise ConfigError(f"{owhere}: source must be a string, got {source!r}")
        out.append(Ordering(section, metric, pair[0], pair[1], eps, source))
    return out


def check_datasets(specs: list[RunSpec], store=None) -> None:
    """Check the data of every (dataset, params) the specs use against its public schema before
    anything runs or is written: the user's own files (``csv``, ``image-folder``, ``text-file``)
    are read and checked, built-in assets are pinned. The first mismatch is a one-line
    DparenaError naming the section."""
    from dparena.assets import AssetStore
    from dparena.datasets import datasets

    store = store or AssetStore()
    seen: set[str] = set()
    for spec in specs:
        key = json.dumps([spec.dataset, spec.dataset_params], sort_keys=True, default=str)
        if key in seen:
            continue
        seen.add(key)
        try:
            datasets.create(spec.dataset, **spec.dataset_params).check(store)
        except DparenaError as exc:
            raise ConfigError(f"section {spec.section!r}: {exc}; or run other sections alone with "
                              f"--only section=NAME") from None


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
    if value is not True and not isinstance(value, dict):
        raise ConfigError(f"{where}: audit must be true, false or a table such as "
                          f"{{ n_private = 300 }}, got {value!r}")
    options: dict[str, Any] = {} if value is True else dict(value)
    awhere = f"{where} audit"
    _no_unknown(options, _AUDIT_KEYS, awhere)
    for key, least in (("canaries", 1), ("runs", 1), ("n_private", 2), ("n_samples", 1)):
        if key in options and (not _is_int(options[key]) or options[key] < least):
            raise ConfigError(f"{awhere}: {key} must be an integer >= {least}, got "
                              f"{options[key]!r}")
    confidence = options.get("confidence", 0.95)
    if not _is_number(confidence) or not 0 < confidence < 1:
        raise ConfigError(f"{awhere}: confidence must be a number in (0, 1) such as 0.95, got "
                          f"{confidence!r}")
    defaults = {"canaries": None, "runs": 1, "confidence": 0.95, "n_private": 300,
                "n_samples": 1500}
    return {**defaults, **options}


def _no_unknown(table: dict, allowed: set[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown keys {unknown}; allowed: {sorted(allowed)}")


# TOML booleans are Python bools, which are ints: never accept one where a number is meant
def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


SEED_LIMIT = 2**32  # seeds are unsigned 32-bit integers (what every seeded library accepts)


def _seeds(value: Any, where: str) -> list[int]:
    if (not isinstance(value, list) or not value
            or not all(_is_int(v) and 0 <= v < SEED_LIMIT for v in value)):
        raise ConfigError(f"{where}: seeds must be a non-empty list of integers in 0..{SEED_LIMIT - 1}"
                          f" (e.g. [0, 1, 2]), got {value!r}")
    return value


def _epsilons(value: Any, where: str) -> list[float]:
    if not isinstance(value, list) or not all(_is_number(v) for v in value):
        raise ConfigError(f"{where}: epsilons must be a list of numbers (e.g. [1.0, 10.0]), got "
                          f"{value!r}")
    for eps in value:
        if not math.isfinite(eps):
            raise ConfigError(f"{where}: epsilons must be finite, got {eps!r}; ε = inf is the "
                              f"budget of non-private references such as 'real', listed as methods")
        Budget(eps, 0.0)  # validates ε > 0
    return [float(e) for e in value]


def _delta(value: Any, where: str, n_private: int | None = None) -> float | None:
    """The δ of ``value`` (a number or a rule of the public size N); with ``n_private`` None only
    the value's type and, for a number, its range are checked."""
    if not (_is_number(value) or isinstance(value, str)):
        raise ConfigError(f"{where}: delta must be a number in (0, 1) or the rule '1/(n*ln(n))', "
                          f"got {value!r}")
    if n_private is None and isinstance(value, str):
        return None  # a rule: resolved (and checked) per section
    delta = resolve_delta(value, n_private or 2)
    if not 0.0 < delta < 1.0:  # also rejects NaN
        raise ConfigError(f"{where}: delta must be in (0, 1), got {value!r}; every DP guarantee "
                          f"here needs δ > 0 (e.g. 1e-5 or '1/(n*ln(n))')")
    return delta


def _limit(value: Any, key: str, where: str) -> float | None:
    if value is not None and (not _is_number(value) or not math.isfinite(value) or value <= 0):
        raise ConfigError(f"{where}: {key} must be a positive number, got {value!r}")
    return value


def _bool(value: Any, key: str, where: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{where}: {key} must be true or false, got {value!r}")
    return value


def _text(value: Any, what: str, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where}: {what} must be a non-empty string, got {value!r}")
    return value


def _table(value: Any, what: str, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: {what} must be a table such as {{ key = value }}, got "
                          f"{value!r}")
    return dict(value)


_TOP_CHECKS = {
    "seeds": _seeds, "epsilons": _epsilons,
    "delta": _delta,
    "timeout_s": lambda v, where: _limit(v, "timeout_s", where),
    "memory_mb": lambda v, where: _limit(v, "memory_mb", where),
    "secure_noise": lambda v, where: _bool(v, "secure_noise", where),
}


def _modalities(obj) -> str:
    mods = obj.modality if isinstance(obj.modality, tuple) else (obj.modality,)
    return "/".join(m.value for m in mods)
