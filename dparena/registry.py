"""One generic registry for datasets, methods and metrics.

Entries are either classes registered with a decorator or lazy ``"module:attr"`` strings, so that
listing names imports nothing heavy. Lookups of unknown names suggest the closest ones.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from dparena.errors import ConfigError, UnknownNameError

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
                raise ValueError(f"{self.kind} {name!r} is already registered")
        if not isinstance(entry, str) and not issubclass(entry, self.base):
            raise TypeError(f"{entry.__name__} must subclass {self.base.__name__}")
        self._entries[name] = entry

    def get(self, name: str) -> type[T]:
        """The class registered as ``name``, importing it if it was registered lazily."""
        if name not in self._entries:
            close = difflib.get_close_matches(name, self._entries, n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            known = ", ".join(sorted(self._entries))
            raise UnknownNameError(f"unknown {self.kind} {name!r}{hint} (known: {known})")
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
        """Instantiate the entry ``name`` with ``params``; bad parameters give a ConfigError."""
        cls = self.get(name)
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
