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
  (``group_size``, ``eps``, ``std_floor``);
- :func:`group_reward_std`, :func:`collapse_metrics`: the within-group reward std and the
  collapse metrics a trainer logs every step;
- :func:`advantage_scale`: the closed-form size of a group's advantages as its spread shrinks
  (book Eq. ``adv-scale``), which shows the noise amplification near collapse.
"""

from __future__ import annotations

import math

import torch

from ._checks import check_choice, check_finite, check_group_size, check_nonneg_number
from .advantages import _grouped, group_advantages

__all__ = [
    "zero_std_fraction",
    "zero_spread_probability",
    "expected_zero_spread",
    "dynamic_sampling_keep",
    "threshold_advantages",
    "RunningBaseline",
    "global_baseline_advantages",
    "group_reward_std",
    "collapse_metrics",
    "advantage_scale",
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


def expected_zero_spread(a: float, b: float, group_size: int) -> float:
    """Share of groups without spread when each prompt's success rate is ``p ~ Beta(a, b)``.

    Averaging :func:`zero_spread_probability` over the prompts of a dataset whose difficulties
    follow ``Beta(a, b)`` (the ``"bernoulli-beta"`` reward distribution) gives, with the Beta
    moments ``E[p**G] = prod_{k<G} (a + k) / (a + b + k)`` (book Eq. ``p-dead-beta``)::

        E[p**G + (1 - p)**G] = prod_{k<G} (a + k) / (a + b + k) + prod_{k<G} (b + k) / (a + b + k)

    For large G the second product falls only like ``G**(-a)`` (the first like ``G**(-b)``): when
    many prompts sit near p = 0 or 1 (small ``a``, ``b``), larger groups help slowly.
    """
    for name, v in (("a", a), ("b", b)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not (math.isfinite(v) and v > 0):
            raise ValueError(f"`{name}` must be a positive number (a Beta parameter); got {v!r}.")
    g = check_group_size(group_size)
    log_right = sum(math.log((a + k) / (a + b + k)) for k in range(g))
    log_wrong = sum(math.log((b + k) / (a + b + k)) for k in range(g))
    return math.exp(log_right) + math.exp(log_wrong)


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


def group_reward_std(rewards, group_size: int, *, std: str = "population") -> torch.Tensor:
    """The reward std inside each group, ``[B]`` (TRL logs its batch mean as ``reward_std``).

    ``std``: ``"population"`` (divide by G) or ``"sample"`` (divide by G - 1). Returned in the
    rewards' dtype; a group whose rewards are all equal gets exactly 0.
    """
    grouped, _ = _grouped(rewards, group_size)
    check_choice(std, "std", ("population", "sample"))
    s = grouped.std(dim=1, correction=0 if std == "population" else 1)
    flat = grouped.amax(dim=1) == grouped.amin(dim=1)
    return torch.where(flat, torch.zeros_like(s), s)


def collapse_metrics(rewards, group_size: int, *, low_std: float = 0.1) -> dict[str, float]:
    """What a trainer should log about collapse, for one batch of groups.

    Returns floats:

    - ``frac_zero_std``: share of groups whose rewards are all identical (no gradient at all);
    - ``frac_low_std``: share of groups whose population reward std is below ``low_std``
      (near collapse: with a noisy reward no group is exactly flat, so ``frac_zero_std`` reads 0
      while these groups carry mostly noise); choose ``low_std`` at the reward's noise level;
    - ``reward_std``: mean within-group reward std (population);
    - ``reward_mean``: mean reward of the batch.
    """
    grouped, _ = _grouped(rewards, group_size)
    tol = check_nonneg_number(low_std, "low_std")
    s = group_reward_std(grouped, group_size)
    return {
        "frac_zero_std": float((s == 0).double().mean()),
        "frac_low_std": float((s < tol).double().mean()),
        "reward_std": float(s.double().mean()),
        "reward_mean": float(grouped.double().mean()),
    }


def advantage_scale(spread, *, eps: float = 1e-8, std_floor: float = 0.0, scale: str = "group") -> torch.Tensor:
    """Root-mean-square size of a group's advantages when its rewards have population std ``spread``.

    The centred rewards of a group have RMS equal to their population std ``s``, so
    (book Eq. ``adv-scale``)::

        scale="group": s / (max(s, std_floor) + eps)    (GRPO, with the options of group_advantages)
        scale="none":  s                                 (Dr. GRPO: no division)

    and 0 where ``s == 0``. With ``std_floor = 0`` and ``eps`` much smaller than ``s`` the
    result is 1 whatever ``s`` is: the group is rescaled to unit size, so rewards that differ
    only by noise get advantages as large as rewards that differ by a real success.
    ``spread``: a float or a tensor of stds >= 0; returns float64.
    """
    s = torch.as_tensor(spread, dtype=torch.float64)
    check_finite(s, "spread")
    if bool((s < 0).any()):
        raise ValueError(f"`spread` must be >= 0 (a standard deviation); got {s.tolist()}.")
    eps = check_nonneg_number(eps, "eps")
    floor = check_nonneg_number(std_floor, "std_floor")
    check_choice(scale, "scale", ("group", "none"))
    if scale == "none":
        return s.clone()
    denom = s.clamp(min=floor) + eps
    return torch.where(s > 0, s / torch.where(denom > 0, denom, torch.ones_like(denom)), torch.zeros_like(s))
