import pytest

from dparena.datasets import datasets
from dparena.errors import ConfigError, UnknownNameError
from dparena.methods import methods
from dparena.methods.base import Method
from dparena.metrics import metrics
from dparena.registry import Registry


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
    reg.register_lazy("unif", "dparena.methods.baselines.references:UniformSchema",
                      modality="tabular")
    assert reg.info("unif", ("modality",)) == {"modality": "tabular"}
    cls = reg.get("unif")
    assert cls.__name__ == "UniformSchema"


def test_bad_params_are_config_errors():
    with pytest.raises(ConfigError, match="bad parameters for method 'uniform'"):
        methods.create("uniform", nonsense=1)


@pytest.mark.parametrize("registry", [datasets, methods, metrics], ids=["datasets", "methods", "metrics"])
def test_lazy_metadata_matches_the_classes(registry):
    """`dparena list` describes entries without importing them; the description must not drift."""
    fields = ("modality", "description", "extra")
    for name in registry.names():
        lazy = registry.info(name, fields)
        cls = registry.get(name)
        modality = cls.modality
        mods = modality if isinstance(modality, tuple) else (modality,)
        assert lazy["modality"] == ",".join(m.value for m in mods), name
        assert lazy["description"] == cls.description, name
        assert lazy["extra"] == (cls.extra or ""), name
