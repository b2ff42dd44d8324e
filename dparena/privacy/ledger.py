"""The privacy ledger: one entry per access to private data, composed at the end of a run."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

from dparena.privacy import accountants


@dataclass(frozen=True)
class LedgerEntry:
    """One access to private data.

    Exactly one of ``mu`` (a Gaussian mechanism expressed in GDP), ``rho`` (zCDP) or the pair
    (``epsilon``, ``delta``) (an approximate-DP guarantee) describes the charge. ``epsilon=inf``
    marks a non-private read (references).
    """

    mechanism: str
    description: str
    mu: float | None = None
    rho: float | None = None
    epsilon: float | None = None
    delta: float | None = None
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        given = [x is not None for x in (self.mu, self.rho, self.epsilon)]
        if sum(given) != 1:
            raise ValueError("a ledger entry needs exactly one of mu, rho or epsilon")
        if self.epsilon is not None and self.delta is None:
            object.__setattr__(self, "delta", 0.0)

    @property
    def kind(self) -> str:
        if self.mu is not None:
            return "gdp"
        if self.rho is not None:
            return "zcdp"
        return "approx"

    def epsilon_at(self, delta: float) -> float:
        """This entry alone, as an (ε, δ) guarantee at ``delta`` (for display)."""
        if self.mu is not None:
            return accountants.gdp_epsilon(self.mu, delta)
        if self.rho is not None:
            return accountants.zcdp_epsilon(self.rho, delta)
        return float(self.epsilon)  # type: ignore[arg-type]


class Ledger:
    """Collects entries; ``spent(delta)`` composes them soundly into one (ε, δ).

    Composition: GDP entries compose exactly (μ² add); if any zCDP entry is present, GDP entries are
    converted to zCDP (ρ = μ²/2, exact for the Gaussian mechanism) and the ρ's add; approximate-DP
    entries compose by basic composition, their δ's are taken out of the budget's δ first.
    """

    def __init__(self, entries: list[LedgerEntry] | None = None):
        self.entries: list[LedgerEntry] = list(entries or [])

    def record(self, entry: LedgerEntry) -> LedgerEntry:
        self.entries.append(entry)
        return entry

    def gaussian(self, description: str, sigma: float, sensitivity: float, **params: Any):
        """Book a Gaussian mechanism with L2 ``sensitivity`` and noise standard deviation ``sigma``."""
        if sigma <= 0:
            raise ValueError("sigma must be > 0")
        return self.record(
            LedgerEntry(
                mechanism="gaussian",
                description=description,
                mu=sensitivity / sigma,
                params={"sigma": sigma, "sensitivity": sensitivity, **params},
            )
        )

    def zcdp(self, description: str, rho: float, **params: Any) -> LedgerEntry:
        """Book a mechanism whose guarantee is ρ-zCDP (e.g. a library's own zCDP accounting)."""
        if not rho > 0 or not math.isfinite(rho):
            raise ValueError("rho must be finite and > 0")
        return self.record(
            LedgerEntry(mechanism="zcdp", description=description, rho=rho, params=dict(params))
        )

    def approx(self, description: str, epsilon: float, delta: float, mechanism: str = "approx-dp",
               **params: Any) -> LedgerEntry:
        """Book an (ε, δ)-DP guarantee computed elsewhere (e.g. Opacus' accountant for DP-SGD).

        Such entries compose by basic composition: their δ is taken out of the run's δ.
        """
        if not epsilon > 0 or not math.isfinite(epsilon):
            raise ValueError("epsilon must be finite and > 0")
        if not 0.0 <= delta < 1.0:
            raise ValueError("delta must satisfy 0 <= delta < 1")
        return self.record(
            LedgerEntry(mechanism=mechanism, description=description, epsilon=float(epsilon),
                        delta=float(delta), params=dict(params))
        )

    def non_private(self, description: str) -> LedgerEntry:
        return self.record(
            LedgerEntry(mechanism="none", description=description, epsilon=math.inf, delta=0.0)
        )

    def __len__(self) -> int:
        return len(self.entries)

    def spent(self, delta: float) -> tuple[float, float]:
        """The composed (ε, δ) of all entries, spending ``delta`` (the run's δ) where needed."""
        if not self.entries:
            return 0.0, 0.0
        approx = [e for e in self.entries if e.kind == "approx"]
        eps_fixed = sum(float(e.epsilon) for e in approx)  # type: ignore[arg-type]
        delta_fixed = sum(float(e.delta) for e in approx)  # type: ignore[arg-type]
        if math.isinf(eps_fixed):
            return math.inf, delta_fixed
        mus = [e.mu for e in self.entries if e.kind == "gdp"]
        rhos = [e.rho for e in self.entries if e.kind == "zcdp"]
        if not mus and not rhos:
            return eps_fixed, delta_fixed
        remaining = delta - delta_fixed
        if remaining <= 0:
            return math.inf, delta_fixed
        if rhos:
            rho = sum(rhos) + sum(m * m / 2.0 for m in mus)  # type: ignore[operator]
            return eps_fixed + accountants.zcdp_epsilon(rho, remaining), delta
        mu = math.sqrt(sum(m * m for m in mus))  # type: ignore[operator]
        return eps_fixed + accountants.gdp_epsilon(mu, remaining), delta

    def to_list(self) -> list[dict[str, Any]]:
        return [asdict(e) for e in self.entries]

    def to_json(self) -> str:
        return json.dumps(self.to_list(), default=_json_default)

    @classmethod
    def from_list(cls, items: list[dict[str, Any]]) -> Ledger:
        return cls([LedgerEntry(**item) for item in items])


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "item"):
        return obj.item()
    return str(obj)
