"""The method registry. Entries are lazy so listing them imports nothing heavy."""

from dparena.registry import Registry

methods: Registry = Registry("method", "dparena.methods.base:Method")

methods.register_lazy(
    "independent-marginals", "dparena.methods.baselines.marginals:IndependentMarginals",
    modality="tabular", extra="",
    description="Gaussian-noised one-way histograms on public bins, columns sampled independently",
)
methods.register_lazy(
    "real", "dparena.methods.baselines.references:RealData", modality="tabular", extra="",
    description="Non-private upper anchor: the private rows themselves (ε = ∞)",
)
methods.register_lazy(
    "uniform", "dparena.methods.baselines.references:UniformSchema", modality="tabular", extra="",
    description="Public-only lower anchor: uniform draws from the public schema (ε = 0)",
)
methods.register_lazy(
    "aim", "dparena.methods.baselines.aim_mst:AIM", modality="tabular", extra="tabular",
    description="AIM (McKenna et al. 2022) via OpenDP mbi: adaptive noisy marginals + Private-PGM",
)
methods.register_lazy(
    "mst", "dparena.methods.baselines.aim_mst:MST", modality="tabular", extra="tabular",
    description="MST (McKenna et al. 2021) via OpenDP mbi: spanning tree of noisy 2-way marginals",
)
