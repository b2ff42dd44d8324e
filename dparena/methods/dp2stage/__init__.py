"""DP-2Stage and DP-Standard: differentially private LM fine-tuning for tables.

Afonja et al., "DP-2Stage: Adapting Language Models as Differentially Private Tabular Data
Generators", TMLR 2025 (arXiv 2412.02467). Modules: serialize (rows <-> text with token-group
spans), lm (models and tokenizers), loss (the weighted loss), train (stage 1 and DP stage 2),
sample (generation), method (the registered methods).
"""
