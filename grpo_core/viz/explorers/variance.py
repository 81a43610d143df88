"""Explorer of the chapter 'Variance of the advantage and of the gradient': G, difficulty, estimator.

Controls: the group size G, the difficulty of the prompts (their success rates) and the gradient
estimator (the baseline, with or without the std division). Left: a cloud of gradient estimates,
each from one batch of G answers per prompt (Monte Carlo), drawn in the plane of the true
gradient: the horizontal axis is the component along the true gradient, the vertical axis the
length of the rest, both in units of the true gradient's length, so the true gradient is the
point (1, 0). Right: the exact noise-to-signal ratio ``trace(Cov) / ||E g||**2`` of every
estimator against G, divided by that of the ideal critic (the exact expected reward as
baseline), the chosen one highlighted. The title gives the exact cosine and
norm ratio of the mean estimate against the true gradient (the bias of the std division).
"""

from __future__ import annotations

import contextlib
import functools
import math

import torch

from ..interactive import Choice, Explorer, Slider, register
from ..plots import annotation, fast_figure
from ...analysis.variance import (
    ESTIMATORS,
    estimator_summary,
    exact_estimator_moments,
    gradient_estimates,
    make_prompt_bandits,
    true_gradient,
)

N_CLOUD = 200  # gradient estimates drawn per redraw: enough to see the spread, cheap to send
CURVE_G = (2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64)

DIFFICULTIES = {
    "mixed: p = 0.05, 0.3, 0.6, 0.9": (0.05, 0.3, 0.6, 0.9),
    "all medium: p = 0.5 (x4)": (0.5, 0.5, 0.5, 0.5),
    "hard: p = 0.02, 0.05, 0.1, 0.2": (0.02, 0.05, 0.1, 0.2),
    "one medium, one easy: p = 0.5, 0.97": (0.5, 0.97),
}

ESTIMATOR_CHOICES = {
    "no baseline": "none",
    "ideal critic (exact V)": "critic",
    "fitted critic (8 earlier samples)": "learned-critic",
    "RLOO (leave-one-out)": "rloo",
    "Dr. GRPO (group mean)": "dr-grpo",
    "GRPO (mean and std)": "grpo",
}
_LABEL = {v: k for k, v in ESTIMATOR_CHOICES.items()}
_COLOUR = dict(zip(ESTIMATORS, ["#8c8c8c", "#55a868", "#8172b3", "#da8bc3", "#4c72b0", "#dd8452"]))


@contextlib.contextmanager
def _one_thread():
    """Run small tensor code on one thread: on a busy 2-core machine torch's thread pool makes a
    4 x 8 softmax take milliseconds instead of microseconds. Restores the previous setting."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@functools.lru_cache(maxsize=None)
def prompt_set(success: tuple):
    """The prompt set of a difficulty preset (cached: the same object every time)."""
    return make_prompt_bandits(success)


def exact_summaries(success: tuple, G: int) -> dict[str, dict]:
    """Exact :func:`estimator_summary` of every estimator for the preset ``success`` and G."""
    ps = prompt_set(success)
    truth = true_gradient(ps)
    out = {}
    for name in ESTIMATORS:
        mom = exact_estimator_moments(ps, G, name)
        out[name] = {**estimator_summary(mom["mean"], mom["trace_cov"], truth), "trace_cov": mom["trace_cov"]}
    return out


@functools.lru_cache(maxsize=None)
def noise_curves(success: tuple) -> dict[str, list[float]]:
    """Exact noise-to-signal ratio of every estimator at each G of :data:`CURVE_G`, divided by the
    ideal critic's at the same G (cached per preset)."""
    rows = [exact_summaries(success, g) for g in CURVE_G]
    return {
        name: [round(r[name]["noise_to_signal"] / r["critic"]["noise_to_signal"], 5) for r in rows]
        for name in ESTIMATORS
    }


def _cloud(success: tuple, G: int, estimator: str, seed: int):
    """Monte Carlo estimates in the plane of the true gradient: (along, across) / ||grad J||."""
    ps = prompt_set(success)
    truth = true_gradient(ps).reshape(-1)
    norm = truth.norm()
    u = truth / norm
    est = gradient_estimates(ps, G, estimator, N_CLOUD, seed=seed).reshape(N_CLOUD, -1)
    along = est @ u
    across = (est - along[:, None] * u).norm(dim=1)
    return (along / norm).tolist(), (across / norm).tolist()


def _r(values, digits=3):
    return [float(f"{v:.{digits}g}") for v in values]


def variance_figure(G: int = 8, difficulty: tuple = (0.05, 0.3, 0.6, 0.9), estimator: str = "grpo", seed: int = 0):
    """Cloud of gradient estimates around the true gradient, and noise-to-signal against G."""
    with _one_thread():
        success = tuple(float(s) for s in difficulty)
        summaries = exact_summaries(success, G)
        curves = noise_curves(success)
        x, y = _cloud(success, G, estimator, seed)
    s = summaries[estimator]
    colour = _COLOUR[estimator]

    mean_along = s["norm_ratio"] * s["cosine"]
    mean_across = s["norm_ratio"] * math.sqrt(max(0.0, 1.0 - s["cosine"] ** 2))
    # Axis ranges from this cloud, the true gradient (1, 0), the origin and the mean estimate.
    lo = min(-0.25, min(x), mean_along)
    hi = max(1.25, max(x), mean_along)
    pad = 0.08 * (hi - lo)
    top = 1.08 * max(0.5, max(y), mean_across)
    data = [
        dict(type="scatter", x=_r(x), y=_r(y), mode="markers", name="estimates (one batch each)",
             marker=dict(size=5, color=colour, opacity=0.45), hovertemplate="along %{x:.2f}, across %{y:.2f}<extra></extra>"),
        dict(type="scatter", x=[round(mean_along, 4)], y=[round(mean_across, 4)], mode="markers", name="mean estimate (exact)",
             marker=dict(size=13, color=colour, symbol="diamond", line=dict(color="black", width=1.5))),
        dict(type="scatter", x=[1.0], y=[0.0], mode="markers", name="true gradient",
             marker=dict(size=16, color="black", symbol="star")),
    ]
    for name in ESTIMATORS:
        chosen = name == estimator
        data.append(dict(type="scatter", x=list(CURVE_G), y=curves[name], mode="lines", xaxis="x2", yaxis="y2",
                         name=_LABEL[name],
                         line=dict(color=_COLOUR[name], width=4 if chosen else 1.5, dash="solid" if chosen else "dot"),
                         hovertemplate=f"{_LABEL[name]}<br>G = %{{x}}: %{{y:.3g}}<extra></extra>"))
    ideal = summaries["critic"]["noise_to_signal"]
    data.append(dict(type="scatter", x=[G], y=[round(s["noise_to_signal"] / ideal, 5)], mode="markers", xaxis="x2", yaxis="y2",
                     showlegend=False, marker=dict(size=11, color=colour, line=dict(color="black", width=1.5)),
                     hovertemplate="G = %{x}: %{y:.3g}<extra></extra>"))
    layout = dict(
        xaxis=dict(domain=[0.0, 0.46], range=[round(lo - pad, 3), round(hi + pad, 3)], title=dict(text="along the true gradient (units of |∇J|)")),
        yaxis=dict(domain=[0.3, 1.0], range=[0.0, round(top, 3)], title=dict(text="across it (units of |∇J|)")),
        xaxis2=dict(domain=[0.58, 1.0], anchor="y2", type="log", title=dict(text="G (answers per prompt)"),
                    tickvals=[2, 4, 8, 16, 32, 64]),
        yaxis2=dict(anchor="x2", domain=[0.3, 1.0], range=[0.0, round(1.1 * max(max(c) for c in curves.values()), 3)], title=dict(text="noise-to-signal / ideal critic's")),
        # the legend sits in the bottom band of the plot area, under the axis titles, so that the
        # static book's slider (below the plot area) never covers it
        legend=dict(orientation="h", x=0.0, y=0.0, xanchor="left", yanchor="bottom", font=dict(size=11)),
        margin=dict(b=20),
    )
    probs = ", ".join(f"{p:g}" for p in success)
    title = (
        f"{_LABEL[estimator]}, G = {G}, success rates {probs}<br>"
        f"<sup>exact: noise-to-signal {s['noise_to_signal']:.3g} · cos(E g, ∇J) = {s['cosine']:.4f}"
        f" · |E g| / |∇J| = {s['norm_ratio']:.3f}</sup>"
    )
    notes = []
    if G == 2 and estimator in ("rloo", "dr-grpo", "grpo"):
        notes.append(("G = 2: with 0/1 rewards the three group<br>baselines give the same direction<br>"
                      "(advantages ±c when the rewards differ,<br>0 otherwise):<br>"
                      "same noise-to-signal, different scale.", 0.9))
    elif estimator == "grpo" and len(set(success)) == 1:
        notes.append(("All prompts equally hard: the std division<br>scales every prompt alike, so GRPO's mean<br>"
                      "gradient keeps the true direction.", 0.9))
    # Notes sit over the left panel (fast_figure's notes are centred on the whole figure,
    # where they would cover the right panel's axis).
    layout["annotations"] = [{**annotation(text, y=y), "x": 0.23, "font": dict(size=12)} for text, y in notes]
    return fast_figure(data, layout, height=540, title=title)


EXPLORER = register(
    Explorer(
        name="variance",
        title="Gradient estimates around the true gradient: G, prompt difficulty, baseline",
        controls=[
            Slider("G", 2, 64, 1, 8, label="G", grid=[2, 4, 8, 16, 32, 64]),
            Choice("difficulty", DIFFICULTIES, "mixed: p = 0.05, 0.3, 0.6, 0.9", label="prompts"),
            Choice("estimator", ESTIMATOR_CHOICES, "GRPO (mean and std)", label="estimator"),
        ],
        figure=variance_figure,
    )
)
