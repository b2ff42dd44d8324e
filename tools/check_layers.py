"""The import contract: dparena's imports point one way, down the layers of :data:`LAYERS`.

    entry points → harness / leaderboard → methods / metrics → building blocks → types / errors

Every module's syntax tree is walked: ``import`` and ``from … import`` statements wherever they
stand (module level, inside a function, under ``if TYPE_CHECKING``), and every string constant that
names a dparena module — ``importlib.import_module("dparena.x")``, a registry's lazy
``"dparena.x.y:Class"`` entry, a table of such strings (docstrings are prose and are skipped).
Three rules:

* no module imports or names a module of a higher layer;
* the members of an ``independent`` group (metrics and methods; the method families) do not import
  or name each other: what two of them share belongs to a lower layer (a building block), or to the
  layer's common modules outside every member (``dparena/methods/base.py``);
* no import statements form a cycle (strings do not count: a registry naming its entries is how a
  higher layer finds them, not an import cycle).

A module that no layer names is a violation too, so a new package is placed before it is used.
Each violation is printed as ``file:line → target (why)``.

Usage: ``python tools/check_layers.py [ROOT]`` (ROOT holds the ``dparena`` package; default: this
repository). Exit status 1 when there is a violation. ``make lint`` runs it.
"""

from __future__ import annotations

import ast
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Layer:
    """A layer: the modules (and their sub-modules) it holds, and groups of its sub-packages that
    must not import each other."""

    name: str
    modules: tuple[str, ...]
    independent: tuple[tuple[str, ...], ...] = ()


#: top layer first; a module belongs to the layer of the longest entry that names it (an entry
#: names its sub-modules too, except the root package itself, which names only ``__init__``)
LAYERS: tuple[Layer, ...] = (
    Layer("entry points", ("dparena.cli", "dparena.__main__", "dparena.pytest_plugin")),
    Layer("harness / leaderboard", ("dparena.harness", "dparena.leaderboard", "dparena.listing")),
    Layer("methods / metrics", ("dparena.methods", "dparena.metrics"), independent=(
        ("dparena.methods", "dparena.metrics"),
        ("dparena.methods.pe", "dparena.methods.dp2stage", "dparena.methods.baselines"),
    )),
    Layer("building blocks", ("dparena.privacy", "dparena.datasets", "dparena.embeddings",
                              "dparena.lm", "dparena.llm", "dparena.assets", "dparena.io",
                              "dparena.registry", "dparena.plugins", "dparena.torch_utils")),
    Layer("types / errors", ("dparena.types", "dparena.errors", "dparena")),
)

_MODULE_STRING = re.compile(r"(?P<module>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)(?::[\w.]+)?")


@dataclass(frozen=True)
class Violation:
    path: str
    line: int
    target: str
    why: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line} → {self.target}  ({self.why})"


@dataclass(frozen=True)
class Edge:
    """One reference from a module to another: an import statement, or a string naming it."""

    path: str
    line: int
    source: str
    target: str
    statement: bool


def _inside(module: str, prefix: str) -> bool:
    return module == prefix or ("." in prefix and module.startswith(prefix + "."))


def layer_of(module: str, layers: Sequence[Layer] = LAYERS) -> int | None:
    """Index of the layer holding ``module`` (0 = top), or None when no layer names it."""
    best, best_len = None, -1
    for index, layer in enumerate(layers):
        for prefix in layer.modules:
            if _inside(module, prefix) and len(prefix) > best_len:
                best, best_len = index, len(prefix)
    return best


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve(name: str, modules: set[str]) -> str | None:
    """The module ``name`` refers to: itself, or its longest prefix that is a module."""
    while name not in modules and "." in name:
        name = name.rsplit(".", 1)[0]
    return name if name in modules else None


def edges(path: Path, root: Path, modules: set[str], package: str) -> list[Edge]:
    """Every reference from the module at ``path`` to another module of ``package``."""
    source = module_name(path, root)
    rel = path.relative_to(root).as_posix()
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef
                                | ast.AsyncFunctionDef)
                  and node.body and isinstance(node.body[0], ast.Expr)
                  and isinstance(node.body[0].value, ast.Constant)}
    found: list[tuple[int, str, bool]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name, True) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against the importer's package
                here = source.split(".") if path.name == "__init__.py" else source.split(".")[:-1]
                here = here[: len(here) - (node.level - 1)]
                base = ".".join([*here, base] if base else here)
            for alias in node.names:  # ``from pkg import sub`` imports the sub-module pkg.sub
                sub = f"{base}.{alias.name}"
                found.append((node.lineno, sub if sub in modules else base, True))
        elif (isinstance(node, ast.Constant) and isinstance(node.value, str)
              and id(node) not in docstrings):
            match = _MODULE_STRING.fullmatch(node.value)
            if match and match["module"].split(".")[0] == package:
                found.append((node.lineno, match["module"], False))
    out, seen = [], set()
    for line, name, statement in found:
        target = _resolve(name, modules) if name.split(".")[0] == package else None
        if target is None or target == source or (line, target) in seen:
            continue
        seen.add((line, target))
        out.append(Edge(rel, line, source, target, statement))
    return out


def _member(module: str, group: Iterable[str]) -> str | None:
    inside = [m for m in group if _inside(module, m)]
    return max(inside, key=len) if inside else None


def _cycles(all_edges: list[Edge]) -> list[set[str]]:
    """Strongly connected components (of more than one module) of the import statements."""
    graph: dict[str, set[str]] = {}
    for e in all_edges:
        if e.statement:
            graph.setdefault(e.source, set()).add(e.target)
            graph.setdefault(e.target, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []

    def visit(v: str) -> None:  # Tarjan; the package graph is small enough for recursion
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(component)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def check(root: Path, package: str = "dparena",
          layers: Sequence[Layer] = LAYERS) -> tuple[list[Violation], list[Edge]]:
    """The violations under ``root / package`` and every reference that was read."""
    files = sorted((root / package).rglob("*.py"))
    modules = {module_name(f, root) for f in files}
    all_edges = [e for f in files for e in edges(f, root, modules, package)]
    out: list[Violation] = []
    for f in files:
        if layer_of(module_name(f, root), layers) is None:
            out.append(Violation(f.relative_to(root).as_posix(), 1, module_name(f, root),
                                 "module is in no layer; add it to tools/check_layers.py LAYERS"))
    for e in all_edges:
        own, theirs = layer_of(e.source, layers), layer_of(e.target, layers)
        if own is None or theirs is None:
            continue
        how = "imports" if e.statement else "names"
        if theirs < own:
            out.append(Violation(e.path, e.line, e.target, f"{layers[own].name} {how} "
                                 f"{layers[theirs].name}, a higher layer"))
            continue
        if theirs != own:
            continue
        for group in layers[own].independent:
            a, b = _member(e.source, group), _member(e.target, group)
            if a and b and a != b:
                out.append(Violation(e.path, e.line, e.target, f"{a} {how} {b}: they are "
                                     "independent; share code through a lower layer"))
    for component in _cycles(all_edges):
        names = ", ".join(sorted(component))
        out += [Violation(e.path, e.line, e.target, f"import cycle between {names}")
                for e in all_edges
                if e.statement and e.source in component and e.target in component]
    out.sort(key=lambda v: (v.path, v.line, v.target))
    return out, all_edges


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    root = Path(args[0]) if args else Path(__file__).resolve().parent.parent
    violations, read = check(root)
    for v in violations:
        print(v)
    verdict = f"{len(violations)} violation(s)" if violations else "no violations"
    print(f"import layers: {len(read)} references between dparena modules read, {verdict}")
    return 1 if violations else 0


if __name__ == "__main__":
    raise SystemExit(main())
