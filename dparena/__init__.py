"""dparena: a benchmark harness for differentially private synthetic data."""

__version__ = "0.2.0"
