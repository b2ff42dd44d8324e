"""Baselines and non-private references."""
