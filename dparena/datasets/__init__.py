"""The dataset registry. Entries are lazy so listing them imports nothing heavy."""

from dparena.registry import Registry

datasets: Registry = Registry("dataset", "dparena.datasets.base:Dataset")

datasets.register_lazy(
    "adult", "dparena.datasets.adult:Adult", modality="tabular", extra="tabular",
    description="UCI Adult census income (32,561 private / 16,281 eval rows), target income",
)
