"""grpo_core: the GRPO math that every chapter of "GRPO, interactively" imports.

Pure functions on torch tensors (CPU or CUDA alike), each checked by the tests in ``tests/``
and explained in the book:

- :func:`group_advantages`, :func:`preset_advantages`, :data:`PRESETS`: group-relative advantages;
- :func:`kl_k1`, :func:`kl_k2`, :func:`kl_k3`, :func:`kl_estimate`: per-token KL estimators;
- :func:`clipped_surrogate`, :func:`aggregate`, :func:`grpo_loss`: the objective and the loss;
- :func:`make_distribution`, :data:`DISTRIBUTIONS`: reward distributions the chapters sample from;
- :mod:`grpo_core.interactive`: explorers, live in a kernel and static in the built book;
- :func:`notebook_setup`: the first cell of every chapter (Colab widgets, versions, GPU).
"""

from .advantages import PRESETS, bernoulli_advantages, group_advantages, loo_advantages, preset_advantages
from .kl import KL_ESTIMATORS, kl_estimate, kl_k1, kl_k2, kl_k3
from .objective import (
    AGGREGATIONS,
    SEQUENCE_RATIOS,
    aggregate,
    aggregation_weights,
    clip_active,
    clipped_surrogate,
    grpo_loss,
    sequence_log_ratio,
)
from .rewards import DISTRIBUTIONS, ParamSpec, RewardDistribution, make_distribution
from .notebook import notebook_setup
from . import plots

# Only during a book build (GRPO_BOOK_BUILD=1, set by _ext/grpo_book.py): figures become HTML
# that draws with the book's own copy of plotly.js. Jupyter and Colab keep their renderers.
plots._maybe_use_book_renderer()

__version__ = "0.1.0"

__all__ = [
    "group_advantages",
    "preset_advantages",
    "loo_advantages",
    "bernoulli_advantages",
    "PRESETS",
    "kl_k1",
    "kl_k2",
    "kl_k3",
    "kl_estimate",
    "KL_ESTIMATORS",
    "clipped_surrogate",
    "aggregate",
    "grpo_loss",
    "AGGREGATIONS",
    "aggregation_weights",
    "clip_active",
    "sequence_log_ratio",
    "SEQUENCE_RATIOS",
    "DISTRIBUTIONS",
    "ParamSpec",
    "RewardDistribution",
    "make_distribution",
    "notebook_setup",
]
