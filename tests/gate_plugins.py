"""Test-only methods for the gate and lease tests, loaded through DPARENA_PLUGINS=tests.gate_plugins.

They are never registered outside tests.
"""

import os
import time

from dparena.datasets import datasets
from dparena.datasets.adult import SCHEMA, Adult
from dparena.datasets.schema import TableSchema
from dparena.methods import methods
from dparena.methods.baselines.marginals import IndependentMarginals


def _register(name, registry=methods):
    def deco(cls):
        if name not in registry:
            registry.register(name)(cls)
        return cls

    return deco


@_register("test-adult4", datasets)
class Adult4(Adult):
    """Real Adult rows with four of its columns, so that AIM / MST runs take seconds in tests."""

    COLUMNS = ("race", "sex", "relationship", "income")

    @property
    def schema(self) -> TableSchema:
        return TableSchema(tuple(c for c in SCHEMA.columns if c.name in self.COLUMNS),
                           target="income")

    def load(self, store):
        bundle = super().load(store)
        bundle.private = bundle.private[list(self.COLUMNS)]
        bundle.eval = bundle.eval[list(self.COLUMNS)]
        bundle.schema = self.schema
        return bundle


@_register("test-breaks")
class Breaks(IndependentMarginals):
    """Independent marginals until $DPARENA_TEST_BROKEN is set; then it raises (a method that
    starts crashing between two CI runs without a version change)."""

    def generate(self, task, ledger):
        if os.environ.get("DPARENA_TEST_BROKEN"):
            raise RuntimeError("deliberate regression")
        return super().generate(task, ledger)


@_register("test-count")
class Counts(IndependentMarginals):
    """Independent marginals that sleep, then append "<eps> <seed> <driver pid>" to the file
    $DPARENA_TEST_COUNT: one line per execution."""

    def __init__(self, seconds: float = 0.5, bins: int = 32):
        super().__init__(bins=bins)
        self.seconds = seconds

    def generate(self, task, ledger):
        time.sleep(self.seconds)
        out = super().generate(task, ledger)
        with open(os.environ["DPARENA_TEST_COUNT"], "a") as fh:
            fh.write(f"{task.budget.epsilon:g} {task.seed} {os.getppid()}\n")
        return out
