"""Explorers of the chapter 'The KL penalty'.

- ``kl-estimators``: pi_theta = N(0, 1) samples, pi_ref = N(mu, sigma^2) is the reader's; the
  histograms of k1, k2, k3 averaged over n samples (``REPS`` repetitions), against the exact KL
  and the exact per-sample moments of :func:`grpo_core.analysis.kl_analysis.gaussian_estimator_moments`.
- ``kl-beta``: GRPO on a toy policy with graded rewards (:data:`GRADED_BANDIT`) for one beta and
  one placement of the penalty (k3, k2 or k1 in the loss; k1 in the reward); exact KL and reward
  per step, and the run in the reward-KL plane against the frontier of the optimum
  :func:`grpo_core.analysis.kl_analysis.kl_regularised_optimum` and the point where the placement's
  expected update is zero.
- ``kl-controller``: GRPO on the default toy bandit with beta set by
  :class:`grpo_core.kl_control.AdaptiveKLController`; KL against the target and beta per step.

The two training explorers redraw on release and cache one run per grid point.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

from ...analysis.kl_runs import (
    BETA_STEPS,
    CONTROL_INIT_BETA,
    CONTROL_STEPS,
    CONTROL_TAIL,
    GRADED_BANDIT,
    beta_run,
    controller_run,
    fixed_run,
    kl_reward_point,
    target_point,
)
from ..interactive import Choice, Explorer, Slider, register
from ...analysis.kl_analysis import (
    gaussian_estimator_moments,
    gaussian_kl,
    kl_regularised_optimum,
    monte_carlo_kl,
    sample_gaussian_pair,
)
from ..plots import fast_figure

COLOURS = {"k1": "#4c72b0", "k2": "#dd8452", "k3": "#55a868"}

# ------------------------------------------------------------------------------- estimators

MAX_REPS = 2000  # batches of n samples per setting ...
SAMPLE_BUDGET = 32768  # ... but at most this many samples in all (fewer batches for large n)
MIN_REPS = 128


def n_reps(n: int) -> int:
    """How many batches of n samples the explorer draws: 2000, fewer for large n (speed)."""
    return int(min(MAX_REPS, max(MIN_REPS, SAMPLE_BUDGET // n)))


def _round(values, digits: int = 4) -> list[float]:
    return [round(float(v), digits) for v in values]


def estimator_figure(ref_mu: float = 0.5, ref_sigma: float = 1.0, n: int = 16, seed: int = 0):
    """Histograms of the n-sample estimates of KL(N(0,1) || N(ref_mu, ref_sigma^2)) by k1, k2, k3."""
    exact = gaussian_kl(0.0, 1.0, ref_mu, ref_sigma)
    moments = gaussian_estimator_moments(0.0, 1.0, ref_mu, ref_sigma)
    reps = n_reps(int(n))
    bins = 40 if reps >= 1000 else 20
    logp, ref_logp = sample_gaussian_pair(int(n), reps, ref_mu, ref_sigma, seed=seed)
    stats = monte_carlo_kl(logp, ref_logp, exact)
    pooled = torch.cat([s.estimates for s in stats.values()]).numpy()
    lo, hi = np.quantile(pooled, [0.005, 0.995])
    if hi - lo < 1e-9:
        lo, hi = lo - 0.5, hi + 0.5
    data = []
    for kind, s in stats.items():
        counts, edges = np.histogram(s.estimates.numpy(), bins=bins, range=(lo, hi))
        centres = (edges[:-1] + edges[1:]) / 2
        exact_std = moments[kind].std / math.sqrt(n)
        exact_txt = "inf" if math.isinf(exact_std) else f"{exact_std:.3g}"
        name = (f"{kind}: bias {round(s.bias, 4) + 0.0:+.4f}, std {s.std:.3g} (exact {exact_txt})"
                f", below 0: {s.negative_estimate_share:.0%}")
        data.append(dict(type="scatter", x=_round(centres), y=_round(counts / reps), mode="lines",
                         line=dict(shape="hvh", color=COLOURS[kind], width=2), name=name,
                         hovertemplate=f"{kind} " + "%{x:.3g}: %{y:.1%}<extra></extra>"))
    top = max(max(d["y"]) for d in data) * 1.08 or 1.0
    data.append(dict(type="scatter", x=[exact, exact], y=[0, top], mode="lines", name=f"exact KL = {exact:.4f}",
                     line=dict(color="#222", dash="dash", width=1.5), hoverinfo="skip"))
    layout = dict(
        xaxis=dict(title=dict(text=f"estimate of the KL from n = {n} samples (middle 99% shown)")),
        yaxis=dict(title=dict(text=f"share of {reps} batches"), tickformat=".0%", rangemode="tozero"),
        legend=dict(orientation="v", y=1.02, x=0.0, yanchor="bottom"),
        margin=dict(t=160),
    )
    title = (f"π_θ = N(0, 1) samples, π_ref = N({ref_mu:g}, {ref_sigma:g}²), n = {n}<br>"
             f"<sup>per sample: k1 std {moments['k1'].std:.3g}, k2 mean {moments['k2'].mean:.3g} (biased), "
             f"k3 std {moments['k3'].std:.3g}; k1 below 0 for {stats['k1'].negative_share:.0%} of samples, "
             f"k3 for {stats['k3'].negative_share:.0%}</sup>")
    notes = []
    if exact < 1e-12:
        notes.append(("π_ref = π_θ: every log-ratio is 0, so all three estimators<br>"
                      "return exactly 0, the true KL.", 0.6))
    elif ref_sigma * ref_sigma >= 2.0:
        notes.append(("π_ref is at least √2 times wider than π_θ: k3 has infinite variance here.<br>"
                      "Its histogram looks tame, but rare huge values keep its sample std from settling.", 0.8))
    # title pinned to the top, legend between it and the plot (fast_figure centres a title in the margin)
    layout["title"] = dict(text=title, x=0.02, xanchor="left", y=0.98, yanchor="top", yref="container",
                           font=dict(size=15))
    return fast_figure(data, layout, height=560, notes=notes)


register(
    Explorer(
        name="kl-estimators",
        title="KL estimators: k1, k2, k3 from n samples against the exact KL of two Gaussians",
        controls=[
            Slider("ref_mu", 0.0, 2.0, 0.1, 0.5, label="π_ref mean μ", grid=[0.0, 0.1, 0.5, 1.0, 2.0]),
            Slider("ref_sigma", 0.5, 2.0, 0.1, 1.0, label="π_ref std σ", grid=[0.5, 0.8, 1.0, 1.2, 1.5, 2.0]),
            Slider("n", 1, 256, 1, 16, label="samples n", grid=[1, 4, 16, 64, 256], live_on_grid=True),
        ],
        figure=estimator_figure,
    )
)

# ------------------------------------------------------------------------------- beta

FORMS = {
    "k3 in the loss (GRPO)": "loss-k3",
    "k2 in the loss": "loss-k2",
    "k1 in the loss (seed notes)": "loss-k1",
    "k1 in the reward (PPO for LMs)": "reward-k1",
}


@functools.lru_cache(maxsize=1)
def frontier() -> tuple[list[float], list[float]]:
    """(KL, reward) of the optimum pi*(beta') for beta' from 0.02 to 50: the best reward at each KL."""
    pts = [kl_reward_point(kl_regularised_optimum(GRADED_BANDIT.ref_probs, GRADED_BANDIT.rewards, b))
           for b in np.geomspace(0.02, 50.0, 60)]
    return _round([p[0] for p in pts]), _round([p[1] for p in pts])


def beta_figure(beta: float = 0.1, form: str = "loss-k3"):
    """KL and reward per step (left) and the run in the reward-KL plane (right)."""
    run = beta_run(beta, form)
    steps = list(range(1, BETA_STEPS + 1))
    fk, fr = frontier()
    best_kl, best_r = kl_reward_point(kl_regularised_optimum(GRADED_BANDIT.ref_probs, GRADED_BANDIT.rewards, beta))
    data = [
        dict(type="scatter", x=steps, y=_round(run["kl"]), mode="lines", name="KL, exact",
             line=dict(color="#4c72b0")),
        dict(type="scatter", x=steps, y=_round(run["reward"]), mode="lines", name="reward, exact",
             line=dict(color="#dd8452")),
        dict(type="scatter", x=fk, y=fr, mode="lines", name="π*(β′), all β′", xaxis="x2", yaxis="y2",
             line=dict(color="#8c8c8c", dash="dot")),
        dict(type="scatter", x=_round(run["kl"]), y=_round(run["reward"]), mode="lines", name="this run",
             xaxis="x2", yaxis="y2", line=dict(color="#4c72b0", width=1), opacity=0.7),
        dict(type="scatter", x=[round(best_kl, 4)], y=[round(best_r, 4)], mode="markers", xaxis="x2", yaxis="y2",
             name="π*(β), optimum", marker=dict(symbol="star", size=13, color="#c44e52")),
    ]
    target = target_point(beta, form)
    if target is not None and form != "reward-k1":
        data.append(dict(type="scatter", x=[round(target[0], 4)], y=[round(target[1], 4)], mode="markers",
                         xaxis="x2", yaxis="y2", name="expected update 0",
                         marker=dict(symbol="diamond", size=11, color="#55a868")))
    tail = slice(-30, None)
    end_kl, end_r = float(np.mean(run["kl"][tail])), float(np.mean(run["reward"][tail]))
    data.append(dict(type="scatter", x=[round(end_kl, 4)], y=[round(end_r, 4)], mode="markers", xaxis="x2",
                     yaxis="y2", name="run, last 30 steps",
                     marker=dict(symbol="circle", size=10, color="#4c72b0", line=dict(color="white", width=1))))
    layout = dict(
        xaxis=dict(domain=[0.0, 0.33], title=dict(text="step")),
        yaxis=dict(title=dict(text="nats / reward"), rangemode="tozero"),
        xaxis2=dict(domain=[0.43, 0.76], anchor="y2", title=dict(text="KL(π_θ‖π_ref)"), rangemode="tozero"),
        yaxis2=dict(anchor="x2", title=dict(text="expected reward"), range=[0.25, 1.02]),
        legend=dict(orientation="v", y=1.0, x=0.79, yanchor="top", font=dict(size=11)),
    )
    label = next(k for k, v in FORMS.items() if v == form)
    title = (f"β = {beta:g}, {label}: {BETA_STEPS} steps, mean-only advantages<br>"
             f"<sup>last 30 steps: KL {end_kl:.3f}, reward {end_r:.3f}; "
             f"optimum π*(β): KL {best_kl:.3f}, reward {best_r:.3f}</sup>")
    notes = []
    if beta == 0:
        notes.append(("β = 0: no penalty, every placement is the same run;<br>the KL keeps growing.", 0.25))
    elif form == "loss-k1":
        notes.append(("k1 in the loss has zero expected gradient:<br>whatever β, the run is an unpenalised one plus noise.", 0.25))
    return fast_figure(data, layout, height=440, title=title, notes=notes)


register(
    Explorer(
        name="kl-beta",
        title="β and where the penalty goes: KL and reward of a toy policy trained by GRPO",
        controls=[
            Slider("beta", 0.0, 3.0, 0.01, 0.1, label="β", grid=[0.0, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0], live_on_grid=True),
            Choice("form", FORMS, "k3 in the loss (GRPO)", label="penalty"),
        ],
        figure=beta_figure,
        continuous_update=False,
    )
)

# ------------------------------------------------------------------------------- controller

def controller_figure(target: float = 0.5, k_beta: float = 0.1):
    """KL per step against the target (top) and beta per step (bottom, log scale)."""
    run, fixed = controller_run(target, k_beta), fixed_run()
    steps = list(range(1, CONTROL_STEPS + 1))
    data = [
        dict(type="scatter", x=steps, y=_round(fixed["kl"]), mode="lines", name=f"fixed β = {CONTROL_INIT_BETA:g}",
             line=dict(color="#8c8c8c", dash="dot")),
        dict(type="scatter", x=steps, y=_round(run["kl"]), mode="lines", name="adaptive β: KL",
             line=dict(color="#4c72b0")),
        dict(type="scatter", x=[1, CONTROL_STEPS], y=[target, target], mode="lines", name="KL target",
             line=dict(color="#c44e52", dash="dash")),
        dict(type="scatter", x=steps, y=_round(run["beta"], 5), mode="lines", name="adaptive β: β",
             xaxis="x2", yaxis="y2", line=dict(color="#dd8452")),
    ]
    tail = run["kl"][-CONTROL_TAIL:]
    layout = dict(
        xaxis=dict(domain=[0, 1], anchor="y", matches="x2", showticklabels=False),
        yaxis=dict(domain=[0.45, 1.0], title=dict(text="exact KL"), rangemode="tozero"),
        xaxis2=dict(domain=[0, 1], anchor="y2", title=dict(text="step")),
        yaxis2=dict(domain=[0.0, 0.33], title=dict(text="β"), type="log"),
        legend=dict(orientation="h", y=1.02, x=0.0, yanchor="bottom"),
        margin=dict(t=115),
    )
    title = (f"KL target {target:g}, gain K_β = {k_beta:g}, start β = {CONTROL_INIT_BETA:g}<br>"
             f"<sup>last {CONTROL_TAIL} steps: KL mean {np.mean(tail):.3f} (min {min(tail):.3f}, max {max(tail):.3f}); "
             f"final β {run['beta'][-1]:.3g}</sup>")
    notes = []
    if abs(np.mean(tail) / target - 1) > 0.2:
        notes.append((f"Not holding the target: with gain {k_beta:g}, β can change by at most a factor<br>"
                      f"{(1 + 0.2 * k_beta) ** CONTROL_STEPS:.3g} in {CONTROL_STEPS} steps, "
                      "not enough to catch up with the policy.", 0.75))
    return fast_figure(data, layout, height=520, title=title, notes=notes)


register(
    Explorer(
        name="kl-controller",
        title="An adaptive β holding a KL target (Ziegler et al. 2019) on the toy policy",
        controls=[
            Slider("target", 0.1, 1.5, 0.05, 0.5, label="KL target", grid=[0.1, 0.2, 0.5, 1.0, 1.5], live_on_grid=True),
            Slider("k_beta", 0.01, 0.3, 0.01, 0.1, label="gain K_β", grid=[0.01, 0.03, 0.1, 0.3], live_on_grid=True),
        ],
        figure=controller_figure,
        continuous_update=False,
    )
)
