"""Explorers of the chapter 'Deriving the GRPO objective'.

- ``clip``: the clipped surrogate ``min(r A, clip(r, 1 - eps_low, 1 + eps_high) A)`` as a function
  of the ratio r, for a positive and a negative advantage of the chosen size, with its derivative
  in r below. The region where the clip switches the gradient off is shaded.
- ``aggregation``: a group of four answers of different lengths; the weight each of their tokens
  gets from each loss-aggregation mode, and the total weight of each answer.

Both figures come from ``grpo_core`` itself (:func:`grpo_core.clipped_surrogate` with autograd,
:func:`grpo_core.objective.aggregation_weights`), evaluated at a handful of points: the surrogate
is piecewise linear in r, so its breakpoints draw it exactly and keep the static figure small.
"""

from __future__ import annotations

import torch

from ..interactive import Choice, Explorer, Slider, register
from ...objective import AGGREGATIONS, aggregation_weights, clipped_surrogate
from ..plots import fast_figure

R_MIN, R_MAX = 0.01, 2.0  # ratio axis (0 itself has log-ratio -inf)
CLIP_SHADE = "rgba(196, 78, 82, 0.13)"
POS, NEG = "#4c72b0", "#dd8452"


def _surrogate_and_slope(ratios: list[float], adv: float, eps_low: float, eps_high: float):
    """Surrogate value at ``ratios`` and its derivative in r (autograd through log r)."""
    r = torch.tensor(ratios, dtype=torch.float64)
    logp = r.log().requires_grad_(True)
    adv_t = torch.full_like(r, adv)
    value = clipped_surrogate(logp, torch.zeros_like(r), adv_t, eps_low, eps_high)
    (grad,) = torch.autograd.grad(value.sum(), logp)
    return value.detach(), grad / r  # d/d log r = r d/dr


def _r(x: float) -> float:
    return round(float(x), 6) + 0.0


def clip_figure(eps_low: float = 0.2, eps_high: float = 0.2, adv: float = 1.0):
    """Value and slope of the clipped surrogate against the ratio, for A = +adv and A = -adv."""
    lo, hi = 1.0 - eps_low, 1.0 + eps_high
    breaks = sorted({R_MIN, R_MAX, 1.0} | {x for x in (lo, hi) if R_MIN < x < R_MAX})
    mids = [(a + b) / 2 for a, b in zip(breaks[:-1], breaks[1:])]
    data, shapes = [], []
    for col, (sign, colour) in enumerate(((1.0, POS), (-1.0, NEG))):
        a = sign * adv
        value, _ = _surrogate_and_slope(breaks, a, eps_low, eps_high)
        _, slope = _surrogate_and_slope(mids, a, eps_low, eps_high)
        xa, xb = ("x", "x3") if col == 0 else ("x2", "x4")
        ya, yb = ("y", "y3") if col == 0 else ("y2", "y4")
        name = f"A = {a:+g}"
        data.append(dict(type="scatter", x=[R_MIN, R_MAX], y=[_r(R_MIN * a), _r(R_MAX * a)], mode="lines",
                         line=dict(color="#8c8c8c", dash="dot", width=1.5), name="r·A (unclipped)",
                         showlegend=col == 0, legendgroup="raw", xaxis=xa, yaxis=ya, hoverinfo="skip"))
        data.append(dict(type="scatter", x=[_r(x) for x in breaks], y=[_r(v) for v in value.tolist()],
                         mode="lines+markers", line=dict(color=colour, width=3), marker=dict(size=5),
                         name=f"surrogate, {name}", xaxis=xa, yaxis=ya,
                         hovertemplate="r = %{x:.3f}<br>value = %{y:.3f}<extra></extra>"))
        # slope: constant on each segment, drawn as steps
        xs, ys = [], []
        for (x0, x1), s in zip(zip(breaks[:-1], breaks[1:]), slope.tolist()):
            xs += [_r(x0), _r(x1), None]
            ys += [_r(s), _r(s), None]
        data.append(dict(type="scatter", x=xs, y=ys, mode="lines", line=dict(color=colour, width=3),
                         name=f"d/dr, {name}", showlegend=False, xaxis=xb, yaxis=yb,
                         hovertemplate="r = %{x:.3f}<br>d/dr = %{y:.3f}<extra></extra>"))
        # shade where the clip switches the gradient off
        if adv > 0:
            x0, x1 = (hi, R_MAX) if sign > 0 else (R_MIN, lo)
            if x1 > x0:
                for axis_x, axis_y in ((xa, ya), (xb, yb)):
                    shapes.append(dict(type="rect", xref=axis_x, yref=f"{axis_y} domain", x0=_r(x0), x1=_r(x1),
                                       y0=0, y1=1, fillcolor=CLIP_SHADE, line=dict(width=0), layer="below"))
        for x in (lo, hi):
            if R_MIN < x < R_MAX:
                for axis_x, axis_y in ((xa, ya), (xb, yb)):
                    shapes.append(dict(type="line", xref=axis_x, yref=f"{axis_y} domain", x0=_r(x), x1=_r(x),
                                       y0=0, y1=1, line=dict(color="#8c8c8c", width=1, dash="dash")))
    top = max(2.0 * adv, 0.5)
    axis_x = dict(range=[0, R_MAX])
    layout = dict(
        xaxis=dict(domain=[0.0, 0.46], anchor="y", **axis_x, showticklabels=False),
        yaxis=dict(domain=[0.6, 1.0], anchor="x", title=dict(text="surrogate value"), range=[-top * 1.05, top * 1.05]),
        xaxis2=dict(domain=[0.54, 1.0], anchor="y2", **axis_x, showticklabels=False),
        yaxis2=dict(domain=[0.6, 1.0], anchor="x2", range=[-top * 1.05, top * 1.05]),
        xaxis3=dict(domain=[0.0, 0.46], anchor="y3", **axis_x, title=dict(text="ratio r = π_θ / π_old")),
        yaxis3=dict(domain=[0.0, 0.36], anchor="x3", title=dict(text="d value / d r"), range=[-max(adv, 0.5) * 1.3, max(adv, 0.5) * 1.3]),
        xaxis4=dict(domain=[0.54, 1.0], anchor="y4", **axis_x, title=dict(text="ratio r = π_θ / π_old")),
        yaxis4=dict(domain=[0.0, 0.36], anchor="x4", range=[-max(adv, 0.5) * 1.3, max(adv, 0.5) * 1.3]),
        shapes=shapes,
        showlegend=False,
        annotations=[
            dict(text=f"<b>A = +{adv:g}</b>", xref="paper", yref="paper", x=0.23, y=1.0, xanchor="center", yanchor="bottom", showarrow=False),
            dict(text=f"<b>A = −{adv:g}</b>", xref="paper", yref="paper", x=0.77, y=1.0, xanchor="center", yanchor="bottom", showarrow=False),
        ],
    )
    title = (f"Clipped surrogate against the ratio, clip range [{lo:g}, {hi:g}]<br>"
             f"<sup>dotted: r·A without the clip · shaded: the clip is active and the gradient is exactly 0</sup>")
    notes = []
    if adv == 0:
        notes.append(("A = 0: the surrogate is 0 for every ratio; this answer teaches nothing.", 0.48))
    elif eps_low == 0 and eps_high == 0:
        notes.append(("ε = 0: any move of the ratio in the direction A favours is clipped at once.<br>"
                      "Only at r = 1 exactly (the first inner step) does the gradient get through.", 0.48))
    elif lo <= R_MIN and hi >= R_MAX:
        notes.append(("Clip range this wide: inside [0, 2] the clip never acts.", 0.48))
    elif eps_high > eps_low:
        notes.append((f"Clip-higher (DAPO): the upper range {eps_high:g} is wider than the lower {eps_low:g};<br>"
                      "a good token may gain more probability per batch before its gradient stops.", 0.48))
    elif eps_high < eps_low:
        notes.append((f"The upper range {eps_high:g} is narrower than the lower {eps_low:g}:<br>"
                      "the reverse of DAPO's clip-higher; good tokens stop sooner than bad ones.", 0.48))
    return fast_figure(data, layout, height=520, title=title, notes=notes)


# ---------------------------------------------------------------------------------- aggregation

MAX_LEN = 1024  # the constant of Dr. GRPO's mode: a generation limit
LENGTH_PATTERNS = {
    "others 100, 100, 100": (100, 100, 100),
    "others 20, 100, 300": (20, 100, 300),
    "others 20, 20, 20": (20, 20, 20),
}
MODE_LABELS = {
    "seq-mean-token-mean (DeepSeekMath)": "seq-mean-token-mean",
    "token-mean (DAPO)": "token-mean",
    "seq-mean-token-sum": "seq-mean-token-sum",
    "seq-mean-token-sum-norm (Dr. GRPO)": "seq-mean-token-sum-norm",
}
assert set(MODE_LABELS.values()) == set(AGGREGATIONS)


def aggregation_figure(long: int = 500, others: str = "others 100, 100, 100", mode: str = "seq-mean-token-mean"):
    """Per-token weight and total weight of each of four answers, for one aggregation mode."""
    lengths = (int(long),) + tuple(LENGTH_PATTERNS[others])
    width = max(max(lengths), 1)
    mask = torch.arange(width)[None, :] < torch.tensor(lengths)[:, None]
    w = aggregation_weights(mask.double(), mode, max_len=MAX_LEN)
    per_token = [float(w[i, 0]) if lengths[i] > 0 else 0.0 for i in range(4)]
    total = w.sum(dim=1).tolist()
    names = [f"answer {i + 1}<br>{n} tokens" for i, n in enumerate(lengths)]
    colours = ["#c44e52", "#4c72b0", "#4c72b0", "#4c72b0"]
    data = [
        dict(type="bar", x=names, y=[_r(v * 1000) for v in per_token], marker=dict(color=colours), showlegend=False,
             text=[f"{v * 1000:.3g}" for v in per_token], textposition="outside", cliponaxis=False,
             hovertemplate="%{x}<br>weight of one token: %{y:.4g} × 10⁻³<extra></extra>"),
        dict(type="bar", x=names, y=[_r(v) for v in total], marker=dict(color=colours), showlegend=False,
             text=[f"{v:.3g}" for v in total], textposition="outside", cliponaxis=False,
             xaxis="x2", yaxis="y2", hovertemplate="%{x}<br>total weight: %{y:.4g}<extra></extra>"),
    ]
    layout = dict(
        xaxis=dict(domain=[0.0, 0.46]),
        yaxis=dict(title=dict(text="weight of one token (× 10⁻³)"), range=[0, _r(1450 * max(per_token))]),
        xaxis2=dict(domain=[0.56, 1.0], anchor="y2"),
        yaxis2=dict(anchor="x2", title=dict(text="total weight of the answer"), range=[0, _r(1.45 * max(total))]),
    )
    ratio = per_token[1] / per_token[0]
    title = (f"{mode}: a group of 4 answers, lengths {', '.join(map(str, lengths))}<br>"
             f"<sup>one token of answer 2 weighs {ratio:.3g} × one token of answer 1 · "
             f"total weight of the group {sum(total):.3g}"
             + (f" (max_len = {MAX_LEN})" if mode == "seq-mean-token-sum-norm" else "") + "</sup>")
    notes = []
    if mode == "seq-mean-token-mean" and len(set(lengths)) > 1:
        notes.append(("Each answer weighs 1/4 in total; a long answer's tokens share it (length bias).", 0.93))
    elif len(set(lengths)) == 1:
        notes.append(("Equal lengths: every mode weighs every token alike, up to a constant.", 0.93))
    return fast_figure(data, layout, height=430, title=title, notes=notes)


CLIP = register(
    Explorer(
        name="clip",
        title="The clipped surrogate against the ratio: value, slope, and where the gradient is zero",
        controls=[
            Slider("eps_low", 0.0, 1.0, 0.01, 0.2, label="ε_low", grid=[0.0, 0.1, 0.2, 0.3, 0.5]),
            Slider("eps_high", 0.0, 1.0, 0.01, 0.2, label="ε_high", grid=[0.0, 0.1, 0.2, 0.28, 0.5]),
            Slider("adv", 0.0, 2.0, 0.1, 1.0, label="|A|", grid=[0.0, 0.5, 1.0, 2.0]),
        ],
        figure=clip_figure,
    )
)

AGGREGATION = register(
    Explorer(
        name="aggregation",
        title="Loss aggregation: how much one token of each answer weighs",
        controls=[
            Slider("long", 1, 1000, 1, 500, label="length of answer 1", grid=[10, 50, 100, 200, 500, 1000]),
            Choice("others", {k: k for k in LENGTH_PATTERNS}, "others 100, 100, 100", label="answers 2-4"),
            Choice("mode", MODE_LABELS, "seq-mean-token-mean (DeepSeekMath)", label="mode"),
        ],
        figure=aggregation_figure,
    )
)
