"""PE's resumable state on disk: one zip of JSON and plain ``.npy`` arrays, never a pickle.

The file (``pe-checkpoint.npz``; a zip, so ``np.load`` lists it too) holds

* ``state.json``, the first member: ``format``, ``version``, ``fingerprint``, ``iteration``, the
  RNG's bit-generator state (PCG64's 128-bit integers are plain JSON integers; array fields are
  tagged lists), the ledger entries and events so far, and per class how its population is stored;
* ``pop/<class>/<name>.npy``: the population arrays, written and read with ``allow_pickle=False``
  (an object array cannot be written, and one planted in a file is refused on reading).

A population is stored as one of three kinds (what the APIs return):

* ``array``: a numpy array (the diffusion APIs' images);
* ``texts``: a list of ``str`` (the LLM text API), kept in ``state.json``;
* ``arrays``: an API object with ``to_arrays() -> dict[str, ndarray]`` and a classmethod
  ``from_arrays(arrays)`` (e.g. DrawText's :class:`~dparena.methods.pe.apis.drawtext.DrawnImages`,
  which keeps render parameters). On loading, its class is looked up by name among modules that
  are *already imported* (the run's API imported it); nothing named in a file is ever imported.

Anything else raises :class:`Unsupported` before a byte is written (the engine then runs without a
checkpoint). :func:`read` parses ``state.json`` and checks format, version and fingerprint before
it reads a single array; a file that does not check out whole raises, and the engine starts over.
Writes go through :func:`dparena.io.write_atomic` (a temporary file in the same folder, mode 0600,
fsynced, then renamed): one file, so a reader sees the old state or the new one, never half of
each.
"""

from __future__ import annotations

import hmac
import json
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from dparena.io import write_atomic

FORMAT = "dparena-pe-checkpoint"
STATE = "state.json"


class Unsupported(TypeError):
    """A population type that cannot be stored without pickle."""


def write(path: Path, fields: dict[str, Any], populations: dict[int, Any]) -> None:
    """Write ``fields`` (JSON-safe apart from ``rng_state``) and ``populations`` to ``path``
    atomically. Raises :class:`Unsupported` (nothing written) for a population it cannot store."""
    arrays: dict[str, np.ndarray] = {}
    stored: dict[str, dict[str, Any]] = {}
    for c, pop in populations.items():
        spec, named = _encode(pop, f"pop/{int(c)}")
        stored[str(int(c))] = spec
        arrays.update(named)
    meta = {"format": FORMAT, **fields, "rng_state": _to_json(fields["rng_state"]),
            "populations": stored}
    text = json.dumps(meta, default=_scalar).encode()  # ASCII: lone surrogates survive too
    path.parent.mkdir(parents=True, exist_ok=True)

    def fill(tmp: Path) -> None:
        with open(tmp, "wb") as fh, zipfile.ZipFile(fh, "w", zipfile.ZIP_STORED) as zf:
            zf.writestr(STATE, text)
            for name, arr in arrays.items():
                with zf.open(name, "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, arr, allow_pickle=False)

    write_atomic(path, fill, fsync=True, mode=0o600)  # private scratch: owner-only, durable


def read(path: Path, version: int, fingerprint: str) -> dict[str, Any] | None:
    """The stored fields with decoded ``populations`` and ``rng_state``; None when the file is a
    well-formed checkpoint of another version or other inputs. Raises on anything torn or odd."""
    with zipfile.ZipFile(path) as zf:
        meta = json.loads(zf.read(STATE))
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise ValueError("not a PE checkpoint")
        stored = meta.get("fingerprint")
        if (meta.get("version") != version or not isinstance(stored, str)
                or not hmac.compare_digest(stored.encode(), fingerprint.encode())):
            return None
        pops = {}
        for c, spec in meta.pop("populations").items():
            pops[int(c)] = _decode(spec, zf)
    meta.pop("format")
    meta["rng_state"] = _from_json(meta["rng_state"])
    meta["populations"] = pops
    return meta


# -- populations ---------------------------------------------------------------------------------

def _plain_array(arr: Any, what: str) -> np.ndarray:
    if not isinstance(arr, np.ndarray) or arr.dtype.hasobject:
        raise Unsupported(f"{what} is not a numpy array of plain values")
    return arr


def _encode(pop: Any, prefix: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    if isinstance(pop, np.ndarray):
        return ({"kind": "array", "n": len(pop), "name": f"{prefix}/array.npy"},
                {f"{prefix}/array.npy": _plain_array(pop, "an array population")})
    if isinstance(pop, list):
        if not all(isinstance(t, str) for t in pop):
            raise Unsupported("a list population holding something other than str")
        return {"kind": "texts", "n": len(pop), "texts": [str(t) for t in pop]}, {}
    cls = type(pop)
    if not callable(getattr(pop, "to_arrays", None)) or not callable(
            getattr(cls, "from_arrays", None)):
        raise Unsupported(f"{cls.__module__}.{cls.__qualname__} has no to_arrays/from_arrays")
    parts = pop.to_arrays()
    names = {}
    for key, arr in parts.items():
        if not isinstance(key, str) or not key.isidentifier():
            raise Unsupported(f"{cls.__qualname__}.to_arrays() key {key!r} is not an identifier")
        names[key] = f"{prefix}/{key}.npy"
        _plain_array(arr, f"{cls.__qualname__}.to_arrays()[{key!r}]")
    return ({"kind": "arrays", "n": len(pop), "type": f"{cls.__module__}:{cls.__qualname__}",
             "arrays": names},
            {names[k]: arr for k, arr in parts.items()})


def _load_array(zf: zipfile.ZipFile, name: str) -> np.ndarray:
    with zf.open(name) as fh:
        return np.lib.format.read_array(fh, allow_pickle=False)


def _decode(spec: dict[str, Any], zf: zipfile.ZipFile) -> Any:
    kind = spec["kind"]
    if kind == "array":
        pop = _load_array(zf, spec["name"])
    elif kind == "texts":
        pop = list(spec["texts"])
        if not all(isinstance(t, str) for t in pop):
            raise ValueError("texts hold something other than str")
    elif kind == "arrays":
        cls = _loaded_class(spec["type"])
        pop = cls.from_arrays({k: _load_array(zf, v) for k, v in spec["arrays"].items()})
        if type(pop) is not cls:
            raise ValueError(f"{spec['type']}.from_arrays returned a {type(pop).__qualname__}")
    else:
        raise ValueError(f"unknown population kind {kind!r}")
    if len(pop) != spec["n"]:
        raise ValueError(f"a population of {len(pop)} samples, {spec['n']} expected")
    return pop


def _loaded_class(name: str) -> type:
    """The class ``module:qualname`` from an already imported module (never imports one)."""
    module_name, _, qualname = str(name).partition(":")
    obj: Any = sys.modules.get(module_name)
    if obj is None:
        raise ValueError(f"module {module_name!r} of a stored population is not loaded")
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
    if not isinstance(obj, type) or not callable(getattr(obj, "from_arrays", None)):
        raise ValueError(f"{name!r} is not a population class with from_arrays")
    return obj


# -- the RNG state (dicts of ints and strings; some bit generators hold arrays) ----------------

def _to_json(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _to_json(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return {"__ndarray__": value.dtype.str, "shape": list(value.shape),
                "data": value.ravel().tolist()}
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, list | tuple):
        return [_to_json(v) for v in value]
    return value


def _scalar(value: Any) -> Any:
    """numpy scalars in ledger parameters or events, as plain numbers."""
    if isinstance(value, np.generic):
        return value.item()
    raise Unsupported(f"{type(value).__qualname__} in the state is not JSON serializable")


def _from_json(value: Any) -> Any:
    if isinstance(value, dict):
        if "__ndarray__" in value:
            return np.array(value["data"], dtype=np.dtype(value["__ndarray__"])).reshape(
                value["shape"])
        return {k: _from_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_json(v) for v in value]
    return value
