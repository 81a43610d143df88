"""Signal collapse: groups whose rewards (nearly) agree, how to measure it, and the mitigations.

When every answer of a group gets the same reward, its group advantages are 0 and the group adds
nothing to the gradient; when the rewards differ only by noise, the std division blows the noise up
to unit-sized advantages (book chapter 'Signal collapse', seed section 7). This module holds the
measurements of the chapter; the mitigations it compares are part of the core, where a trainer
finds them:

- :func:`zero_std_fraction`, :func:`zero_spread_probability`, :func:`expected_zero_spread`: how
  much of a batch is dead;
- in the core: DAPO's filter :func:`grpo_core.dynamic_sampling_keep` (keep only groups with spread;
  the trainer resamples), the notes' "absolute reward threshold"
  :func:`grpo_core.threshold_advantages` and "light global baseline"
  :func:`grpo_core.global_baseline_advantages` with a :class:`grpo_core.RunningBaseline`; larger
  groups and a smoothed or floored std are options of :func:`grpo_core.group_advantages`
  (``group_size``, ``eps``, ``std_floor``);
- :func:`group_reward_std`, :func:`collapse_metrics`: the within-group reward std and the
  collapse metrics a trainer logs every step;
- :func:`advantage_scale`: the closed-form size of a group's advantages as its spread shrinks
  (book Eq. ``adv-scale``), which shows the noise amplification near collapse.
"""

from __future__ import annotations

import math

import torch

from .._checks import as_grouped, check_choice, check_finite, check_group_size, check_nonneg_number, check_positive

__all__ = [
    "zero_std_fraction",
    "zero_spread_probability",
    "expected_zero_spread",
    "group_reward_std",
    "collapse_metrics",
    "advantage_scale",
]


def zero_std_fraction(rewards, group_size: int) -> float:
    """Share of groups whose rewards are all identical (TRL logs it as ``frac_reward_zero_std``)."""
    grouped, _ = as_grouped(rewards, group_size)
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
    a, b = check_positive(a, "a", " (a Beta parameter)"), check_positive(b, "b", " (a Beta parameter)")
    g = check_group_size(group_size)
    log_right = sum(math.log((a + k) / (a + b + k)) for k in range(g))
    log_wrong = sum(math.log((b + k) / (a + b + k)) for k in range(g))
    return math.exp(log_right) + math.exp(log_wrong)


def group_reward_std(rewards, group_size: int, *, std: str = "population") -> torch.Tensor:
    """The reward std inside each group, ``[B]`` (TRL logs its batch mean as ``reward_std``).

    ``std``: ``"population"`` (divide by G) or ``"sample"`` (divide by G - 1). Returned in the
    rewards' dtype; a group whose rewards are all equal gets exactly 0.
    """
    grouped, _ = as_grouped(rewards, group_size)
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
    grouped, _ = as_grouped(rewards, group_size)
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
