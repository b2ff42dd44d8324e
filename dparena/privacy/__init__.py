"""Privacy accounting: pure formulas (``accountants``) and the per-run ``Ledger``."""

from dparena.privacy.accountants import (
    gaussian_sigma,
    gdp_delta,
    gdp_epsilon,
    gdp_mu,
    pe_epsilon,
    pe_sigma,
    zcdp_epsilon,
)
from dparena.privacy.ledger import Ledger, LedgerEntry

__all__ = [
    "Ledger",
    "LedgerEntry",
    "gaussian_sigma",
    "gdp_delta",
    "gdp_epsilon",
    "gdp_mu",
    "pe_epsilon",
    "pe_sigma",
    "zcdp_epsilon",
]
