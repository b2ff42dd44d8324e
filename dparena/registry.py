"""One generic registry for datasets, methods and metrics.

Entries are either classes registered with a decorator or lazy ``"module:attr"`` strings, so that
listing names imports nothing heavy. Lookups of unknown names suggest the closest ones.

Every fact about an entry (``modality``, ``description``, ``extra``) is written once, on its
class. ``dparena list`` and docs/catalogue.md describe a lazy entry by reading those class
attributes from the module's source (:func:`static_attributes`), without importing it — so
listing needs none of the heavy or optional dependencies the class imports.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import functools
import importlib
import importlib.util
import inspect
import types
import typing
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Generic, TypeVar

from dparena.errors import ConfigError, DuplicateNameError, UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to subclasses of ``base``; entries may be registered lazily by import path."""

    def __init__(self, kind: str, base: type | str):
        self.kind = kind
        self._base = base
        self._entries: dict[str, type[T] | str] = {}

    @property
    def base(self) -> type:
        if isinstance(self._base, str):
            self._base = _import_path(self._base)
        return self._base

    def register(self, name: str) -> Callable[[type[T]], type[T]]:
        """Class decorator: ``@methods.register("aim")``."""

        def deco(cls: type[T]) -> type[T]:
            self._add(name, cls)
            cls.name = name  # type: ignore[attr-defined]
            return cls

        return deco

    def register_lazy(self, name: str, path: str) -> None:
        """Register ``"package.module:ClassName"`` without importing it (its class attributes
        describe it; :meth:`info` reads them from the source)."""
        if ":" not in path:
            raise ValueError(f"lazy entry must look like 'module:attr', got {path!r}")
        self._add(name, path)

    def info(self, name: str, fields: tuple[str, ...]) -> dict[str, str]:
        """Describe an entry by its class attributes ``fields`` as text (a tuple of modalities
        as "a,b"): from the class if it is loaded, else read from its source without importing
        it. ``"doc"`` is the class's own docstring."""
        entry = self._entries.get(name)
        if entry is None:
            self.get(name)  # raises with suggestions
        if isinstance(entry, str):
            return static_attributes(entry, fields)
        return {f: (inspect.cleandoc(entry.__dict__.get("__doc__") or "") if f == "doc"
                    else _describe(getattr(entry, f, ""))) for f in fields}

    def path(self, name: str) -> str:
        """``"module:Class"`` of an entry (lazy or loaded)."""
        entry = self._entries.get(name)
        if entry is None:
            self.get(name)  # raises with suggestions
        return entry if isinstance(entry, str) else f"{entry.__module__}:{entry.__qualname__}"

    def _add(self, name: str, entry: type[T] | str) -> None:
        current = self._entries.get(name)
        if current is not None and current is not entry:
            lazy_match = isinstance(current, str) and not isinstance(entry, str) and (
                current == f"{entry.__module__}:{entry.__qualname__}"
            )
            if not lazy_match:
                raise DuplicateNameError(f"{self.kind} {name!r} is already registered; register "
                                         f"yours under another name")
        if not isinstance(entry, str) and not issubclass(entry, self.base):
            raise TypeError(f"{entry.__name__} must subclass {self.base.__name__}")
        self._entries[name] = entry

    def get(self, name: str) -> type[T]:
        """The class registered as ``name``, importing it if it was registered lazily."""
        if not isinstance(name, str):
            raise ConfigError(f"a {self.kind} name must be a string, got {name!r}")
        if name not in self._entries:
            known = ", ".join(sorted(self._entries))
            raise UnknownNameError(f"unknown {self.kind} {name!r}{did_you_mean(name, self._entries)}"
                                   f" (known: {known})")
        entry = self._entries[name]
        if isinstance(entry, str):
            try:
                cls = _import_path(entry)
            except ImportError as exc:
                raise ConfigError(
                    f"{self.kind} {name!r} needs a missing dependency ({exc.name}): "
                    f"run `pip install 'dparena[all]'`"
                ) from exc
            if not issubclass(cls, self.base):
                raise TypeError(f"{entry} must subclass {self.base.__name__}")
            self._entries[name] = cls
            cls.name = name
            entry = cls
        return entry

    def create(self, name: str, **params) -> T:
        """Instantiate the entry ``name`` with ``params``; bad parameters give a ConfigError.

        Each parameter is first checked against the constructor's annotation (``int``, ``float``,
        ``str``, ``bool``, unions, lists and tuples of them; a bool is never a number), and one
        named ``seed`` or ``*_seed`` must be a non-negative integer, so that a wrong type fails
        here, when a suite is read, and not in the middle of a run.
        """
        cls = self.get(name)
        _check_params(cls, params, f"{self.kind} {name!r}")
        try:
            return cls(**params)
        except TypeError as exc:
            raise ConfigError(f"bad parameters for {self.kind} {name!r}: {exc}") from exc

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """"; did you mean 'x', 'y'?" for the choices closest to ``name``, or ""."""
    close = difflib.get_close_matches(str(name), list(choices), n=3, cutoff=0.5)
    return f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""


def _check_params(cls: type, params: dict[str, Any], what: str) -> None:
    """Check ``params`` against the constructor's annotations — or, for a class that declares a
    ``config_type`` dataclass (its parameters passed whole as one config), against the config's
    fields, where an unknown name is a ConfigError listing the known ones."""
    config = getattr(cls, "config_type", None)
    target = config if dataclasses.is_dataclass(config) else cls.__init__
    try:
        hints = typing.get_type_hints(target)
        names = ([f.name for f in dataclasses.fields(config)] if target is config
                 else list(inspect.signature(target).parameters))
    except Exception:  # noqa: BLE001 - unresolvable annotations: leave checking to the class
        return
    if target is config:
        unknown = [k for k in params if k not in names]
        if unknown:
            raise ConfigError(f"bad parameters for {what}: unknown parameter {unknown[0]!r}"
                              f"{did_you_mean(unknown[0], names)} (known: {', '.join(names)})")
    for key, value in params.items():
        if key not in names or key not in hints:
            continue  # unknown names are the constructor's TypeError (listed below)
        hint = hints[key]
        if not _matches(value, hint):
            raise ConfigError(f"bad parameters for {what}: {key} must be {_expected(hint)}, "
                              f"got {value!r}")
        if (key == "seed" or key.endswith("_seed")) and isinstance(value, int) and value < 0:
            raise ConfigError(f"bad parameters for {what}: {key} must be >= 0, got {value!r}")


def _matches(value: Any, hint: Any) -> bool:
    """Whether a suite value fits a constructor annotation (unknown kinds of hints always do)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return True
    if hint is type(None):
        return value is None
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, a) for a in args)
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            return False
        item = args[0] if args and (origin is list or args[-1] is Ellipsis) else Any
        return all(_matches(v, item) for v in value)
    if origin is dict or hint is dict:
        return isinstance(value, dict)
    return True


def _expected(hint: Any) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_expected(a) for a in args)
    if origin in (list, tuple):
        item = args[0] if args and (origin is list or args[-1] is Ellipsis) else None
        return f"a list of {_plural(item)}" if item is not None else "a list"
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string",
            type(None): "left out"}.get(hint, "a table" if origin is dict or hint is dict
                                              else getattr(hint, "__name__", str(hint)))


def _plural(hint: Any) -> str:
    return {bool: "booleans", int: "integers", float: "numbers", str: "strings"}.get(
        hint, _expected(hint))


def _describe(value) -> str:
    """A class attribute as text; a tuple of enums (several modalities) as "a,b"."""
    if isinstance(value, tuple):
        return ",".join(str(getattr(v, "value", v)) for v in value)
    return str(getattr(value, "value", value) or "")


def _import_path(path: str):
    module, _, attr = path.partition(":")
    obj = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


# ---------------------------------------------------------------- reading classes without importing
class _Unreadable(Exception):
    pass


def static_attributes(path: str, fields: tuple[str, ...]) -> dict[str, str]:
    """Class attributes of ``"module:Class"`` read from the module's source, not by importing it.

    Each field is the value of the first class in the bases chain (depth first, the way single
    inheritance resolves) that assigns it: a string, a bool, None, ``Modality.X`` or a tuple of
    modalities (as "a,b"); "" when no class does. Bases are followed into the same module and
    through ``from dparena... import Name``. ``"doc"`` is the class's own docstring. A value the
    reader cannot evaluate is a ValueError naming it (a test reads every built-in entry so).
    """
    module, _, attr = path.partition(":")
    cls = _class_node(module, attr)
    out = {}
    for f in fields:
        if f == "doc":
            out[f] = ast.get_docstring(cls[1]) or ""
            continue
        try:
            out[f] = _describe(_lookup(cls, f))
        except _Unreadable as exc:
            raise ValueError(f"{path}: cannot read {f!r} from the source ({exc})") from None
    return out


def _lookup(cls: tuple[str, ast.ClassDef], field: str, depth: int = 0) -> Any:
    module, node = cls
    for stmt in node.body:
        targets = (stmt.targets if isinstance(stmt, ast.Assign)
                   else [stmt.target] if isinstance(stmt, ast.AnnAssign) and stmt.value else [])
        if any(isinstance(t, ast.Name) and t.id == field for t in targets):
            return _literal(stmt.value)
    for base in node.bases:
        found = _base_class(module, base) if depth < 20 else None
        if found is not None:
            value = _lookup(found, field, depth + 1)
            if value is not _MISSING:
                return value
    return _MISSING if depth else ""


_MISSING = object()


def _literal(node: ast.expr) -> Any:
    from dparena.types import Modality

    if isinstance(node, ast.Constant) and isinstance(node.value, str | bool | type(None)):
        return node.value
    if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
            and node.value.id == "Modality" and node.attr in Modality.__members__):
        return Modality[node.attr]
    if isinstance(node, ast.Tuple):
        return tuple(_literal(e) for e in node.elts)
    raise _Unreadable(ast.unparse(node))


def _base_class(module: str, base: ast.expr) -> tuple[str, ast.ClassDef] | None:
    """The (module, class node) a base expression names, if it is a dparena class."""
    if not isinstance(base, ast.Name):
        return None
    tree = _parse(module)
    for stmt in tree.body:
        if isinstance(stmt, ast.ClassDef) and stmt.name == base.id:
            return module, stmt
        if isinstance(stmt, ast.ImportFrom) and any((a.asname or a.name) == base.id
                                                    for a in stmt.names):
            source = importlib.util.resolve_name("." * stmt.level + (stmt.module or ""),
                                                 _package(module)) if stmt.level else stmt.module
            if source and source.split(".")[0] == module.split(".")[0]:
                name = next(a.name for a in stmt.names if (a.asname or a.name) == base.id)
                try:
                    return _class_node(source, name)
                except ValueError:
                    return None
    return None


def _class_node(module: str, name: str) -> tuple[str, ast.ClassDef]:
    for stmt in _parse(module).body:
        if isinstance(stmt, ast.ClassDef) and stmt.name == name:
            return module, stmt
    raise ValueError(f"{module} defines no class {name!r}")


def _package(module: str) -> str:
    return module if _module_file(module).name == "__init__.py" else module.rpartition(".")[0]


@functools.cache
def _parse(module: str) -> ast.Module:
    return ast.parse(_module_file(module).read_text(encoding="utf-8"))


@functools.cache
def _module_file(module: str) -> Path:
    """The source file of ``module``, found without importing it (only its top-level package)."""
    top, *parts = module.split(".")
    spec = importlib.util.find_spec(top)
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(f"cannot find the package {top!r}")
    where = [Path(p) for p in spec.submodule_search_locations]
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        found = None
        for folder in where:
            if (folder / part / "__init__.py").is_file():
                found = folder / part / "__init__.py"
                break
            if last and (folder / f"{part}.py").is_file():
                found = folder / f"{part}.py"
                break
        if found is None:
            raise ValueError(f"cannot find the source of {module!r}")
        where = [found.parent]
    return found if parts else Path(spec.origin)
