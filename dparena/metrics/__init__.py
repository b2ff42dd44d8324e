"""The metric registry. Entries are lazy so listing them imports nothing heavy.

Each entry is a name and the class that implements it; what it is (modality, description,
install extra) is written on the class, where `dparena list` reads it without importing.
"""

from dparena.registry import Registry

metrics: Registry = Registry("metric", "dparena.metrics.base:Metric")

metrics.register_lazy("histogram-intersection", "dparena.metrics.histogram:HistogramIntersection")
metrics.register_lazy("pair-histogram-intersection",
                      "dparena.metrics.histogram:PairHistogramIntersection")
metrics.register_lazy("ml-efficacy", "dparena.metrics.ml_efficacy:MLEfficacy")
metrics.register_lazy("fid", "dparena.metrics.fid:FID")
metrics.register_lazy("kid", "dparena.metrics.fid:KID")
metrics.register_lazy("precision-recall", "dparena.metrics.precision_recall:PrecisionRecall")
metrics.register_lazy("downstream-accuracy", "dparena.metrics.downstream:DownstreamAccuracy")
metrics.register_lazy("embedding-fid", "dparena.metrics.text:EmbeddingFID")
metrics.register_lazy("perplexity", "dparena.metrics.perplexity:Perplexity")
metrics.register_lazy("validity", "dparena.metrics.perplexity:ValidityRate")
metrics.register_lazy("fluency-perplexity", "dparena.metrics.perplexity:FluencyPerplexity")
metrics.register_lazy("sdmetrics-quality", "dparena.metrics.quality:SDMetricsQuality")
metrics.register_lazy("dcr", "dparena.metrics.dcr:DCR")
metrics.register_lazy("mauve", "dparena.metrics.text:Mauve")
