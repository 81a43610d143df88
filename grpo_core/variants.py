"""The GRPO variants and multi-reward advantages of the extensions chapter.

The variants are *settings* of :class:`grpo_core.trainer.GRPOConfig`, not copies of the loss:
:data:`VARIANTS` lists, for each, the fields it changes, why, and the equivalent settings of
Hugging Face TRL and verl. The pieces they need that the earlier chapters did not:

- :func:`combine_rewards`: several rewards per answer into one advantage, either weighted sum
  then group normalisation (GRPO as usually applied, TRL's default), or normalisation of each
  reward within its group, weighted sum, then batch normalisation (GDPO, Liu et al. 2026);
- :func:`overlong_penalty`: DAPO's soft length penalty (Yu et al. 2025, Eq. 13);
- :func:`truncated`: answers cut at the length limit, which DAPO leaves out of the loss;
- GSPO's sequence-level ratio is ``ratio_level="sequence"`` of :func:`grpo_core.grpo_loss`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ._checks import as_float_tensor, check_finite, check_group_size, check_int, check_nonneg_number
from .advantages import group_advantages

__all__ = ["combine_rewards", "COMBINE_MODES", "overlong_penalty", "truncated", "Variant", "VARIANTS", "variant_config"]

#: How :func:`combine_rewards` turns K rewards per answer into one advantage.
COMBINE_MODES = {
    "sum-then-normalize": "weighted sum of the K rewards, then group normalisation (GRPO; TRL's default)",
    "normalize-then-sum": "group normalisation of each reward, weighted sum, then batch normalisation (GDPO)",
}


def combine_rewards(rewards, group_size: int, weights=None, mode: str = "sum-then-normalize", *, eps: float = 1e-6) -> torch.Tensor:
    """One advantage per answer from ``K`` rewards per answer (book Eq. ``multi-reward``).

    Args:
        rewards: ``[N, K]``, answer n's K rewards; N a multiple of ``group_size``, groups contiguous.
        group_size: G.
        weights: ``[K]`` non-negative weights (default all 1).
        mode: ``"sum-then-normalize"``: ``A = group_advantages(sum_k w_k r_k)``;
            ``"normalize-then-sum"`` (GDPO): ``a = sum_k w_k group_advantages(r_k)``, then
            ``A = (a - mean(a)) / (std(a) + eps)`` over the whole batch.
        eps: added to the batch std of GDPO's last step.

    Returns:
        ``[N]`` advantages.
    """
    r = as_float_tensor(rewards, "rewards")
    if r.dim() != 2:
        raise ValueError(f"`rewards` must be [N, K] (answers x rewards); got shape {tuple(r.shape)}.")
    check_finite(r, "rewards")
    check_group_size(group_size)
    k = r.shape[1]
    w = torch.ones(k, dtype=r.dtype) if weights is None else as_float_tensor(weights, "weights").to(r.dtype)
    if w.shape != (k,):
        raise ValueError(f"`weights` has shape {tuple(w.shape)}; it must be [K] = ({k},), one weight per reward.")
    check_finite(w, "weights")
    if bool((w < 0).any()):
        raise ValueError("`weights` must be >= 0; flip the sign of a reward instead of giving it a negative weight.")
    w = w.to(r.device)
    if mode == "sum-then-normalize":
        return group_advantages(r @ w, group_size)
    if mode == "normalize-then-sum":
        per_reward = torch.stack([group_advantages(r[:, j], group_size) for j in range(k)], dim=1)
        a = per_reward @ w
        return (a - a.mean()) / (a.std(correction=0) + check_nonneg_number(eps, "eps"))
    raise ValueError(f"`mode`={mode!r} is not known; choose one of {sorted(COMBINE_MODES)}.")


def overlong_penalty(lengths, max_len: int, cache_len: int, factor: float = 1.0) -> torch.Tensor:
    """DAPO's soft overlong punishment, added to the task reward (Yu et al. 2025, Eq. 13)::

        0                                    if L <= max_len - cache_len
        factor * ((max_len - cache_len) - L) / cache_len   if max_len - cache_len < L <= max_len
        -factor                              if L > max_len

    ``lengths`` ``[N]`` in tokens; ``cache_len`` the width of the ramp (verl's
    ``overlong_buffer.len``), ``factor`` its depth (verl's ``overlong_buffer.penalty_factor``).
    """
    length = as_float_tensor(lengths, "lengths")
    check_finite(length, "lengths")
    check_int(max_len, "max_len")
    check_int(cache_len, "cache_len")
    if cache_len > max_len:
        raise ValueError(f"`cache_len`={cache_len} must be <= max_len={max_len}.")
    factor = check_nonneg_number(factor, "factor")
    start = max_len - cache_len
    ramp = (start - length) / cache_len
    out = torch.where(length <= start, torch.zeros_like(length), ramp)
    return factor * torch.where(length > max_len, torch.full_like(length, -1.0), out)


def truncated(completions, mask, eos_id: int) -> torch.Tensor:
    """``[N]`` bool: answers with no end token among their tokens (cut at the length limit)."""
    c = torch.as_tensor(completions)
    m = torch.as_tensor(mask).bool()
    if c.shape != m.shape or c.dim() != 2:
        raise ValueError(f"`completions` {tuple(c.shape)} and `mask` {tuple(m.shape)} must be the same [N, T] shape.")
    return ~((c == eos_id) & m).any(dim=1)


@dataclass(frozen=True)
class Variant:
    """A published variant as trainer settings: ``overrides`` of :class:`GRPOConfig` fields,
    ``changes`` (what and why, one line each), ``trl`` and ``verl`` (their equivalent settings),
    ``paper`` (the citation key in ``references.bib``)."""

    name: str
    overrides: dict
    changes: tuple
    trl: str
    verl: str
    paper: str


VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant(
            "grpo", {},
            ("group mean and std advantage", "mean over each answer's tokens, then over answers"),
            'GRPOConfig(loss_type="grpo", scale_rewards="group")',
            "algorithm.adv_estimator=grpo, actor.loss_agg_mode=seq-mean-token-mean",
            "shao2024deepseekmath",
        ),
        Variant(
            "dr-grpo", {"advantages": "dr-grpo", "agg": "seq-mean-token-sum-norm"},
            ("no std division: a group with a small spread is not scaled up (difficulty bias)",
             "token sums divided by a constant, not by each answer's length (length bias)"),
            'GRPOConfig(loss_type="dr_grpo", scale_rewards="none")',
            "algorithm.norm_adv_by_std_in_grpo=False, actor.loss_agg_mode=seq-mean-token-sum-norm",
            "liu2025understanding",
        ),
        Variant(
            "dapo", {"eps_high": 0.28, "dynamic_sampling": True, "agg": "token-mean", "beta": 0.0,
                     "mask_truncated": True, "overlong_cache": 1},
            ("clip-higher: eps_high 0.28 > eps_low 0.2 lets unlikely tokens grow (against entropy collapse)",
             "dynamic sampling: groups without reward spread are replaced",
             "token-level loss: every token weighs the same, whatever its answer's length",
             "answers cut at the limit are left out of the loss; a soft penalty ramps in before the limit",
             "no KL term"),
            'GRPOConfig(epsilon_high=0.28, loss_type="dapo", mask_truncated_completions=True, beta=0.0)',
            "actor.clip_ratio_high=0.28, actor.loss_agg_mode=token-mean, algorithm.filter_groups.enable=True, "
            "reward_model.overlong_buffer.enable=True",
            "yu2025dapo",
        ),
        Variant(
            "gspo", {"ratio_level": "sequence", "eps_low": 3e-4, "eps_high": 4e-4, "beta": 0.0, "minibatches": 4},
            ("one ratio per answer (geometric mean of its token ratios), clipped per answer",
             "clip range 3e-4 / 4e-4, since a length-normalised sequence ratio moves little",
             "each batch split into 4 minibatches, so that the ratio differs from 1 at all"),
            'GRPOConfig(importance_sampling_level="sequence", epsilon=3e-4, epsilon_high=4e-4, steps_per_generation=4)',
            "actor.policy_loss.loss_mode=gspo, actor.clip_ratio_low=3e-4, actor.clip_ratio_high=4e-4",
            "zheng2025group",
        ),
        Variant(
            "rloo", {"algo": "rloo"},
            ("leave-one-out baseline: the mean of the other G - 1 rewards, no std division",),
            "RLOOTrainer (a trainer of its own)",
            "algorithm.adv_estimator=rloo",
            "ahmadian2024back",
        ),
    )
}


def variant_config(name: str, **overrides):
    """A :class:`grpo_core.trainer.GRPOConfig` with variant ``name``'s settings, then ``overrides``."""
    from .trainer import GRPOConfig

    if name not in VARIANTS:
        raise ValueError(f"`name`={name!r} is not known; choose one of {sorted(VARIANTS)}.")
    return GRPOConfig(**{**VARIANTS[name].overrides, **overrides})
