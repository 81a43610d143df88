"""Explorers of the chapter 'Signal collapse'.

- ``collapse-probability``: the chance that a group of G answers with 0/1 rewards has no spread,
  ``p**G + (1 - p)**G``, as a heat map over the success rate p and G, with the curve over G at
  the chosen p and a seeded simulation next to it.
- ``near-collapse``: one group whose rewards differ only by noise of size ``spread`` around the
  notes' reward level 7; the advantages under GRPO (with ``eps``), GRPO with a minimum std
  (``std_floor``) and Dr. GRPO (no std division), and their size as the spread shrinks.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from ...advantages import group_advantages
from ...analysis.collapse import advantage_scale, zero_spread_probability
from ..interactive import Explorer, Slider, register
from ..plots import annotation, fast_figure

# ------------------------------------------------------------------ collapse-probability

HEAT_P = [round(k / 40, 3) for k in range(41)]
HEAT_G = list(range(2, 17)) + [20, 24, 32, 48, 64]
CURVE_G = list(range(2, 65))
SIM_G = [2, 4, 8, 16, 32, 64]
SIM_GROUPS = 4000


@functools.lru_cache(maxsize=1)
def _heat() -> list[list[float]]:
    p = torch.tensor(HEAT_P, dtype=torch.float64)
    return [[round(v, 3) for v in zero_spread_probability(p, g).tolist()] for g in HEAT_G]


@functools.lru_cache(maxsize=64)
def _simulated(p: float) -> list[float]:
    """Share of SIM_GROUPS seeded groups of 0/1 rewards without spread, for each G in SIM_G.

    A group's number of right answers is Binomial(G, p) and the group is flat when that number
    is 0 or G; NumPy draws the counts directly, which keeps a redraw within a few milliseconds
    (the chapter checks the same probability with torch-sampled rewards and
    :func:`grpo_core.analysis.collapse.zero_std_fraction`).
    """
    rng = np.random.default_rng(0)
    out = []
    for g in SIM_G:
        k = rng.binomial(g, p, size=SIM_GROUPS)
        out.append(round(float(np.mean((k == 0) | (k == g))), 4))
    return out


def collapse_probability_figure(p: float = 0.1, G: int = 8):
    """Heat map of ``p**G + (1-p)**G`` with a marker at (p, G); the curve over G at this p."""
    exact_curve = [p**g + (1 - p) ** g for g in CURVE_G]  # zero_spread_probability, as floats
    here = zero_spread_probability(p, G).item()
    sim = _simulated(float(p))
    data = [
        dict(type="heatmap", x=HEAT_P, y=HEAT_G, z=_heat(), zmin=0, zmax=1, colorscale="Viridis",
             colorbar=dict(x=0.4, xref="paper", xanchor="left", len=0.9, thickness=12),
             hovertemplate="p = %{x}<br>G = %{y}<br>P(no spread) = %{z:.3f}<extra></extra>"),
        dict(type="scatter", x=[p], y=[G], mode="markers", showlegend=False,
             marker=dict(color="white", size=12, symbol="x", line=dict(color="black", width=1)),
             hovertemplate="chosen p, G<extra></extra>"),
        dict(type="scatter", x=CURVE_G, y=[round(v, 5) for v in exact_curve], mode="lines",
             name="exact p^G + (1-p)^G", xaxis="x2", yaxis="y2", line=dict(color="#4c72b0")),
        dict(type="scatter", x=SIM_G, y=sim, mode="markers", name=f"simulated ({SIM_GROUPS} groups)",
             xaxis="x2", yaxis="y2", marker=dict(color="#dd8452", size=9)),
        dict(type="scatter", x=[G], y=[round(here, 5)], mode="markers", name="chosen G",
             xaxis="x2", yaxis="y2", marker=dict(color="black", size=11, symbol="x")),
    ]
    layout = dict(
        xaxis=dict(domain=[0.0, 0.38], title=dict(text="success rate p of the prompt")),
        yaxis=dict(title=dict(text="group size G"), type="log", tickvals=[2, 4, 8, 16, 32, 64]),
        xaxis2=dict(domain=[0.62, 1.0], anchor="y2", type="log", tickvals=SIM_G,
                    title=dict(text=f"group size G (p = {p:g})")),
        yaxis2=dict(anchor="x2", range=[0, 1.02], title=dict(text="P(group has no spread)")),
        showlegend=False,
    )
    title = (
        f"p = {p:g}, G = {G}: P(no spread) = {here:.3f};"
        f" a batch of 64 such prompts has {64 * (1 - here):.1f} groups with spread on average<br>"
        f"<sup>right: line exact p^G + (1-p)^G; dots simulated, {SIM_GROUPS} groups each;"
        f" cross the chosen G</sup>"
    )
    note = None
    if p in (0.0, 1.0):
        # the curve lies at 1: the right panel below it is empty
        note = (f"p = {p:g}: every answer is {'right' if p else 'wrong'},<br>so every group is flat for<br>"
                "every G; no group size<br>rescues this prompt.", 0.81, 0.45)
    elif G == 2:
        # the top of the heat map (large G) is uniformly dark: nothing hidden there
        note = ("G = 2: the two answers<br>disagree with probability<br>2p(1-p), at most 1/2.", 0.19, 0.97)
    if note is not None:
        text, x, y = note
        layout["annotations"] = [{**annotation(text), "x": x, "xanchor": "center", "y": y, "yanchor": "top",
                                  "font": dict(size=12)}]
    return fast_figure(data, layout, height=450, title=title)


register(
    Explorer(
        name="collapse-probability",
        title="How often a group of 0/1 rewards has no spread: p^G + (1-p)^G",
        controls=[
            Slider("p", 0.0, 1.0, 0.01, 0.1, label="success rate p",
                   grid=[0.0, 0.01, 0.05, 0.1, 0.3, 0.5, 0.7, 0.9, 0.95, 0.99, 1.0], live_on_grid=True),
            Slider("G", 2, 64, 1, 8, label="group size G", grid=[2, 4, 8, 16, 32, 64], live_on_grid=True),
        ],
        figure=collapse_probability_figure,
    )
)

# ------------------------------------------------------------------ near-collapse

NEAR_G = 8
LEVEL = 7.0  # the notes' reward level (seed 7.1, scenario 1)
CURVE_SPREADS = [10 ** (k / 3) for k in range(-24, 4)]  # 1e-8 .. 10


@functools.lru_cache(maxsize=1)
def _unit_noise() -> torch.Tensor:
    """G seeded standard-normal draws, centred and scaled to population std exactly 1."""
    z = torch.randn(NEAR_G, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    z = z - z.mean()
    return z / z.std(correction=0)


def _fmt_size(x: float) -> str:
    return "0" if x == 0 else f"{x:.2g}"


def near_collapse_figure(spread: float = 1e-3, eps: float = 1e-8, std_floor: float = 0.1):
    """Advantages of one group ``7 + spread * z`` under three conventions, and their size vs spread."""
    rewards = LEVEL + spread * _unit_noise()
    rules = [
        ("GRPO: / (std + eps)", dict(eps=eps), "#4c72b0"),
        ("floor: / (max(std, floor) + eps)", dict(eps=eps, std_floor=std_floor), "#55a868"),
        ("Dr. GRPO: no division", dict(scale="none", eps=eps), "#dd8452"),
    ]
    answers = list(range(1, NEAR_G + 1))
    data, sizes = [], []
    for name, kw, colour in rules:
        adv = group_advantages(rewards, NEAR_G, **kw)
        sizes.append(float(adv.pow(2).mean().sqrt()))
        data.append(dict(type="bar", x=answers, y=[float(f"{a:.4g}") for a in adv.tolist()], name=name,
                         marker=dict(color=colour), legendgroup=name,
                         hovertemplate="answer %{x}: A = %{y:.3g}<extra></extra>"))
    curves = [
        advantage_scale(CURVE_SPREADS, eps=eps),
        advantage_scale(CURVE_SPREADS, eps=eps, std_floor=std_floor),
        advantage_scale(CURVE_SPREADS, scale="none"),
    ]
    for (name, _, colour), curve in zip(rules, curves):
        data.append(dict(type="scatter", x=CURVE_SPREADS, y=[float(f"{v:.3g}") for v in curve.tolist()],
                         mode="lines", line=dict(color=colour), showlegend=False, legendgroup=name,
                         xaxis="x2", yaxis="y2",
                         hovertemplate="spread %{x:.1e}: size %{y:.3g}<extra></extra>"))
    if spread > 0:
        data.append(dict(type="scatter", x=[spread] * 3, y=[max(s, 1e-9) for s in sizes], mode="markers",
                         marker=dict(color="black", size=9, symbol="x"), showlegend=False,
                         xaxis="x2", yaxis="y2", hovertemplate="this group<extra></extra>"))
    layout = dict(
        barmode="group",
        xaxis=dict(domain=[0.0, 0.44], title=dict(text=f"answer (rewards {LEVEL:g} + spread x noise)"), dtick=1),
        yaxis=dict(title=dict(text="advantage A")),
        xaxis2=dict(domain=[0.62, 1.0], anchor="y2", type="log", exponentformat="power",
                    title=dict(text="spread (population std of the group)")),
        yaxis2=dict(anchor="x2", type="log", range=[-9, 1.3], exponentformat="power",
                    title=dict(text="size of the advantages (RMS)")),
        legend=dict(orientation="h", x=0.0, y=1.02, yanchor="bottom"),
        margin=dict(t=100),
    )
    title = (
        f"spread {spread:g}, eps {eps:g}, floor {std_floor:g}: size of A = "
        f"{_fmt_size(sizes[0])} (GRPO), {_fmt_size(sizes[1])} (floor), {_fmt_size(sizes[2])} (Dr. GRPO)"
    )
    note = None
    if spread == 0:
        note = "Spread 0: all rewards equal,<br>every advantage exactly 0<br>(no gradient), whatever<br>eps or the floor."
    elif eps == 0 and std_floor == 0:
        note = "eps = 0, no floor: GRPO's<br>advantages have size 1 at<br>every spread; pure noise<br>becomes a full signal."
    elif sizes[0] > 0.5 and spread < 1e-2:
        note = "Rewards differ by noise<br>only, yet GRPO's advantages<br>have unit size: the tiny std<br>amplifies the noise."
    if note is not None:
        # in the empty lower right of the size panel, clear of the bars and the curves
        layout["annotations"] = [{**annotation(note), "x": 1.0, "xanchor": "right", "y": 0.03,
                                  "yanchor": "bottom", "font": dict(size=12)}]
    return fast_figure(data, layout, height=480, title=title)


register(
    Explorer(
        name="near-collapse",
        title="Near collapse: rewards that differ by noise, and what eps, a std floor or Dr. GRPO do",
        controls=[
            Slider("spread", 0.0, 1.0, 1e-6, 1e-3, label="spread (reward std)",
                   grid=[0.0, 1e-6, 1e-4, 1e-3, 1e-2, 0.1, 1.0], live_on_grid=True),
            Slider("eps", 0.0, 0.1, 1e-8, 1e-8, label="eps",
                   grid=[0.0, 1e-8, 1e-4, 1e-2, 0.1], live_on_grid=True),
            Slider("std_floor", 0.0, 1.0, 0.01, 0.1, label="std floor",
                   grid=[0.0, 0.01, 0.1, 1.0], live_on_grid=True),
        ],
        figure=near_collapse_figure,
    )
)
