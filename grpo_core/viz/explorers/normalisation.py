"""Explorer of the chapter 'Group reward normalisation': rewards in, advantages out.

Controls: the group size G, the reward distribution (and its main parameter), and the
normalisation convention. The figure shows the histogram of the rewards of ``B`` prompts x G
answers next to the histogram of their group advantages, with the share of groups whose
rewards are all equal (no signal) and the group statistics in the title.
"""

from __future__ import annotations

import numpy as np
import torch

from ...advantages import preset_advantages
from ..interactive import Choice, Explorer, Slider, register
from ..plots import fast_figure
from ...analysis.rewards import make_distribution

N_PROMPTS = 64  # B: enough groups for a histogram, few enough to stay fast
N_BINS = 30

DISTRIBUTION_CHOICES = {
    "Bernoulli(p): 0/1 verifier": "bernoulli",
    "Gaussian": "gaussian",
    "uniform": "uniform",
    "Beta(0.5, 0.5)": "beta",
    "two modes, weight p": "mixture",
    "nearly constant": "nearly-constant",
}

CONVENTIONS = {
    "population std (notes)": "seed-notes",
    "sample std (TRL, verl)": "trl",
    "no std (Dr. GRPO)": "dr-grpo",
}


def reward_distribution(name: str, p: float):
    """The distribution the explorer samples: ``p`` is Bernoulli's success rate and the
    mixture's weight of its first mode; the others use fixed parameters."""
    if name == "bernoulli":
        return make_distribution("bernoulli", p=p)
    if name == "mixture":
        return make_distribution("mixture", w=p, mu1=1.0, mu2=0.0, sigma=0.1)
    if name == "beta":
        return make_distribution("beta", a=0.5, b=0.5)
    if name == "gaussian":
        return make_distribution("gaussian", mu=0.5, sigma=0.2)
    if name == "uniform":
        return make_distribution("uniform", low=0.0, high=1.0)
    return make_distribution(name)


def _histogram(values: torch.Tensor) -> tuple[list[float], list[float], float]:
    """Bin centres, share of values per bin, bin width (NumPy: torch.histc is slow on small CPU inputs)."""
    v = values.detach().cpu().double().numpy()
    lo, hi = float(v.min()), float(v.max())
    if hi - lo < 1e-12:
        lo, hi = lo - 0.5, hi + 0.5
    counts, edges = np.histogram(v, bins=N_BINS, range=(lo, hi))
    centres = (edges[:-1] + edges[1:]) / 2
    return centres.round(6).tolist(), (counts / v.size).round(5).tolist(), (hi - lo) / N_BINS


def normalisation_figure(G: int = 8, distribution: str = "bernoulli", p: float = 0.3, convention: str = "seed-notes", seed: int = 0):
    """Histograms of the rewards of ``N_PROMPTS`` groups of G and of their advantages."""
    dist = reward_distribution(distribution, p)
    rewards = dist.sample(N_PROMPTS, G, seed=seed)
    adv = preset_advantages(rewards, G, convention)
    zero_spread = (rewards.amax(dim=1) == rewards.amin(dim=1)).float().mean().item()
    group_std = rewards.std(dim=1, correction=0)

    data = []
    for axis, values, colour in (("", rewards.flatten(), "#4c72b0"), ("2", adv.flatten(), "#dd8452")):
        x, y, width = _histogram(values)
        data.append(dict(type="bar", x=x, y=y, width=width, marker=dict(color=colour), showlegend=False,
                         xaxis="x" + axis, yaxis="y" + axis, hovertemplate="%{x:.3g}: %{y:.1%}<extra></extra>"))
    layout = dict(
        xaxis=dict(domain=[0.0, 0.45], title=dict(text="reward r")),
        yaxis=dict(title=dict(text="share of answers"), tickformat=".0%"),
        xaxis2=dict(domain=[0.55, 1.0], anchor="y2", title=dict(text="advantage A")),
        yaxis2=dict(anchor="x2", tickformat=".0%"),
    )
    title = (
        f"{dist.label}, G = {G}, {N_PROMPTS} prompts<br>"
        f"<sup>groups with all rewards equal: {zero_spread:.0%} · mean group std {group_std.mean().item():.3g}"
        f" · advantages: mean {round(adv.mean().item(), 2) + 0.0:+.2f}, std {adv.std(correction=0).item():.2f}, "
        f"max |A| {adv.abs().max().item():.2f}</sup>"
    )
    notes = []
    divides = convention != "dr-grpo"
    if zero_spread == 1.0:
        notes.append("Every group's rewards are equal, so every advantage is exactly 0:<br>"
                     "these prompts give GRPO no gradient at all.")
    elif distribution == "nearly-constant" and divides:
        notes.append((f"Rewards differ by about {dist.std:.0e}, yet the advantages have unit scale:<br>"
                      "dividing by a tiny std amplifies noise (see 'Signal collapse').", 0.85))
    elif G == 2 and divides:
        notes.append(("G = 2: whenever the two rewards differ, the advantages are +a and -a<br>"
                      "with the same a for every group; how much they differ no longer matters.", 0.85))
    return fast_figure(data, layout, height=420, title=title, notes=notes)


EXPLORER = register(
    Explorer(
        name="normalisation",
        title="Group normalisation: rewards of G answers per prompt -> advantages",
        controls=[
            Slider("G", 2, 16, 1, 8, label="G", grid=[2, 4, 8, 16]),
            Choice("distribution", DISTRIBUTION_CHOICES, "Bernoulli(p): 0/1 verifier", label="rewards"),
            Slider("p", 0.0, 1.0, 0.05, 0.3, label="p (Bernoulli rate, mixture weight)", grid=[0.0, 0.1, 0.3, 0.5, 0.9, 1.0]),
            Choice("convention", CONVENTIONS, "population std (notes)", label="convention"),
        ],
        figure=normalisation_figure,
    )
)
