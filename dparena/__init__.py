"""dparena: a benchmark harness for differentially private synthetic data."""

__version__ = "0.1.0"
