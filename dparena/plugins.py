"""Third-party registrations: modules named in $DPARENA_PLUGINS (comma-separated) or exposed under
the ``dparena.plugins`` entry-point group are imported once, so their ``@methods.register(...)``
(or datasets/metrics) decorators run before a suite is read.
"""

from __future__ import annotations

import functools
import importlib
import os
from importlib import metadata

from dparena.errors import ConfigError


@functools.cache
def load_plugins() -> tuple[str, ...]:
    loaded = []
    for name in filter(None, (m.strip() for m in os.environ.get("DPARENA_PLUGINS", "").split(","))):
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise ConfigError(f"DPARENA_PLUGINS names {name!r}, which cannot be imported ({exc})") from exc
        loaded.append(name)
    for ep in metadata.entry_points(group="dparena.plugins"):
        ep.load()
        loaded.append(ep.value)
    return tuple(loaded)
