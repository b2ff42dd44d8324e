"""Aggregation over seeds, tables, renderers and the regression gate."""
