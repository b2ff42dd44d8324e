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
    "sdmetrics-quality", "dparena.metrics.quality:SDMetricsQuality", modality="tabular",
    extra="tabular",
    description="sdmetrics QualityReport: Column Shapes, Column Pair Trends and overall score",
)
metrics.register_lazy(
    "dcr", "dparena.metrics.dcr:DCR", modality="tabular", extra="",
    description="Distance to closest record: share of synthetic rows closer to training than holdout",
)
