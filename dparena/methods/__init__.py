"""The method registry. Entries are lazy so listing them imports nothing heavy."""

from dparena.registry import Registry

methods: Registry = Registry("method", "dparena.methods.base:Method")

methods.register_lazy(
    "independent-marginals", "dparena.methods.baselines.marginals:IndependentMarginals",
    modality="tabular", extra="",
    description="Gaussian-noised one-way histograms on public bins, columns sampled independently",
)
methods.register_lazy(
    "real", "dparena.methods.baselines.references:RealData", modality="tabular,image,text",
    extra="", description="Non-private upper anchor: the private records themselves (ε = ∞)",
)
methods.register_lazy(
    "uniform", "dparena.methods.baselines.references:UniformSchema", modality="tabular", extra="",
    description="Public-only lower anchor: uniform draws from the public schema (ε = 0)",
)
methods.register_lazy(
    "pe-image", "dparena.methods.pe.method:PEImage", modality="image", extra="image",
    description="Private Evolution (Sim-PE DrawText or a diffusion API) steered by DP NN votes",
)
methods.register_lazy(
    "pe-text", "dparena.methods.pe.method:PEText", modality="text", extra="text",
    description="Aug-PE: Private Evolution for text with an LLM API, steered by DP NN votes",
)
methods.register_lazy(
    "public-only", "dparena.methods.pe.method:PublicOnly", modality="image,text", extra="",
    description="Public-only anchor of PE: random_api samples from class names alone (ε = 0)",
)
methods.register_lazy(
    "dp-merf", "dparena.methods.baselines.dp_merf:DPMERF", modality="image", extra="image",
    description="DP-MERF: one Gaussian release of a class-conditional RFF mean embedding, generator fit to it",
)
methods.register_lazy(
    "dp-ctgan", "dparena.methods.baselines.dp_ctgan:DPCTGAN", modality="tabular", extra="dpsgd",
    description="DP-CTGAN: CTGAN generator trained through a DP-SGD (Opacus) discriminator",
)
methods.register_lazy(
    "dp-ntk", "dparena.methods.baselines.dp_ntk:DPNTK", modality="image", extra="image",
    description="DP-NTK: one Gaussian release of a class-conditional NTK-feature mean embedding, generator fit to it",
)
methods.register_lazy(
    "dp2stage", "dparena.methods.dp2stage.method:DP2Stage", modality="tabular", extra="llm",
    description="DP-2Stage: LM fine-tuned on public pseudo data, then with DP-SGD on the table",
)
methods.register_lazy(
    "dp-standard", "dparena.methods.dp2stage.method:DPStandard", modality="tabular", extra="llm",
    description="DP-Standard: LM fine-tuned with DP-SGD on the serialized table (no stage 1)",
)
methods.register_lazy(
    "aim", "dparena.methods.baselines.aim_mst:AIM", modality="tabular", extra="tabular",
    description="AIM (McKenna et al. 2022) via OpenDP mbi: adaptive noisy marginals + Private-PGM",
)
methods.register_lazy(
    "mst", "dparena.methods.baselines.aim_mst:MST", modality="tabular", extra="tabular",
    description="MST (McKenna et al. 2021) via OpenDP mbi: spanning tree of noisy 2-way marginals",
)
methods.register_lazy(
    "dp-finetune-lm", "dparena.methods.baselines.lm_finetune:DPFinetuneLM", modality="text",
    extra="llm",
    description="DP-FT-Generator: LM fine-tuned with DP-SGD on label-prompted texts, then sampled",
)
