import inspect
import os
import subprocess
import sys

import pytest

from dparena.datasets import datasets
from dparena.errors import ConfigError, UnknownNameError
from dparena.methods import methods
from dparena.methods.base import Method
from dparena.metrics import metrics
from dparena.registry import Registry, static_attributes
from tests.paths import ROOT


class Base:
    pass


def test_register_get_and_duplicates():
    reg: Registry = Registry("widget", Base)

    @reg.register("alpha")
    class Alpha(Base):
        pass

    assert reg.get("alpha") is Alpha and Alpha.name == "alpha"
    with pytest.raises(ValueError, match="already registered"):
        reg.register("alpha")(type("Other", (Base,), {}))
    with pytest.raises(TypeError, match="must subclass"):
        reg.register("beta")(type("NotBase", (), {}))


def test_unknown_name_suggests_close_matches():
    with pytest.raises(UnknownNameError) as err:
        methods.get("independent-marginal")
    assert "did you mean 'independent-marginals'" in str(err.value)
    with pytest.raises(UnknownNameError, match="unknown dataset 'adlt'.*'adult'"):
        datasets.get("adlt")


def test_lazy_entry_imports_on_first_get():
    reg: Registry = Registry("method", Method)
    reg.register_lazy("unif", "dparena.methods.baselines.references:UniformSchema")
    assert reg.info("unif", ("modality",)) == {"modality": "tabular"}  # read from the source
    cls = reg.get("unif")
    assert cls.__name__ == "UniformSchema"


def test_bad_params_are_config_errors():
    with pytest.raises(ConfigError, match="bad parameters for method 'uniform'"):
        methods.create("uniform", nonsense=1)


@pytest.mark.parametrize("registry", [datasets, methods, metrics], ids=["datasets", "methods", "metrics"])
def test_the_source_reader_sees_what_the_import_gives(registry):
    """`dparena list` reads each lazy entry's class attributes from its source, without importing
    it; for every built-in entry that reading must be what the imported class says."""
    fields = ("modality", "description", "extra", "doc")
    names = [n for n in registry.names() if registry.path(n).startswith("dparena.")]
    assert len(names) >= 5  # the built-in entries (test modules register test-only ones too)
    for name in names:
        static = static_attributes(registry.path(name), fields)
        cls = registry.get(name)
        mods = cls.modality if isinstance(cls.modality, tuple) else (cls.modality,)
        assert static["modality"] == ",".join(m.value for m in mods), name
        assert static["description"] == cls.description and static["description"], name
        assert static["extra"] == (cls.extra or ""), name
        assert static["doc"] == inspect.cleandoc(cls.__dict__.get("__doc__") or ""), name


def test_only_published_datasets_say_their_records_are_public():
    """``public_data`` decides whether a leaderboard may show the ``real`` reference's samples:
    True for the published sets dparena ships, False for the user's own files; the source reader
    and the import agree."""
    public = {name for name in datasets.names() if datasets.path(name).startswith("dparena.")
              and datasets.get(name).public_data}
    assert public == {"adult", "mnist", "digits", "cifar10", "rotten-tomatoes", "news", "yelp",
                      "pubmed"}
    for name in ("csv", "image-folder", "text-file"):
        assert datasets.get(name).public_data is False, name
    for name in datasets.names():
        if datasets.path(name).startswith("dparena."):
            static = static_attributes(datasets.path(name), ("public_data",))["public_data"]
            assert static == ("True" if name in public else ""), name


LEAF = '''import torch_that_is_not_installed
from ..base import Root as R


class Mid(R):
    description = "inherited"


class Leaf(Mid):
    """Own doc."""
    extra = ""


class Odd(Mid):
    description = "a" + "b"
'''


def test_the_source_reader_follows_bases_across_modules(tmp_path, monkeypatch):
    pkg = tmp_path / "srcpkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("raise RuntimeError('never imported')\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "base.py").write_text(
        "from dparena.types import Modality\n"
        "class Root:\n    extra = 'image'\n    modality = (Modality.IMAGE, Modality.TEXT)\n")
    (pkg / "sub" / "leaf.py").write_text(LEAF)
    monkeypatch.syspath_prepend(str(tmp_path))
    got = static_attributes("srcpkg.sub.leaf:Leaf",
                            ("modality", "description", "extra", "doc", "version"))
    assert got == {"modality": "image,text", "description": "inherited", "extra": "",
                   "doc": "Own doc.", "version": ""}
    with pytest.raises(ValueError, match=r"cannot read 'description'.*'a' \+ 'b'"):
        static_attributes("srcpkg.sub.leaf:Odd", ("description",))
    with pytest.raises(ValueError, match="defines no class 'Gone'"):
        static_attributes("srcpkg.sub.leaf:Gone", ("description",))


def _python(*args):
    env = {k: v for k, v in os.environ.items() if k != "DPARENA_PLUGINS"}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, check=True,
                          cwd=ROOT, env={**env, "PYTHONPATH": str(ROOT)}, timeout=300)


def test_listing_imports_nothing_heavy():
    out = _python("-c", "import sys; from dparena import listing\n"
                        "for k in listing.KINDS: listing.rows(k, doc=True)\n"
                        "listing.markdown()\n"
                        "heavy = {'torch', 'transformers', 'opacus', 'sklearn', 'pandas', "
                        "'sdmetrics', 'opendp'}\n"
                        "print(sorted(heavy & set(sys.modules)))")
    assert out.stdout.strip() == "[]", out.stdout


def test_the_committed_catalogue_is_what_dparena_list_prints():
    """docs/catalogue.md is generated (`make catalogue`): regenerate it when a class changes."""
    printed = _python("-m", "dparena", "list", "--format", "md").stdout
    committed = (ROOT / "docs" / "catalogue.md").read_text(encoding="utf-8")
    assert printed == committed, "docs/catalogue.md is stale: run `make catalogue`"
    for registry in (datasets, methods, metrics):
        for name in registry.names():
            if registry.path(name).startswith("dparena."):
                assert f"### `{name}`" in committed, name
