"""Group-relative advantages: how GRPO turns the rewards of G answers to one prompt into advantages.

For the rewards ``r_1..r_G`` of one group (the book's Eq. ``adv-group``, DeepSeekMath section 4.1.2)::

    A_i = (r_i - mean(r)) / (std(r) + eps)

and every token of answer ``i`` gets ``A_i``. The variants the book compares are options here,
not copies: which std (population or Bessel's sample std), whose std (the group's, the whole
batch's, or none at all as in Dr. GRPO), the epsilon, and what happens to a group whose rewards
are all equal. :data:`PRESETS` names the combinations used by the source notes, DeepSeekMath,
Hugging Face TRL and verl, and :func:`preset_advantages` applies one.
"""

from __future__ import annotations

import math

import torch

from ._checks import as_float_tensor, check_choice, check_finite, check_group_size, check_nonneg_number

__all__ = ["group_advantages", "loo_advantages", "preset_advantages", "bernoulli_advantages", "PRESETS"]

_SCALES = ("group", "batch", "none")
_STDS = ("population", "sample")


def _grouped(rewards, group_size: int) -> tuple[torch.Tensor, torch.Size]:
    """Validate ``rewards`` and view them as ``[B, G]``; also return the shape to give back."""
    r = as_float_tensor(rewards, "rewards")
    g = check_group_size(group_size)
    if r.dim() == 1:
        if r.numel() == 0 or r.numel() % g != 0:
            raise ValueError(
                f"`rewards` has {r.numel()} entries, which is not a positive multiple of "
                f"group_size={g}. Pass B*G rewards with each prompt's G answers contiguous, "
                f"or a [B, G] tensor; drop or complete any partial group first."
            )
        grouped = r.view(-1, g)
    elif r.dim() == 2:
        if r.shape[1] != g or r.shape[0] == 0:
            raise ValueError(
                f"`rewards` has shape {tuple(r.shape)} but group_size={g}; a 2-D tensor must be "
                f"[B, G] with G == group_size and B >= 1."
            )
        grouped = r
    else:
        raise ValueError(
            f"`rewards` must be 1-D [B*G] or 2-D [B, G]; got shape {tuple(r.shape)}."
        )
    check_finite(grouped, "rewards")
    return grouped, r.shape


def group_advantages(
    rewards,
    group_size: int,
    *,
    scale: str = "group",
    std: str = "population",
    eps: float = 1e-8,
    zero_equal_groups: bool = True,
    zero_if_std_below: float = 0.0,
    std_floor: float = 0.0,
) -> torch.Tensor:
    """Group-normalised advantages (book Eq. ``adv-group``; DeepSeekMath Sec. 4.1.2).

    Args:
        rewards: ``[B*G]`` (the G answers of each prompt contiguous) or ``[B, G]``; any real
            dtype, on any device. Lists and NumPy arrays are accepted too.
        group_size: G, the number of answers sampled per prompt; at least 2.
        scale: what the centred reward is divided by.
            ``"group"``: the group's own std (GRPO, DeepSeekMath);
            ``"batch"``: the std of all B*G rewards (TRL ``scale_rewards="batch"``);
            ``"none"``: nothing, ``A_i = r_i - mean(r)`` (Dr. GRPO; verl ``norm_adv_by_std_in_grpo=False``).
        std: ``"population"`` (divide by G) or ``"sample"`` (Bessel, divide by G - 1).
        eps: added to the std before dividing: ``(r - mean) / (std + eps)``.
        zero_equal_groups: if True (default), a group whose rewards are all identical gets
            exactly 0, also when float rounding leaves a tiny nonzero std (eight rewards of 0.1
            in float32 give a std near 1e-9, and ``(r - mean)/(std + eps)`` would be O(0.1)).
            Such a group carries no learning signal; set False to reproduce an implementation's
            raw arithmetic.
        zero_if_std_below: a group whose std is below this gets exactly 0 (the source notes' guard
            ``if std < 1e-8``). 0 disables it.
        std_floor: divide by ``max(std, std_floor) + eps``: a minimum std, so that rewards that
            differ only by noise keep small advantages (a signal-collapse mitigation). 0 disables it.

    Returns:
        Advantages with the shape, dtype and device of ``rewards``.

    Raises:
        ValueError: non-finite rewards, a size that is not a multiple of ``group_size``,
            ``group_size < 2``, an unknown ``scale`` or ``std``, a negative ``eps``.
    """
    grouped, shape = _grouped(rewards, group_size)
    check_choice(scale, "scale", _SCALES)
    check_choice(std, "std", _STDS)
    eps = check_nonneg_number(eps, "eps")
    zero_if_std_below = check_nonneg_number(zero_if_std_below, "zero_if_std_below")
    std_floor = check_nonneg_number(std_floor, "std_floor")
    correction = 0 if std == "population" else 1

    mean = grouped.mean(dim=1, keepdim=True)
    centred = grouped - mean
    group_std = grouped.std(dim=1, correction=correction, keepdim=True)

    if scale == "group":
        adv = centred / (group_std.clamp(min=std_floor) + eps)
    elif scale == "batch":
        adv = centred / (grouped.std(correction=correction).clamp(min=std_floor) + eps)
    else:  # "none"
        adv = centred

    degenerate = torch.zeros_like(group_std, dtype=torch.bool)
    if zero_equal_groups:
        degenerate |= grouped.amax(dim=1, keepdim=True) == grouped.amin(dim=1, keepdim=True)
    if zero_if_std_below > 0.0:
        degenerate |= group_std < zero_if_std_below
    adv = torch.where(degenerate, torch.zeros_like(adv), adv)
    return adv.reshape(shape)


def loo_advantages(rewards, group_size: int) -> torch.Tensor:
    """Leave-one-out advantages (RLOO, Ahmadian et al. 2024; book Eq. ``mean-vs-loo``)::

        A_i = r_i - (1 / (G - 1)) sum_{j != i} r_j  =  G / (G - 1) * (r_i - mean(r))

    The baseline of answer i does not depend on answer i, so the policy-gradient estimate is
    unbiased; it is the mean-only (Dr. GRPO) advantage scaled by ``G / (G - 1)``. Same shape and
    input checks as :func:`group_advantages`.
    """
    grouped, shape = _grouped(rewards, group_size)
    g = grouped.shape[1]
    loo_mean = (grouped.sum(dim=1, keepdim=True) - grouped) / (g - 1)
    return (grouped - loo_mean).reshape(shape)


#: Conventions of the implementations the book compares, as keyword arguments of
#: :func:`group_advantages`. Each reproduces that implementation's arithmetic on groups of G >= 2.
PRESETS: dict[str, dict] = {
    # The source notes' `safe_normalize_rewards`: population std, zeros if std < 1e-8, else
    # (r - mean) / (std + 1e-8).
    "seed-notes": dict(scale="group", std="population", eps=1e-8, zero_equal_groups=False, zero_if_std_below=1e-8),
    # DeepSeekMath Eq. for outcome supervision, (r - mean(r)) / std(r). The paper names neither the
    # std convention nor an epsilon; this preset reads the formula literally (population std, no
    # epsilon) and gives all-equal groups 0 instead of 0/0.
    "deepseekmath": dict(scale="group", std="population", eps=0.0, zero_equal_groups=True, zero_if_std_below=0.0),
    # Hugging Face TRL GRPOTrainer (scale_rewards="group"): sample std, (r - mean) / (std + 1e-4).
    "trl": dict(scale="group", std="sample", eps=1e-4, zero_equal_groups=False, zero_if_std_below=0.0),
    # TRL with scale_rewards="batch": group mean, std of the whole batch.
    "trl-batch": dict(scale="batch", std="sample", eps=1e-4, zero_equal_groups=False, zero_if_std_below=0.0),
    # verl compute_grpo_outcome_advantage: torch.std (sample), (r - mean) / (std + 1e-6).
    "verl": dict(scale="group", std="sample", eps=1e-6, zero_equal_groups=False, zero_if_std_below=0.0),
    # Dr. GRPO (TRL scale_rewards="none", verl norm_adv_by_std_in_grpo=False): mean only.
    "dr-grpo": dict(scale="none", std="population", eps=0.0, zero_equal_groups=True, zero_if_std_below=0.0),
}


def preset_advantages(rewards, group_size: int, preset: str) -> torch.Tensor:
    """:func:`group_advantages` with the conventions of a named implementation (see :data:`PRESETS`)."""
    check_choice(preset, "preset", PRESETS)
    return group_advantages(rewards, group_size, **PRESETS[preset])


def bernoulli_advantages(k, group_size: int, *, std: str = "population") -> tuple[torch.Tensor, torch.Tensor]:
    """Closed form of the group advantages of 0/1 rewards (book Eq. ``adv-bernoulli``).

    With ``k`` accepted answers out of ``G`` and ``p = k / G`` the group mean is ``p`` and the
    population std ``sqrt(p (1 - p))``, so (eps = 0)::

        A_right = (1 - p) / sqrt(p (1 - p)) = sqrt((1 - p) / p)
        A_wrong =     - p / sqrt(p (1 - p)) = -sqrt(p / (1 - p))

    The sample std is ``sqrt(G / (G - 1))`` times the population std, so with ``std="sample"``
    both are multiplied by ``sqrt((G - 1) / G)``. A group with ``k = 0`` or ``k = G`` has no
    spread: its answers get 0.

    Args:
        k: number of accepted answers, an int or an integer tensor with values in ``0..G``.
        group_size: G >= 2.
        std: ``"population"`` or ``"sample"``.

    Returns:
        ``(A_right, A_wrong)`` as float64 tensors shaped like ``k``; NaN where the group has no
        such answer (``A_right`` at ``k = 0``, ``A_wrong`` at ``k = G``).
    """
    g = check_group_size(group_size)
    check_choice(std, "std", _STDS)
    kt = torch.as_tensor(k)
    if kt.is_floating_point() or kt.is_complex() or kt.dtype == torch.bool:
        raise ValueError(f"`k` must be an int or an integer tensor (a count of accepted answers); got dtype {kt.dtype}.")
    if bool(((kt < 0) | (kt > g)).any()):
        raise ValueError(f"`k` must lie in 0..group_size={g}; got {kt.tolist()}.")
    p = kt.double() / g
    inner = (kt > 0) & (kt < g)
    safe = torch.where(inner, p, torch.full_like(p, 0.5))
    scale = math.sqrt((g - 1) / g) if std == "sample" else 1.0
    right = torch.where(inner, ((1 - safe) / safe).sqrt() * scale, torch.zeros_like(p))
    wrong = torch.where(inner, -(safe / (1 - safe)).sqrt() * scale, torch.zeros_like(p))
    right = torch.where(kt == 0, torch.full_like(p, math.nan), right)
    wrong = torch.where(kt == g, torch.full_like(p, math.nan), wrong)
    return right, wrong
