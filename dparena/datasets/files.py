"""Shared pieces of the bring-your-own-data loaders (``csv``, ``image-folder``, ``text-file``).

Paths in a suite are read relative to the folder dparena runs in. A user dataset's ``version`` (part
of every run's identity) hashes its public schema file and the user's ``revision`` parameter, never
anything about the data files (see :func:`files_version`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, ClassVar

from dparena.errors import ConfigError, SchemaError
from dparena.io import read_parquet


def path_param(value: Any, key: str, dataset: str) -> Path:
    """A non-empty path string from a suite's dataset_params (a ConfigError otherwise)."""
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{dataset}: {key} must be a file or folder path (a non-empty string), "
                          f"got {value!r}")
    return Path(value).expanduser()


def optional_size(value: Any, dataset: str) -> int | None:
    """The declared public size N of the private split: None or an integer >= 2."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 2):
        raise ConfigError(f"{dataset}: size must be an integer >= 2, the number of records of the "
                          f"private split (got {value!r})")
    return value


def no_size_error(dataset: str, where: str) -> ConfigError:
    return ConfigError(
        f"{dataset}: no public size N of the private split; declare size = N {where} (the number "
        f"of records in the private file, public under dparena's add/remove-one neighbouring "
        f"relation) or give n_private in dataset_params"
    )


def check_count(n: int, size: int | None, n_private: int | None, what: str) -> None:
    """The private split holds the declared ``size`` (or at least ``n_private``) records."""
    if size is not None and n != size:
        raise SchemaError(f"{what} holds {n} records, but size = {size} is declared; declare the "
                          f"number of records the file holds")
    if size is None and n_private is not None and n < n_private:
        raise SchemaError(f"{what} holds {n} records, fewer than n_private = {n_private}; lower "
                          f"n_private")


def require_file(path: Path, role: str, dataset: str, hint: str = "") -> Path:
    """``path`` if it is an existing file, else a one-line error naming it and what to do."""
    if path.is_dir():
        raise ConfigError(f"{dataset}: the {role} file {path} is a folder; give a file")
    if not path.is_file():
        raise ConfigError(f"{dataset}: the {role} file {path} does not exist; "
                          f"{hint or _RELATIVE}")
    return path


def require_folder(path: Path, role: str, dataset: str) -> Path:
    if path.is_file():
        raise ConfigError(f"{dataset}: the {role} folder {path} is a file; give a folder with one "
                          f"sub-folder per class")
    if not path.is_dir():
        raise ConfigError(f"{dataset}: the {role} folder {path} does not exist; {_RELATIVE}")
    return path


_RELATIVE = "check the path (relative paths are read from the folder you run dparena in)"


def files_version(base: str, public: Iterable[Path], revision: str = "") -> str:
    """``base`` + a short hash of the public files' bytes (the schema file) and the user's
    ``revision``. Nothing about the data files enters it, not even their sizes or times: the
    version is published with every run, and a hash of a private file's metadata would be a
    release no mechanism accounts for. Replacing a data file in place therefore keeps the runs'
    identity; the user says so with a new ``revision`` (or a new path)."""
    digest = hashlib.sha256()
    for path in public:
        digest.update(b"public\0")
        digest.update(path.read_bytes() if path.is_file() else b"missing")
    digest.update(b"revision\0" + revision.encode())
    return f"{base}+{digest.hexdigest()[:12]}"


def revision_param(revision, dataset: str) -> str:
    """The user's ``revision`` dataset parameter (a string or an integer) as a string."""
    if not isinstance(revision, str | int) or isinstance(revision, bool):
        raise ConfigError(f"{dataset}: revision must be a string or an integer, got {revision!r}")
    return str(revision)


def table_format(path: Path, fmt: str | None, dataset: str, allowed: dict[str, tuple[str, ...]]
                 ) -> str:
    """The format of ``path``: ``fmt`` when given (one of ``allowed``), else from its extension."""
    if fmt is not None:
        if fmt not in allowed:
            raise ConfigError(f"{dataset}: format must be one of {sorted(allowed)}, got {fmt!r}")
        return fmt
    for name, suffixes in allowed.items():
        if path.suffix.lower() in suffixes:
            return name
    raise ConfigError(f"{dataset}: cannot tell the format of {path} from its extension; name it "
                      f"{' or '.join(s for v in allowed.values() for s in v[:1])}, or set format "
                      f"= {' or '.join(repr(k) for k in allowed)} in dataset_params")


def text_list(value: Any, key: str, dataset: str, allow_empty: bool = False) -> tuple[str, ...]:
    """A list of distinct non-empty strings (class or label names, subtopics)."""
    if (not isinstance(value, list | tuple) or (not value and not allow_empty)
            or not all(isinstance(v, str) and v.strip() for v in value)):
        raise ConfigError(f"{dataset}: {key} must be a list of non-empty strings, got {value!r}")
    twice = sorted({v for v in value if list(value).count(v) > 1})
    if twice:
        raise ConfigError(f"{dataset}: {key} lists {twice} more than once")
    return tuple(value)


def read_frame(path: Path, kind: str, empty_hint: str, **csv_options: Any):
    """A parquet file, or a CSV file with every cell as text, as a pandas frame; a file that is
    empty (``empty_hint`` says what it needs) or unreadable is a one-line SchemaError."""
    import pandas as pd

    try:
        if kind == "parquet":
            return read_parquet(path)
        return pd.read_csv(path, dtype=str, keep_default_na=False, **csv_options)
    except pd.errors.EmptyDataError:
        raise SchemaError(f"{path}: the file is empty; {empty_hint}") from None
    except (ValueError, OSError, UnicodeError, pd.errors.ParserError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SchemaError(f"{path}: could not read it as {kind} ({reason})") from None


def jsonl_objects(path: Path, keys: Sequence[str]) -> list[tuple[int, dict]]:
    """(line number, object) of each non-blank line of a UTF-8 JSON-lines file; a file that cannot
    be read, a line that is not JSON or an object without one of ``keys`` is a one-line
    SchemaError naming the line."""
    try:
        with open(path, encoding="utf-8-sig") as fh:
            lines = list(fh)
    except (OSError, UnicodeError) as exc:
        raise SchemaError(f"{path}: could not read it as UTF-8 JSON lines ({exc})") from None
    out = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise SchemaError(f"{path} line {number}: not JSON ({exc.msg})") from None
        missing = [k for k in keys if not isinstance(item, dict) or k not in item]
        if missing:
            raise SchemaError(f"{path} line {number}: expected an object with keys {list(keys)}, "
                              f"missing {missing}")
        out.append((number, item))
    return out


class UserFiles:
    """What the user's image folder and text file datasets share (mixed in before their dataset
    base class): the schema declared in the suite, a version from ``revision`` alone, N declared
    as ``size`` or ``n_private``, and a load that reads both splits with ``read_split``, checks the
    private count against N and cuts the subsamples."""

    #: the word for one split's source in messages ("folder", "file")
    split_kind: ClassVar[str] = "file"

    @property
    def schema(self):
        return self._schema

    @property
    def version(self) -> str:  # type: ignore[override]
        return files_version("1", [], self.revision)

    def private_size(self, store) -> int:
        if self.size is None and self.n_private is None:
            raise no_size_error(self.name, "in dataset_params")
        return super().private_size(store)

    def load(self, store):
        private, private_labels = self.read_split(self.private_path, "private")
        check_count(len(private), self.size, self.n_private,
                    f"the private {self.split_kind} {self.private_path}")
        evaluation, eval_labels = self.read_split(self.eval_path, "eval")
        return self.subsampled_bundle(private, private_labels, evaluation, eval_labels)

    def check(self, store) -> None:
        self.load(store)
