"""The import contract (tools/check_layers.py): the tree keeps it, and the checker catches what it
forbids — upward imports at any depth or through a string, imports between independent
families, import cycles, and modules no layer names."""

import importlib.util
import sys
import textwrap
from pathlib import Path

from tests.paths import ROOT


def _checker():
    spec = importlib.util.spec_from_file_location("check_layers", ROOT / "tools" / "check_layers.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while building the class
    spec.loader.exec_module(module)
    return module


check_layers = _checker()


def test_the_tree_keeps_the_layer_rule():
    violations, read = check_layers.check(ROOT)
    assert [str(v) for v in violations] == []
    assert len(read) > 300  # the walk really read the package


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


def test_the_checker_lists_each_planted_violation_as_file_line_target(tmp_path, capsys):
    _write(tmp_path, {
        "dparena/__init__.py": "",
        "dparena/types.py": "",
        "dparena/harness/__init__.py": "",
        "dparena/harness/runner.py": "from dparena.methods.pe import x  # downward: allowed\n",
        "dparena/methods/__init__.py": """\
            from dparena.registry import Registry
            methods = Registry("method", "dparena.methods.base:Method")
            methods.register_lazy("x", "dparena.methods.pe.x:X")  # the registry names families
            """,
        "dparena/methods/base.py": "from dparena import types\n",
        "dparena/methods/pe/__init__.py": "",
        "dparena/methods/pe/x.py": """\
            from dparena.methods.base import types  # the families' common module: allowed

            def f():
                from dparena.methods.dp2stage.y import thing  # line 4: family -> family
            """,
        "dparena/methods/dp2stage/__init__.py": "",
        "dparena/methods/dp2stage/y.py": "thing = 1\n",
        "dparena/metrics/__init__.py": "",
        "dparena/metrics/m.py": "import dparena.methods.pe.x  # line 1: metrics -> methods\n",
        "dparena/registry.py": "class Registry: ...\n",
        "dparena/privacy/__init__.py": "",
        "dparena/privacy/bad.py": '''\
            """Mentions dparena.harness.runner in prose, which is no import."""
            import importlib
            from typing import TYPE_CHECKING

            if TYPE_CHECKING:
                from dparena.metrics import m  # line 6: upward, type-only still counts


            def run():
                from dparena.methods import base  # line 10: upward inside a function
                return importlib.import_module("dparena.harness.runner")  # line 11: a string
            ''',
        "dparena/privacy/rel.py": "from ..harness import runner  # line 1: relative, upward\n",
        "dparena/llm/__init__.py": "",
        "dparena/llm/a.py": "def f():\n    from dparena.llm import b  # line 2: a cycle\n",
        "dparena/llm/b.py": "from dparena.llm.a import f  # line 1: a cycle\n",
        "dparena/newpkg/__init__.py": "",
    })
    violations, _ = check_layers.check(tmp_path)
    found = {(v.path, v.line, v.target) for v in violations}
    assert found == {
        ("dparena/methods/pe/x.py", 4, "dparena.methods.dp2stage.y"),
        ("dparena/metrics/m.py", 1, "dparena.methods.pe.x"),
        ("dparena/privacy/bad.py", 6, "dparena.metrics.m"),
        ("dparena/privacy/bad.py", 10, "dparena.methods.base"),
        ("dparena/privacy/bad.py", 11, "dparena.harness.runner"),
        ("dparena/privacy/rel.py", 1, "dparena.harness.runner"),
        ("dparena/llm/a.py", 2, "dparena.llm.b"),
        ("dparena/llm/b.py", 1, "dparena.llm.a"),
        ("dparena/newpkg/__init__.py", 1, "dparena.newpkg"),
    }
    by_place = {(v.path, v.line): str(v) for v in violations}
    assert by_place[("dparena/privacy/bad.py", 10)].startswith(
        "dparena/privacy/bad.py:10 → dparena.methods.base  (building blocks imports methods")
    assert "independent" in by_place[("dparena/methods/pe/x.py", 4)]
    assert "import cycle" in by_place[("dparena/llm/b.py", 1)]
    assert "no layer" in by_place[("dparena/newpkg/__init__.py", 1)]

    assert check_layers.main([str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "dparena/privacy/bad.py:11 → dparena.harness.runner" in out
    assert "9 violation(s)" in out
