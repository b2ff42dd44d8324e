"""The metric registry. Entries are lazy so listing them imports nothing heavy."""

from dparena.registry import Registry

metrics: Registry = Registry("metric", "dparena.metrics.base:Metric")

metrics.register_lazy(
    "histogram-intersection", "dparena.metrics.histogram:HistogramIntersection",
    modality="tabular", extra="",
    description="Mean over columns of the 1-way normalized histogram intersection (B=20,50)",
)
metrics.register_lazy(
    "pair-histogram-intersection", "dparena.metrics.histogram:PairHistogramIntersection",
    modality="tabular", extra="",
    description="Mean over column pairs of the 2-way normalized histogram intersection (B=20,50)",
)
metrics.register_lazy(
    "ml-efficacy", "dparena.metrics.ml_efficacy:MLEfficacy", modality="tabular", extra="tabular",
    description="Train-on-synthetic, test-on-real F1 / ROC AUC / accuracy (XGBoost, logistic regression)",
)
metrics.register_lazy(
    "perplexity", "dparena.metrics.perplexity:Perplexity", modality="tabular", extra="llm",
    description="exp(mean token CE) of the method's own LM on real eval rows (key/value/other/all)",
)
metrics.register_lazy(
    "validity", "dparena.metrics.perplexity:ValidityRate", modality="tabular", extra="",
    description="Share of generated texts that parse into valid rows (LM-based methods)",
)
metrics.register_lazy(
    "fluency-perplexity", "dparena.metrics.perplexity:FluencyPerplexity", modality="text",
    extra="llm",
    description="exp(mean token CE) of synthetic text under the fixed SmolLM2-135M reference LM",
)
