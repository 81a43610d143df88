"""The KL chapter's toy runs: GRPO on a bandit with the penalty placed and sized in different ways.

- :func:`beta_run`: GRPO with mean-only advantages on :data:`GRADED_BANDIT` for one beta and one
  placement of the penalty (``"loss-k3"``, ``"loss-k2"``, ``"loss-k1"``: the estimator in the
  loss; ``"reward-k1"``: k1 in the reward, as PPO for language models does), and
  :func:`target_point`, where that placement's expected update is zero;
- :func:`controller_run`: the default toy GRPO with beta set by
  :class:`grpo_core.AdaptiveKLController`, and :func:`fixed_run`, the same with a fixed beta.

Each run is cached in memory (the explorers of :mod:`grpo_core.viz.explorers.kl` draw them).
"""

from __future__ import annotations

import functools

import torch

from ..kl_control import AdaptiveKLController
from .kl_analysis import categorical_kl, k3_loss_fixed_point, kl_regularised_optimum
from .toy import Bandit, ToyConfig, make_bandit, train_toy

__all__ = ["GRADED_BANDIT", "BETA_STEPS", "BETA_CONFIG", "PLACEMENTS", "beta_run", "kl_reward_point", "target_point",
           "CONTROL_STEPS", "CONTROL_INIT_BETA", "CONTROL_TAIL", "controller_run", "fixed_run"]

#: The placements of the penalty :func:`beta_run` compares: where the KL goes and which estimator.
PLACEMENTS = ("loss-k3", "loss-k2", "loss-k1", "reward-k1")

#: Six answers with graded rewards; pi_ref favours the worse ones, as a base model might.
GRADED_BANDIT = Bandit(
    rewards=torch.tensor([1.0, 0.8, 0.6, 0.4, 0.2, 0.0], dtype=torch.float64),
    ref_logits=torch.tensor([0.05, 0.1, 0.15, 0.2, 0.25, 0.25], dtype=torch.float64).log(),
)
BETA_STEPS = 150
BETA_CONFIG = dict(steps=BETA_STEPS, lr=1.0, advantages="dr-grpo")  # mean-only advantages

@functools.lru_cache(maxsize=64)
def beta_run(beta: float, form: str) -> dict:
    """One cached toy run: GRPO (mean-only advantages) on :data:`GRADED_BANDIT`."""
    kl_in, kl = form.split("-")
    hist = train_toy(GRADED_BANDIT, ToyConfig(beta=float(beta), kl=kl, kl_in=kl_in, **BETA_CONFIG))
    return {k: hist[k] for k in ("reward", "kl")}


def kl_reward_point(probs: torch.Tensor) -> tuple[float, float]:
    """``(KL(probs || pi_ref), expected reward)`` of a policy over :data:`GRADED_BANDIT`'s answers."""
    return categorical_kl(probs, GRADED_BANDIT.ref_probs), float(probs @ GRADED_BANDIT.rewards)


def target_point(beta: float, form: str, G: int = 8):
    """Where this placement's expected update is zero (mean-only advantages carry a factor (G-1)/G)."""
    ref, r = GRADED_BANDIT.ref_probs, GRADED_BANDIT.rewards
    if form == "reward-k1":
        return kl_reward_point(kl_regularised_optimum(ref, r, beta))
    if form == "loss-k2":
        return kl_reward_point(kl_regularised_optimum(ref, r, beta * G / (G - 1)))
    if form == "loss-k3":
        return kl_reward_point(k3_loss_fixed_point(ref, r * (G - 1) / G, beta))
    return None  # k1 in the loss: zero expected gradient, no fixed point of its own


CONTROL_STEPS = 160
CONTROL_INIT_BETA = 0.3
CONTROL_TAIL = 60  # the last steps over which the chapter and the explorer average the KL


@functools.lru_cache(maxsize=64)
def controller_run(target: float, k_beta: float) -> dict:
    """One cached run of the default toy GRPO with beta set by the adaptive controller."""
    ctl = AdaptiveKLController(CONTROL_INIT_BETA, target, k_beta=k_beta)
    hist = train_toy(make_bandit(), ToyConfig(steps=CONTROL_STEPS), kl_controller=ctl)
    return {k: hist[k] for k in ("kl", "beta", "reward")}


@functools.lru_cache(maxsize=1)
def fixed_run() -> dict:
    """The run of :func:`controller_run` with beta fixed at :data:`CONTROL_INIT_BETA`."""
    hist = train_toy(make_bandit(), ToyConfig(steps=CONTROL_STEPS, beta=CONTROL_INIT_BETA))
    return {k: hist[k] for k in ("kl", "beta", "reward")}
