"""Third-party registrations: modules named in $DPARENA_PLUGINS (comma-separated) or exposed under
the ``dparena.plugins`` entry-point group are imported once, so their ``@methods.register(...)``
(or datasets/metrics) decorators run before a suite is read.
"""

from __future__ import annotations

import functools
import importlib
import os
from importlib import metadata

from dparena.errors import ConfigError, DparenaError


@functools.cache
def load_plugins() -> tuple[str, ...]:
    """Import every plugin; one that fails (an import error, an exception or a name clash while
    registering) is a one-line ConfigError naming the module and what to do."""
    loaded = []
    for name in filter(None, (m.strip() for m in os.environ.get("DPARENA_PLUGINS", "").split(","))):
        try:
            importlib.import_module(name)
        except ImportError as exc:
            if exc.name == name:
                raise ConfigError(f"DPARENA_PLUGINS names {name!r}, which cannot be imported "
                                  f"({exc}); fix the name or its PYTHONPATH") from exc
            raise _failed(f"plugin {name!r}", exc, "fix it or remove it from DPARENA_PLUGINS") from exc
        except Exception as exc:  # noqa: BLE001 - a plugin's own bug: say whose, in one line
            raise _failed(f"plugin {name!r}", exc, "fix it or remove it from DPARENA_PLUGINS") from exc
        loaded.append(name)
    for ep in metadata.entry_points(group="dparena.plugins"):
        dist = getattr(getattr(ep, "dist", None), "name", None)
        try:
            ep.load()
        except Exception as exc:  # noqa: BLE001
            raise _failed(f"plugin {ep.value!r} (entry point {ep.name!r}"
                          + (f" of the installed package {dist!r})" if dist else ")"),
                          exc, "fix it or uninstall that package") from exc
        loaded.append(ep.value)
    return tuple(loaded)


def _failed(who: str, exc: BaseException, todo: str) -> ConfigError:
    if isinstance(exc, DparenaError):  # already a sentence saying what to fix
        return ConfigError(f"{who}: {str(exc).splitlines()[0]}")
    text = str(exc).strip().splitlines()
    detail = f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
    return ConfigError(f"{who} failed to import: {detail}; {todo}")
