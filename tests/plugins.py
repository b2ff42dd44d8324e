"""Test-only methods, loaded through DPARENA_PLUGINS=tests.plugins (or imported by tests).

They exist to exercise the harness's failure paths; they are never registered outside tests.
"""

import os
import time

import numpy as np

from dparena.methods import methods
from dparena.methods.base import Method
from dparena.methods.baselines.marginals import IndependentMarginals
from dparena.types import Modality, Synthetic


def _register(name):
    def deco(cls):
        if name not in methods:
            methods.register(name)(cls)
        return cls

    return deco


@_register("test-overspend")
class Overspend(IndependentMarginals):
    """Marginals that calibrate noise for twice the budget's ε: must be marked INVALID."""

    def generate(self, task, ledger):
        from dataclasses import replace

        task.budget = replace(task.budget, epsilon=task.budget.epsilon * 2)
        return super().generate(task, ledger)


@_register("test-noiseless")
class Noiseless(IndependentMarginals):
    """Marginals with the DP noise switched off but the full claim booked: the audit must catch it."""

    def _noise(self, rng, sigma, shape):
        return np.zeros(shape)


@_register("test-raise")
class Raises(Method):
    modality = Modality.TABULAR
    description = "always raises"

    def generate(self, task, ledger):
        raise RuntimeError("deliberate failure")


@_register("test-crash")
class Crashes(Method):
    """Kills its own worker process, as a segfault or an OOM kill would."""

    modality = Modality.TABULAR
    description = "kills its worker"

    def generate(self, task, ledger):
        os._exit(137)


@_register("test-hog")
class Hog(Method):
    """Touches about 1 GB of memory, then sleeps: a memory cap must stop it."""

    modality = Modality.TABULAR
    description = "allocates a lot"

    def generate(self, task, ledger):
        block = np.ones(1024 * 2**20 // 8)
        time.sleep(30)
        return Synthetic(block)


@_register("test-sleep")
class Sleeps(Method):
    modality = Modality.TABULAR
    description = "sleeps, then returns the uniform baseline's kind of output"

    def __init__(self, seconds: float = 0.2):
        self.seconds = seconds

    def generate(self, task, ledger):
        from dparena.methods.baselines.references import UniformSchema

        time.sleep(self.seconds)
        ledger.gaussian("pretend histogram", sigma=1e6, sensitivity=1.0)
        out = UniformSchema().generate(task, ledger)
        return Synthetic(out.data)




@_register("test-copy-images")
class CopyImages(Method):
    """Claims a tiny ε but returns private images with a little noise: the image audit must catch it."""

    modality = Modality.IMAGE
    description = "leaks private images"

    def generate(self, task, ledger):
        ledger.gaussian("pretend release", sigma=1e6, sensitivity=1.0)
        idx = task.rng.choice(len(task.private), size=task.n_samples, replace=True)
        noise = task.rng.integers(-8, 9, task.private[idx].shape)
        out = np.clip(task.private[idx].astype(int) + noise, 0, 255).astype(np.uint8)
        return Synthetic(out, labels=task.private_labels[idx])


@_register("test-copy-texts")
class CopyTexts(Method):
    """Claims a tiny ε but returns private texts verbatim: the text audit must catch it."""

    modality = Modality.TEXT
    description = "leaks private texts"

    def generate(self, task, ledger):
        ledger.gaussian("pretend release", sigma=1e6, sensitivity=1.0)
        idx = task.rng.choice(len(task.private), size=task.n_samples, replace=True)
        return Synthetic([task.private[i] for i in idx], labels=task.private_labels[idx])
