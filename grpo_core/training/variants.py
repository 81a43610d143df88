"""The GRPO variants of the extensions chapter, as settings of the trainer.

The variants are *settings* of :class:`grpo_core.training.trainer.GRPOConfig`, not copies of the
loss: :data:`VARIANTS` lists, for each, the fields it changes, why, and the equivalent settings of
Hugging Face TRL and verl. The pieces they need live in the core: GSPO's sequence-level ratio is
``ratio_level="sequence"`` of :func:`grpo_core.grpo_loss`; DAPO's length penalty and truncation
mask are :func:`grpo_core.overlong_penalty` and :func:`grpo_core.truncated`; several rewards per
answer (incl. GDPO) are :func:`grpo_core.combine_rewards`.
"""

from __future__ import annotations

from dataclasses import dataclass

from .trainer import GRPOConfig

__all__ = ["Variant", "VARIANTS", "variant_config"]


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


def variant_config(name: str, **overrides) -> GRPOConfig:
    """A :class:`GRPOConfig` with variant ``name``'s settings, then ``overrides``."""
    if name not in VARIANTS:
        raise ValueError(f"`name`={name!r} is not known; choose one of {sorted(VARIANTS)}.")
    return GRPOConfig(**{**VARIANTS[name].overrides, **overrides})
