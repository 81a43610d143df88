"""Explorer of the chapter 'Extensions': two rewards per answer, combined two ways.

``multi-reward``: every answer has a correctness reward (0 or 1, weight 1) and a second, *weak*
reward (a style score in [0, 1] times ``scale``, weight ``w2``). Left: one group of eight answers
and its advantages when the weighted rewards are summed then normalised in the group (GRPO) and
when each reward is normalised in the group first, then summed and normalised over the batch
(GDPO). Right: over a seeded batch of 512 groups, the correlation of the advantage with the weak
reward as its weight grows, for both combinations.
"""

from __future__ import annotations

import functools

import torch

from ..advantages import group_advantages
from ..interactive import Explorer, Slider, register
from ..plots import fast_figure
from ..variants import combine_rewards

G = 8
W2_GRID = [0.0, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0]
SCALES = [0.01, 0.1, 1.0, 10.0]
CURVE_W2 = [round(0.1 * k, 2) for k in range(41)]  # 0 .. 4
MODES = {"sum-then-normalize": ("sum, then normalise (GRPO)", "#1f77b4"),
         "normalize-then-sum": ("normalise each, then sum (GDPO)", "#d62728")}

# one group: correctness and a style score for eight answers
GROUP_CORRECT = [1.0, 0.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0]
GROUP_STYLE = [0.2, 0.9, 0.1, 0.8, 0.5, 0.3, 0.7, 0.0]


@functools.lru_cache(maxsize=1)
def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    p = torch.rand(512, 1, generator=gen).expand(512, G)
    correct = (torch.rand(512, G, generator=gen) < p).float().reshape(-1)
    style = torch.rand(512 * G, generator=gen, dtype=torch.float32)
    return correct, style


def _corr_columns(a: torch.Tensor, b: torch.Tensor) -> list[float]:
    """Correlation of each column of ``a`` [N, W] with ``b`` [N]."""
    a = a - a.mean(0)
    b = b - b.mean()
    denom = a.norm(dim=0) * b.norm()
    out = torch.where(denom > 0, (b @ a) / denom.clamp(min=1e-30), torch.zeros_like(denom))
    return [round(v, 4) for v in out.tolist()]


def _corr(a: torch.Tensor, b: torch.Tensor) -> float:
    """Correlation of ``a`` [N] with ``b`` [N]."""
    return _corr_columns(a[:, None], b)[0]


@functools.lru_cache(maxsize=16)
def _curves(scale: float) -> dict[str, list[float]]:
    """Both curves over CURVE_W2 at once. The combination is linear in w2, so for every weight:
    sum-then-normalize is group_advantages of ``correct + w2 * style``, and GDPO is the batch
    normalisation of ``A(correct) + w2 * A(style)`` (what :func:`combine_rewards` computes one
    weight at a time; the tests compare the two)."""
    correct, style = _batch()
    w = torch.tensor(CURVE_W2)
    n = correct.numel()
    summed = correct[:, None] + style[:, None] * scale * w[None, :]                       # [N, W]
    grouped = summed.T.reshape(len(CURVE_W2) * (n // G), G)                                 # groups per weight
    a_sum = group_advantages(grouped, G).reshape(len(CURVE_W2), n).T
    a = group_advantages(correct, G)[:, None] + w[None, :] * group_advantages(style * scale, G)[:, None]
    a_gdpo = (a - a.mean(0)) / (a.std(dim=0, correction=0) + 1e-6)
    return {"sum-then-normalize": _corr_columns(a_sum, style), "normalize-then-sum": _corr_columns(a_gdpo, style)}


def multi_reward_figure(w2: float = 0.5, scale: float = 0.1):
    """Advantages of one group under both combinations, and how much of the weak reward survives."""
    r = torch.stack([torch.tensor(GROUP_CORRECT), torch.tensor(GROUP_STYLE) * scale], 1)
    answers = [f"{k + 1} {'right' if c else 'wrong'} {s:.1f}" for k, (c, s) in enumerate(zip(GROUP_CORRECT, GROUP_STYLE))]
    data = []
    for mode, (label, color) in MODES.items():
        adv = combine_rewards(r, G, [1.0, w2], mode)
        data.append(dict(type="bar", x=answers, y=[round(v, 4) for v in adv.tolist()], name=label,
                         marker=dict(color=color), xaxis="x", yaxis="y", legendgroup=mode))
    curves = _curves(float(scale))
    correct, style = _batch()
    batch_r = torch.stack([correct, style * scale], 1)
    for mode, (label, color) in MODES.items():
        data.append(dict(type="scatter", x=CURVE_W2, y=curves[mode], mode="lines", line=dict(color=color),
                         name=label, showlegend=False, xaxis="x2", yaxis="y2", legendgroup=mode))
        here = _corr(combine_rewards(batch_r, G, [1.0, w2], mode), style)
        data.append(dict(type="scatter", x=[w2], y=[here], mode="markers", marker=dict(color=color, size=10),
                         showlegend=False, xaxis="x2", yaxis="y2", hoverinfo="x+y"))
    layout = dict(
        xaxis=dict(domain=[0, 0.55], tickangle=-45, tickfont=dict(size=10),
                   title=dict(text="answer: correctness, style score", font=dict(size=11))),
        yaxis=dict(title="advantage", domain=[0, 1]),
        xaxis2=dict(domain=[0.66, 1], title="weight of the style reward w2", anchor="y2"),
        yaxis2=dict(domain=[0, 1], range=[-0.05, 1.05], anchor="x2", title="corr(advantage, style) over 512 groups"),
        barmode="group",
        legend=dict(orientation="h", y=1.12, x=0),
        margin=dict(b=110),
    )
    return fast_figure(data, layout, height=430)


register(
    Explorer(
        name="multi-reward",
        title="Two rewards per answer: correctness (weight 1) and a weak style score (weight w2, size scale)",
        controls=[
            Slider("w2", 0.0, 4.0, 0.05, 0.5, label="weight w2", grid=W2_GRID, live_on_grid=True),
            Slider("scale", 0.01, 10.0, 0.01, 0.1, label="style reward scale", grid=SCALES, live_on_grid=True),
        ],
        figure=multi_reward_figure,
    )
)
