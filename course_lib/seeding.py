"""Seeds, in one place: the seeds an experiment runs at a budget, and building under a seed.

Experiments build their models and draw their data from explicit seeds, never from whatever state
the global random generator was left in, so a lecture's numbers are the same however often a cell
is re-run.
"""
from __future__ import annotations

import torch

from . import budget

__all__ = ["seeded", "budget_seeds"]


def seeded(seed: int, build):
    """``build()`` under ``torch.manual_seed(seed)`` without touching the caller's random state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        return build()


def budget_seeds(seeds=None, n_ci: int = 3, n_default: int = 3, n_full: int = 5) -> tuple[int, ...]:
    """``seeds`` as a tuple of integers >= 0; ``None``: ``0 .. n-1`` with ``n`` picked by the budget.

    Raises ``ValueError`` on an empty list or a negative seed.
    """
    if seeds is None:
        return tuple(range(budget.pick(ci=n_ci, default=n_default, full=n_full)))
    seeds = tuple(int(s) for s in seeds)
    if not seeds or any(s < 0 for s in seeds):
        raise ValueError(f"seeds must be a non-empty list of integers >= 0, got {seeds!r}")
    return seeds
