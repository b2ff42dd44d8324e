"""The privacy ledger: one entry per access to private data, composed at the end of a run."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

from dparena.privacy import accountants

#: the accountants a DP-SGD entry may name (both Opacus'; PRV is the tighter valid bound)
SGM_ACCOUNTANTS = ("prv", "rdp")


@dataclass(frozen=True)
class LedgerEntry:
    """One access to private data.

    Exactly one of ``mu`` (a Gaussian mechanism expressed in GDP), ``rho`` (zCDP), the pair
    (``epsilon``, ``delta``) (an approximate-DP guarantee) or ``noise_multiplier`` (with
    ``sample_rate`` and ``steps``: the Poisson-subsampled Gaussian mechanism of DP-SGD) describes
    the charge. ``epsilon=inf`` marks a non-private read (references). ``accountant`` names how
    the entry is accounted ("gdp", "zcdp", "approx", or "prv" / "rdp" for DP-SGD).
    """

    mechanism: str
    description: str
    mu: float | None = None
    rho: float | None = None
    epsilon: float | None = None
    delta: float | None = None
    params: dict[str, Any] = field(default_factory=dict)
    noise_multiplier: float | None = None
    sample_rate: float | None = None
    steps: int | None = None
    accountant: str = ""

    def __post_init__(self) -> None:
        given = [x is not None for x in (self.mu, self.rho, self.epsilon, self.noise_multiplier)]
        if sum(given) != 1:
            raise ValueError("a ledger entry needs exactly one of mu, rho, epsilon or "
                             "noise_multiplier")
        if self.epsilon is not None and self.delta is None:
            object.__setattr__(self, "delta", 0.0)
        if self.noise_multiplier is not None:
            if self.sample_rate is None or self.steps is None:
                raise ValueError("a DP-SGD entry needs sample_rate and steps")
            if self.accountant not in SGM_ACCOUNTANTS:
                raise ValueError(f"a DP-SGD entry's accountant must be one of {SGM_ACCOUNTANTS}")
        if not self.accountant:
            object.__setattr__(self, "accountant", self.kind if self.kind != "sgm" else "prv")

    @property
    def kind(self) -> str:
        if self.mu is not None:
            return "gdp"
        if self.rho is not None:
            return "zcdp"
        if self.noise_multiplier is not None:
            return "sgm"
        return "approx"

    def epsilon_at(self, delta: float) -> float:
        """This entry alone, as an (ε, δ) guarantee at ``delta`` (for display)."""
        if self.mu is not None:
            return accountants.gdp_epsilon(self.mu, delta)
        if self.rho is not None:
            return accountants.zcdp_epsilon(self.rho, delta)
        if self.noise_multiplier is not None:
            return accountants.sgm_epsilon([self.sgm_step()], delta, self.accountant)
        return float(self.epsilon)  # type: ignore[arg-type]

    def sgm_step(self) -> tuple[float, float, int]:
        """This entry as one (noise multiplier, sampling rate, steps) item of an Opacus history;
        a Gaussian mechanism of sensitivity Δ and noise σ is (σ/Δ, 1, 1) = (1/μ, 1, 1)."""
        if self.noise_multiplier is not None:
            return float(self.noise_multiplier), float(self.sample_rate), int(self.steps)
        if self.mu is not None:
            return 1.0 / float(self.mu), 1.0, 1
        raise ValueError(f"a {self.kind} entry is not a subsampled Gaussian mechanism")


class Ledger:
    """Collects entries; ``spent(delta)`` composes them soundly into one (ε, δ).

    Composition, tightest valid first:

    * only Gaussian (GDP) entries: exactly, μ² add (Dong, Roth & Su 2019) — "GDP (exact)";
    * any DP-SGD entry: every DP-SGD and Gaussian entry together in that entry's accountant (PRV,
      Gopi et al. 2021, or RDP, Mironov 2017; a full-batch Gaussian release is the subsampled
      Gaussian at rate 1 for one step) — "PRV" / "RDP";
    * zCDP entries (with Gaussian ones converted exactly, ρ = μ²/2): ρ's add, then the
      Canonne–Kamath–Steinke conversion — "zCDP (CKS)";
    * what cannot be composed in one accountant (fixed (ε, δ) entries; zCDP beside DP-SGD) is
      combined by basic composition (ε's and δ's add; the run's δ is split evenly between the
      parts that need one) — the accountant's name then says "+ basic".
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

    def dp_sgd(self, description: str, noise_multiplier: float, sample_rate: float, steps: int,
               accountant: str = "prv", **params: Any) -> LedgerEntry:
        """Book ``steps`` steps of the Poisson-subsampled Gaussian mechanism (DP-SGD: per-example
        clipping to C, noise σ = ``noise_multiplier``·C, sampling rate q), composed in
        ``accountant`` ("prv" or "rdp") with the run's other Gaussian and DP-SGD entries."""
        if not noise_multiplier > 0 or not math.isfinite(noise_multiplier):
            raise ValueError("noise_multiplier must be finite and > 0")
        if not 0.0 < sample_rate <= 1.0:
            raise ValueError("sample_rate must lie in (0, 1]")
        if not isinstance(steps, int) or steps < 1:
            raise ValueError("steps must be a positive integer")
        return self.record(
            LedgerEntry(mechanism="dp-sgd", description=description,
                        noise_multiplier=float(noise_multiplier), sample_rate=float(sample_rate),
                        steps=int(steps), accountant=accountant, params=dict(params))
        )

    def approx(self, description: str, epsilon: float, delta: float, mechanism: str = "approx-dp",
               **params: Any) -> LedgerEntry:
        """Book an (ε, δ)-DP guarantee computed elsewhere.

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

    def _sgm_accountant(self) -> str | None:
        names = {e.accountant for e in self.entries if e.kind == "sgm"}
        if len(names) > 1:
            raise ValueError(f"DP-SGD entries name different accountants {sorted(names)}; a run "
                             "composes them in one")
        return names.pop() if names else None

    def accountant(self) -> str:
        """How :meth:`spent` composes this ledger, for display: "GDP (exact)", "PRV", "RDP",
        "zCDP (CKS)", "basic", each part joined by " + " (e.g. "PRV + basic"); "none" when
        nothing was booked or the run is non-private."""
        kinds = {e.kind for e in self.entries}
        if not kinds or any(e.kind == "approx" and math.isinf(float(e.epsilon))  # type: ignore[arg-type]
                            for e in self.entries):
            return "none"
        parts = []
        sgm = self._sgm_accountant()
        if sgm:
            parts.append(sgm.upper())
        if "zcdp" in kinds:
            parts.append("zCDP (CKS)")
        elif "gdp" in kinds and not sgm:
            parts.append("GDP (exact)")
        if "approx" in kinds or len(parts) > 1:
            parts.append("basic")
        return " + ".join(dict.fromkeys(parts))

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
        sgms = [e for e in self.entries if e.kind == "sgm"]
        if not mus and not rhos and not sgms:
            return eps_fixed, delta_fixed
        remaining = delta - delta_fixed
        if remaining <= 0:
            return math.inf, delta_fixed
        if sgms:
            # DP-SGD and the Gaussians in one accountant; zCDP beside it by basic composition
            name = self._sgm_accountant()
            history = ([e.sgm_step() for e in sgms]
                       + [e.sgm_step() for e in self.entries if e.kind == "gdp"])
            if not rhos:
                return eps_fixed + accountants.sgm_epsilon(history, remaining, name), delta
            half = remaining / 2.0
            return (eps_fixed + accountants.sgm_epsilon(history, half, name)
                    + accountants.zcdp_epsilon(sum(rhos), half), delta)  # type: ignore[arg-type]
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
