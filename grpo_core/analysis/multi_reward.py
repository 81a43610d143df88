"""The extensions chapter's experiment with two rewards per answer: correctness and a weak style score.

How much of the style score survives in the advantage when the two rewards are combined by
:func:`grpo_core.combine_rewards` (weighted sum then group normalisation, or GDPO's normalise
each reward then sum), as its weight ``w2`` and its size grow: :func:`style_correlation_curves`
over :data:`WEIGHTS` on :func:`reward_batch` (512 groups of G = 8), and one group
(:data:`GROUP_CORRECT`, :data:`GROUP_STYLE`) to show the advantages themselves.
"""

from __future__ import annotations

import functools

import torch

from ..advantages import group_advantages

__all__ = ["G", "WEIGHTS", "GROUP_CORRECT", "GROUP_STYLE", "reward_batch",
           "correlation_columns", "correlation", "style_correlation_curves"]

G = 8  # answers per group
WEIGHTS = [round(0.1 * k, 2) for k in range(41)]  # the weights w2 of the curves: 0, 0.1, .., 4

# one group: correctness and a style score for eight answers
GROUP_CORRECT = [1.0, 0.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0]
GROUP_STYLE = [0.2, 0.9, 0.1, 0.8, 0.5, 0.3, 0.7, 0.0]


@functools.lru_cache(maxsize=1)
def reward_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """512 groups of G answers: ``(correct, style)``, each ``[512 G]``; a prompt's success rate is uniform
    on [0, 1], the style score uniform on [0, 1] and independent of correctness."""
    gen = torch.Generator().manual_seed(0)
    p = torch.rand(512, 1, generator=gen).expand(512, G)
    correct = (torch.rand(512, G, generator=gen) < p).float().reshape(-1)
    style = torch.rand(512 * G, generator=gen, dtype=torch.float32)
    return correct, style


def correlation_columns(a: torch.Tensor, b: torch.Tensor) -> list[float]:
    """Correlation of each column of ``a`` [N, W] with ``b`` [N]."""
    a = a - a.mean(0)
    b = b - b.mean()
    denom = a.norm(dim=0) * b.norm()
    out = torch.where(denom > 0, (b @ a) / denom.clamp(min=1e-30), torch.zeros_like(denom))
    return [round(v, 4) for v in out.tolist()]


def correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    """Correlation of ``a`` [N] with ``b`` [N]."""
    return correlation_columns(a[:, None], b)[0]


@functools.lru_cache(maxsize=16)
def style_correlation_curves(scale: float) -> dict[str, list[float]]:
    """Both curves over WEIGHTS at once. The combination is linear in w2, so for every weight:
    sum-then-normalize is group_advantages of ``correct + w2 * style``, and GDPO is the batch
    normalisation of ``A(correct) + w2 * A(style)`` (what :func:`combine_rewards` computes one
    weight at a time; the tests compare the two)."""
    correct, style = reward_batch()
    w = torch.tensor(WEIGHTS)
    n = correct.numel()
    summed = correct[:, None] + style[:, None] * scale * w[None, :]                       # [N, W]
    grouped = summed.T.reshape(len(WEIGHTS) * (n // G), G)                                 # groups per weight
    a_sum = group_advantages(grouped, G).reshape(len(WEIGHTS), n).T
    a = group_advantages(correct, G)[:, None] + w[None, :] * group_advantages(style * scale, G)[:, None]
    a_gdpo = (a - a.mean(0)) / (a.std(dim=0, correction=0) + 1e-6)
    return {"sum-then-normalize": correlation_columns(a_sum, style), "normalize-then-sum": correlation_columns(a_gdpo, style)}
