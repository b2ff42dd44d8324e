"""sdmetrics QualityReport: Column Shapes, Column Pair Trends and their mean (the overall score).

SDMetrics' single-table quality report (sdv-dev/SDMetrics, ``sdmetrics.reports.QualityReport``):
Column Shapes averages KSComplement (numeric) and TVComplement (categorical) over columns;
Column Pair Trends averages CorrelationSimilarity (numeric pairs) and ContingencySimilarity
(pairs involving a categorical column), counting only the pairs whose REAL data show a
relationship (|Pearson| > 0.5, Cramér's V > 0.3: sdmetrics 0.32's defaults for the unified
report); the overall score is the mean of the two properties.
The sdmetrics metadata is built from our public schema (numeric → ``numerical``, categorical →
``categorical``), never inferred from data. sdmetrics is imported lazily (about 4 s, 650 MB).
"""

from __future__ import annotations

import pandas as pd

from dparena.datasets.schema import Categorical, TableSchema
from dparena.errors import require
from dparena.metrics.base import EvalData, Metric, MetricContext
from dparena.types import MetricValue, Modality, Synthetic

TABLE = "table"


def sdmetrics_metadata(schema: TableSchema) -> dict:
    """sdmetrics metadata ({"tables": {name: {"columns": ...}}}) from a public schema."""
    columns = {c.name: {"sdtype": "categorical" if isinstance(c, Categorical) else "numerical"}
               for c in schema.columns}
    return {"tables": {TABLE: {"columns": columns}}}


def _typed(schema: TableSchema, frame: pd.DataFrame) -> pd.DataFrame:
    out = {}
    for c in schema.columns:
        values = frame[c.name]
        out[c.name] = values.astype(str) if isinstance(c, Categorical) else values.astype(float)
    return pd.DataFrame(out)


class SDMetricsQuality(Metric):
    """sdmetrics' QualityReport: Column Shapes, Column Pair Trends and their mean.

    Column Pair Trends counts only the pairs whose real data show an association (sdmetrics'
    thresholds); the sdmetrics metadata is built from the public schema, never inferred.
    """

    modality = Modality.TABULAR
    description = "sdmetrics QualityReport: Column Shapes, Column Pair Trends and overall score"
    extra = "tabular"

    def compute(self, synthetic: Synthetic, real: EvalData, ctx: MetricContext) -> list[MetricValue]:
        reports = require("sdmetrics.reports", "tabular")
        schema = real.schema
        report = reports.QualityReport()
        report.generate({TABLE: _typed(schema, real.data)}, {TABLE: _typed(schema, synthetic.data)},
                        sdmetrics_metadata(schema), verbose=False)
        props = report.get_properties().set_index("Property")["Score"]
        return [
            self.value(self.name, report.get_score()),
            self.value(f"{self.name}/column-shapes", props["Column Shapes"]),
            self.value(f"{self.name}/column-pair-trends", props["Column Pair Trends"]),
        ]
