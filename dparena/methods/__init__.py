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
    "dp2stage", "dparena.methods.dp2stage.method:DP2Stage", modality="tabular", extra="llm",
    description="DP-2Stage: LM fine-tuned on public pseudo data, then with DP-SGD on the table",
)
methods.register_lazy(
    "dp-standard", "dparena.methods.dp2stage.method:DPStandard", modality="tabular", extra="llm",
    description="DP-Standard: LM fine-tuned with DP-SGD on the serialized table (no stage 1)",
)
