"""Signal collapse: groups whose rewards (nearly) agree, how to measure it, and the mitigations.

When every answer of a group gets the same reward, its group advantages are 0 and the group adds
nothing to the gradient; when the rewards differ only by noise, the std division blows the noise up
to unit-sized advantages (book chapter 'Signal collapse', seed section 7). This module holds the
measurements a trainer logs and the mitigations the book compares, as small functions the trainers
call:

- :func:`zero_std_fraction`, :func:`zero_spread_probability`: how much of a batch is dead;
- :func:`dynamic_sampling_keep`: DAPO's filter, keep only groups with spread (the trainer resamples);
- :func:`threshold_advantages`: the notes' "absolute reward threshold": a group whose best answer is
  below the threshold is not reinforced;
- :class:`RunningBaseline` and :func:`global_baseline_advantages`: the notes' "light global
  baseline": groups without spread are scored against a running mean of past rewards;
- larger groups and a smoothed or floored std are options of :func:`grpo_core.group_advantages`
  (``group_size``, ``eps``, ``std_floor``).
"""

from __future__ import annotations

import math

import torch

from ._checks import check_finite, check_group_size, check_nonneg_number
from .advantages import _grouped, group_advantages

__all__ = [
    "zero_std_fraction",
    "zero_spread_probability",
    "dynamic_sampling_keep",
    "threshold_advantages",
    "RunningBaseline",
    "global_baseline_advantages",
]


def zero_std_fraction(rewards, group_size: int) -> float:
    """Share of groups whose rewards are all identical (TRL logs it as ``frac_reward_zero_std``)."""
    grouped, _ = _grouped(rewards, group_size)
    return float((grouped.amax(dim=1) == grouped.amin(dim=1)).double().mean())


def zero_spread_probability(p, group_size: int) -> torch.Tensor:
    """Probability that G Bernoulli(p) rewards are all equal: ``p**G + (1 - p)**G`` (book Eq. ``p-dead``).

    ``p`` may be a float or a tensor of probabilities in [0, 1]; returns a float64 tensor.
    """
    g = check_group_size(group_size)
    pt = torch.as_tensor(p, dtype=torch.float64)
    check_finite(pt, "p")
    if bool(((pt < 0) | (pt > 1)).any()):
        raise ValueError(f"`p` must lie in [0, 1] (a success probability); got {pt.tolist()}.")
    return pt**g + (1 - pt) ** g


def dynamic_sampling_keep(rewards, group_size: int) -> torch.Tensor:
    """DAPO's dynamic sampling filter: a bool per group, True where the rewards are not all equal.

    DAPO (Yu et al. 2025, section 3.2) drops the groups whose answers all got the same reward and
    samples more prompts until the batch is full of groups that carry a gradient; the resampling
    loop belongs to the trainer, this is the test it applies.
    """
    grouped, _ = _grouped(rewards, group_size)
    return grouped.amax(dim=1) != grouped.amin(dim=1)


def threshold_advantages(rewards, group_size: int, threshold: float, **advantage_kwargs) -> torch.Tensor:
    """Group advantages, except that a group whose *best* reward is below ``threshold`` gets 0.

    The notes' "absolute reward threshold" (seed 7.1, mitigation 3): inside a group of uniformly
    poor answers the least poor one would still get a positive advantage; with the threshold, such
    a group teaches nothing instead of reinforcing a bad answer. ``advantage_kwargs`` go to
    :func:`grpo_core.group_advantages`. Same shape as ``rewards``.
    """
    grouped, shape = _grouped(rewards, group_size)
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not math.isfinite(threshold):
        raise ValueError(f"`threshold` must be a finite number (a reward level); got {threshold!r}.")
    adv = group_advantages(grouped, group_size, **advantage_kwargs)
    below = grouped.amax(dim=1, keepdim=True) < threshold
    return torch.where(below, torch.zeros_like(adv), adv).reshape(shape)


class RunningBaseline:
    """A running mean and std of all rewards seen so far (exponential moving average).

    ``momentum`` is the weight of the past: after each :meth:`update` with a batch mean ``m``,
    ``mean <- momentum * mean + (1 - momentum) * m`` (the first batch sets it directly), and the
    same for the second moment. The notes' "light global baseline" (seed 7.1, mitigation 4).
    """

    def __init__(self, momentum: float = 0.9):
        m = check_nonneg_number(momentum, "momentum")
        if m >= 1.0:
            raise ValueError(f"`momentum` must be in [0, 1); got {momentum!r}.")
        self.momentum = m
        self.mean: float | None = None
        self._second: float | None = None

    @property
    def std(self) -> float:
        if self.mean is None:
            return float("nan")
        return math.sqrt(max(self._second - self.mean**2, 0.0))

    def update(self, rewards) -> None:
        r = torch.as_tensor(rewards, dtype=torch.float64)
        check_finite(r, "rewards")
        if r.numel() == 0:
            raise ValueError("`rewards` is empty; update the baseline with at least one reward.")
        m, s = float(r.mean()), float((r * r).mean())
        if self.mean is None:
            self.mean, self._second = m, s
        else:
            a = self.momentum
            self.mean = a * self.mean + (1 - a) * m
            self._second = a * self._second + (1 - a) * s


def global_baseline_advantages(rewards, group_size: int, baseline: RunningBaseline, *, eps: float = 1e-6, **advantage_kwargs) -> torch.Tensor:
    """Group advantages where they exist; ``(r - b) / (s + eps)`` for groups without spread.

    ``b`` and ``s`` are the running mean and std of ``baseline`` *before* this batch (call
    ``baseline.update(rewards)`` afterwards), so a group whose answers all succeeded still gets a
    positive advantage when the policy usually fails, and an all-failed group a negative one.
    Before the baseline has seen any reward it behaves like :func:`grpo_core.group_advantages`.
    """
    grouped, shape = _grouped(rewards, group_size)
    eps = check_nonneg_number(eps, "eps")
    adv = group_advantages(grouped, group_size, **advantage_kwargs)
    if baseline.mean is None:
        return adv.reshape(shape)
    flat = grouped.amax(dim=1, keepdim=True) == grouped.amin(dim=1, keepdim=True)
    fallback = (grouped - baseline.mean) / (baseline.std + eps)
    return torch.where(flat, fallback.to(adv.dtype), adv).reshape(shape)
