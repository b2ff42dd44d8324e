"""One generic registry for datasets, methods and metrics.

Entries are either classes registered with a decorator or lazy ``"module:attr"`` strings, so that
listing names imports nothing heavy. Lookups of unknown names suggest the closest ones.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import inspect
import types
import typing
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Generic, TypeVar

from dparena.errors import ConfigError, DuplicateNameError, UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to subclasses of ``base``; entries may be registered lazily by import path."""

    def __init__(self, kind: str, base: type | str):
        self.kind = kind
        self._base = base
        self._entries: dict[str, type[T] | str] = {}
        self._meta: dict[str, dict[str, str]] = {}

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

    def register_lazy(self, name: str, path: str, **meta: str) -> None:
        """Register ``"package.module:ClassName"`` without importing it.

        ``meta`` (modality, description, extra) lets ``dparena list`` describe the entry without
        importing it; a test checks it against the class attributes.
        """
        if ":" not in path:
            raise ValueError(f"lazy entry must look like 'module:attr', got {path!r}")
        self._add(name, path)
        self._meta[name] = dict(meta)

    def info(self, name: str, fields: tuple[str, ...]) -> dict[str, str]:
        """Describe an entry (from its class if loaded, else from its lazy metadata)."""
        entry = self._entries.get(name)
        if entry is None:
            self.get(name)  # raises with suggestions
        if isinstance(entry, str):
            meta = self._meta.get(name, {})
            return {f: str(meta.get(f, "")) for f in fields}
        return {f: _describe(getattr(entry, f, "")) for f in fields}

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
