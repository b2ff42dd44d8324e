"""Sample containers the engine moves around without looking inside.

An API may return a plain array (images ``[n, H, W, C]``), a list (texts), or an object that
carries more than the payload (e.g. a simulator's parameters next to its renders). Such an object
implements ``__len__``, ``take(indices)``, ``concat(parts)`` (a classmethod) and ``payload()`` (what
embedders and the final ``Synthetic.data`` get).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def take(samples: Any, idx: np.ndarray) -> Any:
    """The samples at ``idx`` (repeats allowed), in that order."""
    if isinstance(samples, np.ndarray):
        return samples[idx]
    if isinstance(samples, list):
        return [samples[int(i)] for i in idx]
    return samples.take(np.asarray(idx, dtype=np.int64))


def concat(parts: Sequence[Any]) -> Any:
    """One container holding ``parts`` one after the other (all of the same kind)."""
    parts = [p for p in parts if len(p)] or list(parts[:1])
    if not parts:
        raise ValueError("nothing to concatenate")
    first = parts[0]
    if isinstance(first, np.ndarray):
        return np.concatenate(parts, axis=0)
    if isinstance(first, list):
        return [x for p in parts for x in p]
    return type(first).concat(parts)


def payload(samples: Any) -> Any:
    """What embedders and ``Synthetic.data`` see (the array or list itself, or ``.payload()``)."""
    if isinstance(samples, np.ndarray | list):
        return samples
    return samples.payload()
