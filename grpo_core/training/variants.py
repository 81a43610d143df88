"""The GRPO variants of the extensions chapter, as settings of the trainer.

The variants are *settings* of :class:`grpo_core.training.trainer.GRPOConfig`, not copies of the
loss: :data:`VARIANTS` lists, for each, the fields it changes, why, and its equivalent in Hugging
Face TRL 1.16.0 and verl 0.9.1 (:class:`FrameworkSetting`): the settings spelled exactly as that
release accepts them (TRL's ``GRPOConfig`` / ``RLOOConfig`` fields; verl's full Hydra keys, ``+``
for a key its YAML does not have), and whether the trainer's loss and advantages then compute
what the framework computes ("exact") or what is missing ("partial: ..."). ``tests/conformance``
(``make conformance``) proves every "exact" against the framework's own code and checks every
spelling against the release. The pieces the variants need live in the core: GSPO's
sequence-level ratio is ``ratio_level="sequence"`` of :func:`grpo_core.grpo_loss`; DAPO's length
penalty and truncation mask are :func:`grpo_core.overlong_penalty` and :func:`grpo_core.truncated`;
several rewards per answer (incl. GDPO) are :func:`grpo_core.combine_rewards`.
"""

from __future__ import annotations

from dataclasses import dataclass

from .trainer import GRPOConfig

__all__ = ["FrameworkSetting", "Variant", "VARIANTS", "variant_config", "PresetVariant", "PRESET_VARIANTS",
           "comparison_configs"]

EXACT = "exact"


@dataclass(frozen=True)
class FrameworkSetting:
    """A variant's equivalent in one framework release.

    ``settings``: for TRL the fields of ``config`` (``GRPOConfig`` or ``RLOOConfig``); for verl
    ``{dotted key: value}`` as on its command line. ``loss`` and ``advantages``: ``"exact"`` when
    the trainer's loss (its :func:`grpo_core.grpo_loss` call) and advantages compute what the
    framework computes with these settings, else what differs; ``missing``: parts of the variant
    the framework does not have.
    """

    framework: str
    settings: dict
    loss: str
    advantages: str
    missing: tuple = ()
    config: str = ""

    @property
    def status(self) -> str:
        """``"exact"``, or ``"partial: "`` and every difference."""
        gaps = []
        if self.loss != EXACT:
            gaps.append(f"loss: {self.loss}")
        if self.advantages != EXACT:
            gaps.append(f"advantages: {self.advantages}")
        gaps += list(self.missing)
        return EXACT if not gaps else "partial: " + "; ".join(gaps)

    def __str__(self) -> str:
        if self.config:
            args = ", ".join(f"{k}={v!r}".replace("'", '"') for k, v in self.settings.items())
            return f"{self.config}({args})"
        return " ".join(f"{k}={v}" for k, v in self.settings.items())


@dataclass(frozen=True)
class Variant:
    """A published variant as trainer settings: ``overrides`` of :class:`GRPOConfig` fields,
    ``changes`` (what and why, one line each), ``trl`` and ``verl`` (their equivalents, a
    :class:`FrameworkSetting` each), ``paper`` (the citation key in ``references.bib``)."""

    name: str
    overrides: dict
    changes: tuple
    trl: FrameworkSetting
    verl: FrameworkSetting
    paper: str


TRL = "trl 1.16.0"
VERL = "verl 0.9.1"
A = "actor_rollout_ref.actor."
#: what separates the trainer's GRPO advantages (population std + 1e-8, 0 for an all-equal group)
TRL_STD = "TRL divides by the sample std + 1e-4, the trainer's 'grpo' by the population std + 1e-8 (its 'trl' estimator is TRL's)"
VERL_STD = "verl divides by the sample std + 1e-6, the trainer's 'grpo' by the population std + 1e-8 (its 'verl' estimator is verl's)"
VERL_CLIP = ("verl's vanilla loss adds the dual clip (clip_ratio_c=3: a bad answer's token loss is at most 3|A|) and clamps "
             "the log-ratio to +-20; the trainer has neither")
#: the default sort task's generation limit (max_new_tokens): Dr. GRPO's constant and DAPO's max length
MAX_NEW = 7

VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant(
            "grpo", {},
            ("group mean and std advantage", "mean over each answer's tokens, then over answers"),
            FrameworkSetting(TRL, dict(loss_type="grpo", scale_rewards="group", beta=0.0), EXACT, TRL_STD,
                             config="GRPOConfig"),
            FrameworkSetting(VERL, {"algorithm.adv_estimator": "grpo", A + "loss_agg_mode": "seq-mean-token-mean"},
                             VERL_CLIP, VERL_STD),
            "shao2024deepseekmath",
        ),
        Variant(
            "dr-grpo", {"advantages": "dr-grpo", "agg": "seq-mean-token-sum-norm"},
            ("no std division: a group with a small spread is not scaled up (difficulty bias)",
             "token sums divided by a constant, not by each answer's length (length bias)"),
            FrameworkSetting(TRL, dict(loss_type="dr_grpo", scale_rewards="none", max_completion_length=MAX_NEW,
                                       beta=0.0), EXACT, EXACT, config="GRPOConfig"),
            FrameworkSetting(VERL, {"algorithm.adv_estimator": "grpo", "algorithm.norm_adv_by_std_in_grpo": False,
                                    A + "loss_agg_mode": "seq-mean-token-sum-norm", A + "loss_scale_factor": MAX_NEW},
                             VERL_CLIP, EXACT),
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
            FrameworkSetting(TRL, dict(loss_type="dapo", epsilon_high=0.28, mask_truncated_completions=True, beta=0.0),
                             EXACT, TRL_STD,
                             ("dynamic sampling: TRL 1.16 has none", "the overlong penalty: TRL has no built-in one "
                              "(write it as a reward function)"), config="GRPOConfig"),
            FrameworkSetting(VERL, {"algorithm.adv_estimator": "grpo", A + "clip_ratio_high": 0.28,
                                    A + "loss_agg_mode": "token-mean", "algorithm.filter_groups.enable": True,
                                    "algorithm.filter_groups.metric": "acc", "reward.reward_manager.name": "dapo",
                                    "+reward.reward_kwargs.overlong_buffer_cfg.enable": True,
                                    "+reward.reward_kwargs.overlong_buffer_cfg.len": 1,
                                    "+reward.reward_kwargs.overlong_buffer_cfg.penalty_factor": 1.0,
                                    "+reward.reward_kwargs.max_resp_len": MAX_NEW},
                             VERL_CLIP, VERL_STD,
                             ("truncated answers stay in the loss: verl 0.9.1 has no option to mask them out",
                              "filter_groups refills evicted groups in the v1 trainer's replay buffer (its "
                              "max_num_gen_batches is ignored there); the trainer resamples up to max_resample rounds")),
            "yu2025dapo",
        ),
        Variant(
            "gspo", {"ratio_level": "sequence", "eps_low": 3e-4, "eps_high": 4e-4, "beta": 0.0, "minibatches": 4},
            ("one ratio per answer (geometric mean of its token ratios), clipped per answer",
             "clip range 3e-4 / 4e-4, since a length-normalised sequence ratio moves little",
             "each batch split into 4 minibatches, so that the ratio differs from 1 at all"),
            FrameworkSetting(TRL, dict(importance_sampling_level="sequence", loss_type="grpo", epsilon=3e-4,
                                       epsilon_high=4e-4, beta=0.0, steps_per_generation=4), EXACT, TRL_STD,
                             config="GRPOConfig"),
            FrameworkSetting(VERL, {"algorithm.adv_estimator": "grpo", A + "policy_loss.loss_mode": "gspo",
                                    A + "clip_ratio_low": 3e-4, A + "clip_ratio_high": 4e-4,
                                    A + "loss_agg_mode": "seq-mean-token-mean", "data.train_batch_size": 32,
                                    "actor_rollout_ref.rollout.n": 8, A + "ppo_mini_batch_size": 8},
                             "verl clamps the sequence log-ratio at 10 from above (a ratio of e^10), the trainer does "
                             "not; below that loss and gradient agree", VERL_STD),
            "zheng2025group",
        ),
        Variant(
            "rloo", {"algo": "rloo"},
            ("leave-one-out baseline: the mean of the other G - 1 rewards, no std division",),
            FrameworkSetting(TRL, dict(beta=0.0, num_generations=8), "RLOOTrainer clips one whole-answer ratio (the "
                             "product of the token ratios) per answer and averages over answers; at the first inner "
                             "step that is seq-mean-token-sum, the trainer's rloo uses per-token ratios and "
                             "seq-mean-token-mean", "not compared by the suite (RLOOTrainer has its own pipeline)",
                             config="RLOOConfig"),
            FrameworkSetting(VERL, {"algorithm.adv_estimator": "rloo", A + "loss_agg_mode": "seq-mean-token-mean"},
                             VERL_CLIP, EXACT),
            "ahmadian2024back",
        ),
    )
}


@dataclass(frozen=True)
class PresetVariant:
    """A 2025-26 loss or advantage that TRL 1.16 or verl 0.9.1 ships, run by the trainer through
    the conformance presets: ``overrides`` of :class:`GRPOConfig` (a ``loss_preset`` of
    :data:`grpo_core.LOSS_PRESETS` with its ``loss_overrides``, or an ``advantages`` name of
    :data:`grpo_core.ADVANTAGE_ESTIMATORS`); ``changes``: what and why, one line each; ``preset``:
    the preset or estimator, proved equal to the framework's code by ``make conformance``;
    ``paper``: a citation key of ``references.bib`` or an arXiv number."""

    name: str
    overrides: dict
    changes: tuple
    preset: str
    paper: str


#: Losses that differ from GRPO's only off-policy run with 4 minibatches per batch, as GSPO does
#: (with one optimizer step per rollout every one of them is GRPO's gradient up to the aggregation).
OFF_POLICY = {"minibatches": 4}

PRESET_VARIANTS: dict[str, PresetVariant] = {
    v.name: v
    for v in (
        PresetVariant(
            "grpo-4mb", dict(OFF_POLICY),
            ("GRPO with each batch split into 4 minibatches: the reference for the losses below",),
            "the trainer's grpo_loss", "shao2024deepseekmath",
        ),
        PresetVariant(
            "cispo", dict(OFF_POLICY, loss_preset="trl-cispo", loss_overrides={"eps_high": 4.0}),
            ("-sg(min(ratio, 5)) A log pi: a detached, capped weight, so a clipped token keeps its gradient",
             "TRL's documented epsilon_high=5.0; token-mean over the minibatch"),
            "trl-cispo", "arXiv:2506.13585",
        ),
        PresetVariant(
            "sapo", dict(OFF_POLICY, loss_preset="trl-sapo"),
            ("a soft sigmoid gate instead of the clip, temperatures 1.0 (A > 0) and 1.05 (A < 0)",),
            "trl-sapo", "arXiv:2511.20347",
        ),
        PresetVariant(
            "gmpo", dict(OFF_POLICY, loss_preset="verl-geo_mean", loss_overrides={"eps_low": 0.4, "eps_high": 0.4}),
            ("one ratio per answer, the geometric mean of its token ratios clipped in log space",
             "clip range 0.4 (the GMPO paper's), mean over answers"),
            "verl-geo_mean", "arXiv:2507.20673",
        ),
        PresetVariant(
            "dual-clip", dict(OFF_POLICY, loss_preset="verl-vanilla", loss_overrides={"agg": "seq-mean-token-mean"}),
            ("PPO's clip plus verl's dual clip c = 3: a bad answer's token loss is at most 3|A|",
             "aggregated like GRPO (seq-mean-token-mean) so that only the clip differs"),
            "verl-vanilla", "ye2020mastering",
        ),
        PresetVariant(
            "batch-std", {"advantages": "trl-batch"},
            ("group mean, but the std of the whole batch (TRL scale_rewards='batch'; Lite PPO's choice)",),
            "trl-batch", "arXiv:2508.08221",
        ),
        PresetVariant(
            "reinforce++", {"advantages": "verl-reinforce_plus_plus"},
            ("no group baseline: every token's return whitened over the batch's tokens (verl reinforce_plus_plus)",),
            "verl-reinforce_plus_plus", "arXiv:2501.03262",
        ),
    )
}


def variant_config(name: str, **overrides) -> GRPOConfig:
    """A :class:`GRPOConfig` with the settings of variant ``name`` (a key of :data:`VARIANTS` or of
    :data:`PRESET_VARIANTS`), then ``overrides``."""
    if name in VARIANTS:
        settings = VARIANTS[name].overrides
    elif name in PRESET_VARIANTS:
        settings = PRESET_VARIANTS[name].overrides
    else:
        raise ValueError(f"`name`={name!r} is not known; choose one of {sorted(VARIANTS) + sorted(PRESET_VARIANTS)}.")
    return GRPOConfig(**{**settings, **overrides})


def comparison_configs(**overrides) -> dict[str, GRPOConfig]:
    """Every variant of :data:`VARIANTS` and :data:`PRESET_VARIANTS` as a :class:`GRPOConfig`, each
    with ``overrides`` (the same budget for all): the extensions chapter's comparison."""
    return {name: variant_config(name, **overrides) for name in (*VARIANTS, *PRESET_VARIANTS)}
