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
    "fid", "dparena.metrics.fid:FID", modality="image", extra="image",
    description="Frechet Inception Distance to the eval split (clean-fid preprocessing), with N",
)
metrics.register_lazy(
    "kid", "dparena.metrics.fid:KID", modality="image", extra="image",
    description="Kernel Inception Distance (unbiased MMD^2, cubic polynomial kernel) to the eval split",
)
metrics.register_lazy(
    "precision-recall", "dparena.metrics.precision_recall:PrecisionRecall",
    modality="image,text", extra="",
    description="Improved precision / recall (k-NN manifolds of Inception / sentence features, k=3)",
)
metrics.register_lazy(
    "downstream-accuracy", "dparena.metrics.downstream:DownstreamAccuracy",
    modality="image,text", extra="",
    description="Train-on-synthetic, test-on-real accuracy (images: small CNN; texts: embeddings + LR)",
)
metrics.register_lazy(
    "embedding-fid", "dparena.metrics.text:EmbeddingFID", modality="text", extra="text",
    description="Frechet distance of sentence embeddings (all-MiniLM-L6-v2) to the eval texts",
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
metrics.register_lazy(
    "sdmetrics-quality", "dparena.metrics.quality:SDMetricsQuality", modality="tabular",
    extra="tabular",
    description="sdmetrics QualityReport: Column Shapes, Column Pair Trends and overall score",
)
metrics.register_lazy(
    "dcr", "dparena.metrics.dcr:DCR", modality="tabular", extra="",
    description="Distance to closest record: share of synthetic rows closer to training than holdout",
)
metrics.register_lazy(
    "mauve", "dparena.metrics.text:Mauve", modality="text", extra="text",
    description="MAUVE (divergence frontier of k-means-quantised sentence embeddings) vs eval texts",
)
