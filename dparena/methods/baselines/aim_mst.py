"""AIM and MST: marginal-based DP synthesizers through OpenDP's maintained implementation.

AIM (McKenna, Mullins, Sheldon & Miklau, "AIM: An Adaptive and Iterative Mechanism for
Differentially Private Synthetic Data", VLDB 2022) and MST (McKenna, Miklau & Sheldon, "Winning
the NIST Contest: A scalable and general approach to differentially private synthetic data",
JPC 2021) measure noisy marginals and fit a graphical model to them with Private-PGM. We call
OpenDP 0.16's ``opendp.extras.mbi`` (over the ``mbi`` 1.1 Private-PGM package), not our own code:

* the table is discretised on the PUBLIC domain first (``dparena.methods.tabular.Domain``:
  public categories, equal-width bins over the public numeric bounds) and every column's full key
  set is passed to OpenDP as public ``keys``, so no budget is spent discovering categories and a
  category absent from the private rows still has a cell in the model. We discretise ourselves
  rather than passing OpenDP ``cuts`` because OpenDP decodes a bin with the global NumPy RNG
  (and its outermost bins extend one unit beyond the cuts); decoding draws uniformly inside the
  public bin from the run's generator instead;
* the whole release runs under ρ-zCDP (AIM under pure ε fails about half the time, opendp#2790).
  ρ is the largest value whose Canonne–Kamath–Steinke conversion at the run's δ is ≤ ε
  (``accountants.zcdp_rho``), and the ledger books the ρ OpenDP's compositor reports as
  consumed, so the booked ε is what the library accounted. The privacy unit is one row
  (add/remove, ``contributions=1``), as for every dparena method;
* OpenDP 0.16 fails MST (and sometimes AIM) with "insufficient budget for query" when its own
  floating-point budget split overshoots by a few ulps (opendp#2789). During the release we swap
  the library's one-ulp ``prior`` helper for a relative back-off of 1e-9, which only makes every
  step ask for less: OpenDP's Rust compositor still checks each query against the budget;
* OpenDP adds a null cell to every key set; the model may put mass there. Synthetic rows with a
  null in any column are dropped and more rows are drawn (conditioning the model on real cells).

Not reproducible under the run seed: OpenDP draws its noise from the operating system's CSPRNG
and ``mbi``'s sampler uses NumPy's global RNG, neither of which takes a seed (we do not touch the
global RNG). Only the decoding of bins uses ``task.rng``.

Alternatives checked: smartnoise-synth pins opacus < 0.15 and cannot be installed beside our
opacus 1.6; private-pgm's own ``mbi`` ships the estimator but not the mechanisms with their
accounting, which OpenDP adds on top of it.
"""

from __future__ import annotations

import contextlib
import functools
import math
from typing import Any

import numpy as np
import pandas as pd

from dparena.errors import ConfigError, require
from dparena.methods.base import Method, Task
from dparena.methods.tabular import Domain
from dparena.privacy import Ledger
from dparena.privacy.accountants import zcdp_rho
from dparena.types import Modality, Synthetic

BACKOFF = 1e-9


@contextlib.contextmanager
def _budget_backoff():
    """Work around opendp#2789: split budgets with a 1e-9 relative margin instead of one ulp."""
    import opendp.extras.mbi._aim as aim_mod
    import opendp.extras.mbi._mst as mst_mod

    saved = {m: m.prior for m in (aim_mod, mst_mod)}

    def prior(x: float) -> float:
        return float(np.nextafter(float(x) * (1.0 - BACKOFF), -np.inf))

    try:
        for m in saved:
            m.prior = prior
        yield
    finally:
        for m, fn in saved.items():
            m.prior = fn


def _jax_compilation_cache() -> None:
    """Keep Private-PGM's XLA compilations on disk ($DPARENA_HOME/jax-cache).

    Half of an MST run on Adult is JAX compiling the same few hundred kernels; with the
    persistent cache, later runs (other seeds, other ε) load them instead. Compilation is
    deterministic, so this changes timings only.
    """
    import jax

    from dparena.assets import default_home

    if jax.config.jax_compilation_cache_dir is None:
        jax.config.update("jax_compilation_cache_dir", str(default_home() / "jax-cache"))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


class _MarginalSynthesizer(Method):
    modality = Modality.TABULAR
    extra = "tabular"
    _label = ""
    # chosen by OpenDP's DP selection / drawn from the fitted model: post-processing
    released_info = frozenset({"cliques", "null_rows_dropped"})
    reproducible = False  # OpenDP's noise and mbi's sampler take no seed (see the module docstring)

    def __init__(self, bins: int = 32, iters: int = 1000):
        if not isinstance(bins, int) or bins < 2:
            raise ConfigError(f"{self.name}: bins must be an integer >= 2 (got {bins!r})")
        if not isinstance(iters, int) or iters < 1:
            raise ConfigError(f"{self.name}: iters must be a positive integer (got {iters!r})")
        self.bins = bins
        self.iters = iters

    def _algorithm(self, dp, estimator) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def generate(self, task: Task, ledger: Ledger) -> Synthetic:
        dp = require("opendp.prelude", "tabular")
        pl = require("polars", "tabular")
        estimation = require("mbi.estimation", "tabular")
        if not task.budget.is_private:
            raise ConfigError(f"{self.name} needs a finite epsilon")
        if not 0.0 < task.budget.delta < 1.0:
            raise ConfigError(f"{self.name} runs under zCDP and needs delta > 0 (got "
                              f"{task.budget.delta})")
        dp.enable_features("contrib")
        _jax_compilation_cache()
        schema = task.schema
        domain = Domain(schema, self.bins)
        rho = zcdp_rho(task.budget.epsilon, task.budget.delta)
        codes = domain.encode(task.private)  # read of private data, released only through OpenDP
        frame = pl.DataFrame({n: codes[:, j] for j, n in enumerate(schema.names)}).lazy()
        context = dp.Context.compositor(
            data=frame, privacy_unit=dp.unit_of(contributions=1),
            privacy_loss=dp.loss_of(rho=rho),
        )
        keys = {n: list(range(k)) for n, k in zip(schema.names, domain.sizes, strict=True)}
        estimator = functools.partial(estimation.mirror_descent, iters=self.iters)
        with _budget_backoff():
            table = (context.query(rho=rho)
                     .contingency_table(keys=keys, algorithm=self._algorithm(dp, estimator))
                     .release())
        consumed = context.current_privacy_loss()  # a float, or a list of per-query losses
        spent = float(sum(consumed) if isinstance(consumed, list | tuple) else consumed)
        if not 0 < spent <= rho * (1 + 1e-12):
            raise RuntimeError(f"OpenDP reports rho={spent} consumed, budget was {rho}")
        cliques = [tuple(m.clique) for m in table.marginals.flatten()]
        ledger.zcdp(
            f"OpenDP {self._label} contingency table over {len(schema.names)} columns on "
            f"public keys ({len(cliques)} noisy marginals)",
            rho=spent, rho_target=rho, bins=self.bins, library="opendp.extras.mbi",
        )
        out, dropped = _sample_without_nulls(table, task.n_samples, len(schema.names))
        data: pd.DataFrame = domain.decode(out, task.rng)
        return Synthetic(data, info={"rho": spent, "cliques": [list(c) for c in cliques],
                                     "domain": {c: int(k) for c, k in
                                                table.model.domain.config.items()},
                                     "null_rows_dropped": dropped})


def _sample_without_nulls(table, n: int, d: int, max_rounds: int = 20) -> tuple[np.ndarray, int]:
    """Draw n rows from the fitted model, dropping rows that fall in a null cell of any column."""
    kept: list[np.ndarray] = []
    have, dropped, ask = 0, 0, n
    for _ in range(max_rounds):
        batch = table.synthesize(rows=max(ask, 1))
        good = batch.drop_nulls()
        dropped += batch.height - good.height
        if good.height:
            kept.append(good.to_numpy().astype(np.int64))
            have += good.height
        if have >= n:
            break
        keep_rate = max(good.height / max(batch.height, 1), 0.01)
        ask = math.ceil((n - have) / keep_rate * 1.1) + 10
    if have < n:
        raise RuntimeError(f"the fitted model puts almost all mass on null cells ({dropped} "
                           f"null rows dropped); increase epsilon or reduce bins")
    rows = np.concatenate(kept, axis=0)
    assert rows.shape[1] == d
    return rows[:n], dropped


class AIM(_MarginalSynthesizer):
    """AIM (McKenna et al., VLDB 2022) via OpenDP ``dp.mbi.AIM`` under ρ-zCDP.

    ρ is the largest with ε(ρ, δ) ≤ ε, and the ledger books the ρ OpenDP reports consumed. Every
    column has public keys (numeric columns on ``bins`` public bins, decoded uniformly inside the
    bin); ``iters``: mirror-descent iterations. Not reproducible under the seed: OpenDP's noise
    takes none.

    ``degree``: the workload is every ``degree``-way marginal (and their subsets); ``max_size``:
    the model-size cap in MB; ``rounds``: the cap on select/measure rounds (None = OpenDP's 16·d).
    """

    description = "AIM (McKenna et al. 2022) via OpenDP mbi: adaptive noisy marginals + Private-PGM"
    _label = "AIM"

    def __init__(self, bins: int = 32, iters: int = 1000, degree: int = 2,
                 max_size: float = 80.0, rounds: int | None = None):
        super().__init__(bins, iters)
        if not isinstance(degree, int) or degree < 1:
            raise ConfigError(f"aim: degree must be a positive integer (got {degree!r})")
        if not max_size > 0:
            raise ConfigError(f"aim: max_size must be > 0 MB (got {max_size!r})")
        if rounds is not None and (not isinstance(rounds, int) or rounds < 1):
            raise ConfigError(f"aim: rounds must be a positive integer or omitted (got {rounds!r})")
        self.degree = degree
        self.max_size = float(max_size)
        self.rounds = rounds

    def _algorithm(self, dp, estimator):
        return dp.mbi.AIM(queries=self.degree, max_size=self.max_size, rounds=self.rounds,
                          estimator=estimator)


class MST(_MarginalSynthesizer):
    """MST (McKenna et al., JPC 2021) via OpenDP ``dp.mbi.MST`` under ρ-zCDP.

    One-way marginals, then a maximum spanning tree of pairs chosen by the exponential mechanism,
    each pair measured with Gaussian noise. Same route, accounting and parameters ``bins``,
    ``iters`` as ``aim``.
    """

    description = "MST (McKenna et al. 2021) via OpenDP mbi: spanning tree of noisy 2-way marginals"
    _label = "MST"

    def _algorithm(self, dp, estimator):
        return dp.mbi.MST(estimator=estimator)
