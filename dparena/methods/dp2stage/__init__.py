"""DP-2Stage and DP-Standard: differentially private LM fine-tuning for tables.

Afonja et al., "DP-2Stage: Adapting Language Models as Differentially Private Tabular Data
Generators", TMLR 2025 (arXiv 2412.02467). Modules: serialize (rows <-> text with token-group
spans), tokens (token rows with loss groups; the LM scorer of real rows), lm (the schema tokenizer
and the model names), pseudo (stage-1 data), method (the registered methods). Loading, the
weighted loss, both training stages and sampling are the shared :mod:`dparena.lm`'s.
"""
