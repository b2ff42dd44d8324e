"""Generator APIs for Private Evolution, by name, one module per kind.

An image API class is built as ``cls(schema=ImageSchema, **api_params)`` and implements
:class:`dparena.methods.pe.api.API`; Aug-PE's text API lives in :mod:`.text`. Entries are
``"module:Class"`` strings, imported on use.
"""

from __future__ import annotations

import importlib
from typing import Any

from dparena.errors import ConfigError

IMAGE_APIS: dict[str, str] = {
    "drawtext": "dparena.methods.pe.apis.drawtext:DrawText",
    "diffusion": "dparena.methods.pe.apis.diffusion:DiffusionAPI",
    "stable-diffusion": "dparena.methods.pe.apis.diffusion:StableDiffusionAPI",
}
TEXT_APIS: dict[str, str] = {
    "llm-text": "dparena.methods.pe.apis.text:LLMTextAPI",
}


def make_api(name: str, schema: Any, params: dict[str, Any] | None = None):
    """Build the API ``name`` for a dataset's public ``schema`` (image or text)."""
    table = TEXT_APIS if getattr(schema, "kind", "") == "text" else IMAGE_APIS
    if name not in table:
        raise ConfigError(f"unknown PE {getattr(schema, 'kind', 'image')} api {name!r}; use one "
                          f"of {sorted(table)}")
    module, _, attr = table[name].partition(":")
    cls = getattr(importlib.import_module(module), attr)
    try:
        return cls(schema=schema, **(params or {}))
    except TypeError as exc:
        raise ConfigError(f"bad api_params for PE api {name!r}: {exc}") from None

