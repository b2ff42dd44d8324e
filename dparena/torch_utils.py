"""Small torch helpers shared by methods and metrics (torch is imported by the caller)."""

from __future__ import annotations

import contextlib


@contextlib.contextmanager
def one_thread(torch):
    """Run a block on one torch thread (deterministic CPU kernels), restoring the count after."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextlib.contextmanager
def seeded(torch, seed: int):
    """Seed torch's default generator inside a forked RNG state (restored after the block).

    For module parameter initialisation, which draws from the default generator; everything else
    should take an explicit ``torch.Generator``.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        yield
