"""Explorer of the chapter 'Extensions': two rewards per answer, combined two ways.

``multi-reward``: every answer has a correctness reward (0 or 1, weight 1) and a second, *weak*
reward (a style score in [0, 1] times ``scale``, weight ``w2``). Left: one group of eight answers
and its advantages when the weighted rewards are summed then normalised in the group (GRPO) and
when each reward is normalised in the group first, then summed and normalised over the batch
(GDPO). Right: over a seeded batch of 512 groups, the correlation of the advantage with the weak
reward as its weight grows, for both combinations.
"""

from __future__ import annotations

import torch

from ...advantages import combine_rewards
from ...analysis.multi_reward import (
    G,
    GROUP_CORRECT,
    GROUP_STYLE,
    WEIGHTS,
    correlation,
    reward_batch,
    style_correlation_curves,
)

W2_GRID = [0.0, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0]
SCALES = [0.01, 0.1, 1.0, 10.0]
MODES = {"sum-then-normalize": ("sum, then normalise (GRPO)", "#1f77b4"),
         "normalize-then-sum": ("normalise each, then sum (GDPO)", "#d62728")}
from ..interactive import Explorer, Slider, register
from ..plots import fast_figure

def multi_reward_figure(w2: float = 0.5, scale: float = 0.1):
    """Advantages of one group under both combinations, and how much of the weak reward survives."""
    r = torch.stack([torch.tensor(GROUP_CORRECT), torch.tensor(GROUP_STYLE) * scale], 1)
    answers = [f"{k + 1} {'right' if c else 'wrong'} {s:.1f}" for k, (c, s) in enumerate(zip(GROUP_CORRECT, GROUP_STYLE))]
    data = []
    for mode, (label, color) in MODES.items():
        adv = combine_rewards(r, G, [1.0, w2], mode)
        data.append(dict(type="bar", x=answers, y=[round(v, 4) for v in adv.tolist()], name=label,
                         marker=dict(color=color), xaxis="x", yaxis="y", legendgroup=mode))
    curves = style_correlation_curves(float(scale))
    correct, style = reward_batch()
    batch_r = torch.stack([correct, style * scale], 1)
    for mode, (label, color) in MODES.items():
        data.append(dict(type="scatter", x=WEIGHTS, y=curves[mode], mode="lines", line=dict(color=color),
                         name=label, showlegend=False, xaxis="x2", yaxis="y2", legendgroup=mode))
        here = correlation(combine_rewards(batch_r, G, [1.0, w2], mode), style)
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
