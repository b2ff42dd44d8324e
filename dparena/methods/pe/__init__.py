"""Private Evolution (Lin et al., ICLR 2024; Xie et al., ICML 2024; Lin et al., Sim-PE 2025).

A training-free DP generator: a foundation model or simulator is queried as a black box through
``random_api`` and ``variation_api`` (:mod:`dparena.methods.pe.api`), and a DP nearest-neighbour
histogram of the private data over the synthetic population steers it.
"""
