"""Loss presets: TRL's and verl's GRPO losses by name, as settings of :func:`grpo_core.grpo_loss`.

``preset_loss("trl-dapo", logp, old_logp, ref_logp, advantages, mask)`` computes what TRL
1.16.0's ``GRPOTrainer`` computes with ``GRPOConfig(loss_type="dapo")`` and every other setting
at that release's default; ``preset_loss("verl-vanilla", ...)`` what verl 0.9.1's actor computes
with ``actor_rollout_ref.actor.policy_loss.loss_mode=vanilla``. Overrides use grpo_core's own
keywords (``eps_low``, ``eps_high``, ``beta``, ``agg``, ``num_items_in_batch``, ...); each preset's
``names`` maps them to the framework's settings and ``doc`` lists the settings it stands for
with their defaults in that release. ``tests/conformance`` (``make conformance``) compares every
preset with the framework's own code on random batches: loss, gradient and metrics.

A keyword the framework does not have for that loss, or that its code fixes, is an error that
says why and lists the keywords the preset takes (for instance ``agg`` of a TRL preset: TRL's
``loss_type`` *is* the aggregation, so choose another preset).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field

import torch

from ._checks import check_choice
from .objective import grpo_loss

__all__ = ["LossPreset", "LOSS_PRESETS", "preset_loss", "preset_settings"]

#: TRL's sapo temperatures are a float32 tensor (``torch.where(A > 0, 1.0, 1.05)``), so its
#: tau_neg is float32(1.05) = 1.0499999523..., not 1.05; the preset uses that value.
TRL_SAPO_TAU_NEG = torch.tensor(1.05, dtype=torch.float32).item()

#: grpo_core keyword -> TRL 1.16.0 name (GRPOConfig field, or what _compute_loss reads).
TRL_NAMES = {
    "eps_low": "epsilon",
    "eps_high": "epsilon_high (for cispo: epsilon_high - 1)",
    "delta": "delta",
    "beta": "beta",
    "kl_bias_correction": "use_bias_correction_kl",
    "ratio_level": "importance_sampling_level",
    "max_len": "max_completion_length",
    "sapo_tau_pos": "sapo_temperature_pos",
    "sapo_tau_neg": "sapo_temperature_neg",
    "rollout_logp": "the vLLM sampling log-probs (use_vllm=True, vllm_importance_sampling_correction=True)",
    "is_level": "vllm_importance_sampling_mode: token_* / sequence_*",
    "is_mode": "vllm_importance_sampling_mode: *_truncate / *_mask",
    "is_min": "vllm_importance_sampling_clip_min",
    "is_max": "vllm_importance_sampling_clip_max",
    "entropy": "the per-token entropies of the policy forward pass",
    "top_entropy_quantile": "top_entropy_quantile",
    "num_items_in_batch": 'inputs["num_items_in_batch"] (tokens of the generation batch, all processes)',
    "num_processes": "accelerator.num_processes",
    "grad_accum_steps": "current_gradient_accumulation_steps (= gradient_accumulation_steps = steps_per_generation)",
    "tensor_metrics": "(grpo_core only)",
}

#: grpo_core keyword -> verl 0.9.1 name (``actor.`` is ``actor_rollout_ref.actor.``,
#: ``algorithm.`` the top-level algorithm config; the global_batch_info keys are set by the trainer).
VERL_NAMES = {
    "eps_low": "actor_rollout_ref.actor.clip_ratio_low",
    "eps_high": "actor_rollout_ref.actor.clip_ratio_high",
    "dual_clip": "actor_rollout_ref.actor.clip_ratio_c",
    "agg": "actor_rollout_ref.actor.loss_agg_mode",
    "kl_agg": "actor_rollout_ref.actor.loss_agg_mode (the KL term's)",
    "max_len": "actor_rollout_ref.actor.loss_scale_factor",
    "beta": "actor_rollout_ref.actor.kl_loss_coef (with actor_rollout_ref.actor.use_kl_loss=True)",
    "kl": "actor_rollout_ref.actor.kl_loss_type (k1/kl, k2/mse, k3/low_var_kl, and the + kinds)",
    "sapo_tau_pos": "actor_rollout_ref.actor.tau_pos",
    "sapo_tau_neg": "actor_rollout_ref.actor.tau_neg",
    "rollout_logp": "the rollout log-probs (actor_rollout_ref.rollout.calculate_log_probs=True)",
    "is_level": "algorithm.rollout_correction.rollout_is (token / sequence)",
    "is_mode": "algorithm.rollout_correction.rollout_is_threshold: a float U (truncate) or 'L_U' (mask, IcePop)",
    "is_min": "the L of rollout_is_threshold='L_U'",
    "is_max": "algorithm.rollout_correction.rollout_is_threshold",
    "num_items_in_batch": "global_batch_info batch_num_tokens (the mini-batch's tokens over all DP ranks)",
    "num_sequences": "global_batch_info global_batch_size (= actor.ppo_mini_batch_size x rollout.n)",
    "num_processes": "global_batch_info dp_size",
    "tensor_metrics": "(grpo_core only)",
}

# why a keyword cannot be overridden, where the reason is not just "the framework has no such setting"
_FIXED = {
    "loss": "the preset is one loss kind; choose another preset",
    "log_ratio_clamp": "the clamp of the log-ratio is fixed in the framework's code",
    "kl_clamp": "the clamp of the KL estimate is fixed in the framework's code",
    "is_log_clamp": "the clamp of the rollout log-weight is fixed in the framework's code",
    "framework_metrics": "the preset reports its own framework's metrics",
}
#: Why a framework has no such keyword, where there is more to say.
_FRAMEWORK_FIXED = {
    "trl": {
        "dual_clip": "TRL has no dual clip; its two-sided `delta` caps the same ratios (delta = c reproduces verl's "
                     "clip_ratio_c = c exactly)",
        "kl": "TRL computes k3 only (times the ratio with use_bias_correction_kl)",
        "kl_agg": "TRL adds the KL term inside the loss's own aggregation",
        "num_sequences": "TRL divides by the micro-batch's own answers",
        "num_processes": "this loss is a mean over the micro-batch, which DDP averages as it is",
    },
    "verl": {
        "delta": "verl has no delta; its dual clip (dual_clip, clip_ratio_c) caps the same ratios",
        "kl_bias_correction": "verl does not weight the KL term by the ratio",
        "entropy": "verl 0.9.1 has no high-entropy token mask",
        "top_entropy_quantile": "verl 0.9.1 has no high-entropy token mask",
        "grad_accum_steps": "verl normalises by the whole mini-batch (num_items_in_batch, num_sequences), never by "
                            "the number of micro-batches",
        "ratio_level": "verl forms the sequence ratio in its gspo loss: use verl-gspo",
    },
}
_TRL_AGG = ("TRL's loss_type is the aggregation: trl-grpo and trl-sapo use seq-mean-token-mean, trl-bnpo "
            "(this micro-batch's tokens), trl-dapo and trl-cispo (num_items_in_batch) token-mean, trl-dr_grpo "
            "seq-mean-token-sum-norm; choose that preset")


@dataclass(frozen=True)
class LossPreset:
    """A framework's loss as :func:`grpo_core.grpo_loss` settings.

    ``settings``: the keywords it fixes or defaults; ``overridable``: those a caller may change;
    ``with_rollout``: defaults that apply only when ``rollout_logp`` is given (the framework's
    importance-sampling defaults); ``fixed``: why a keyword is not overridable, where there is
    more to say than "not a setting of this loss"; ``framework``, ``function``: what it was
    compared with (tests/conformance); ``names``: grpo_core keyword -> the framework's setting;
    ``doc``: the framework settings it stands for and their defaults in that release; ``float32``:
    keywords the framework holds as float32 tensors (their overrides are rounded to float32).
    """

    name: str
    framework: str
    function: str
    settings: dict
    overridable: tuple
    doc: str
    with_rollout: dict = field(default_factory=dict)
    fixed: dict = field(default_factory=dict)
    float32: tuple = ()

    @property
    def names(self) -> dict:
        table = TRL_NAMES if self.framework.startswith("trl") else VERL_NAMES
        return {k: table[k] for k in self.overridable if k in table}


_TRL_RUN = ("eps_low", "eps_high", "beta", "kl_bias_correction", "ratio_level", "rollout_logp", "is_level", "is_mode",
            "is_min", "is_max", "entropy", "top_entropy_quantile", "tensor_metrics")
_TRL_ROLLOUT = dict(is_level="sequence", is_mode="mask", is_max=3.0)
_TRL_DEFAULTS = (
    "Defaults of TRL 1.16.0 (GRPOConfig): epsilon=0.2, epsilon_high=None (= epsilon), delta=None, beta=0.0 "
    "(no reference model; with beta > 0 the k3 term is unclamped and, use_bias_correction_kl=True, multiplied by "
    "the ratio with its gradient), importance_sampling_level='token', top_entropy_quantile=1.0, "
    "vllm_importance_sampling_correction=True with vllm_importance_sampling_mode='sequence_mask', "
    "vllm_importance_sampling_clip_max=3.0, clip_min=None (acts only with vLLM: here, when rollout_logp is given). "
    "TRL never clamps the log-ratio."
)
_VERL_RUN = ("eps_low", "eps_high", "beta", "kl", "kl_agg", "max_len", "rollout_logp", "is_level", "is_mode", "is_min",
             "is_max", "num_items_in_batch", "num_sequences", "num_processes", "tensor_metrics")
_VERL_ROLLOUT = dict(is_level="sequence", is_mode="truncate", is_max=2.0, is_log_clamp=20.0)
_VERL_DEFAULTS = (
    "Defaults of verl 0.9.1 (ActorConfig / _generated_ppo_trainer.yaml): actor.clip_ratio=0.2, clip_ratio_low=0.2, "
    "clip_ratio_high=0.2 (so clip_ratio alone changes nothing), clip_ratio_c=3.0, loss_agg_mode=token-mean, "
    "loss_scale_factor=None (the padded width), use_kl_loss=False (beta=0), kl_loss_coef=0.001 and "
    "kl_loss_type=low_var_kl (k3, log-ratio clamped to +-20, value to +-10) when it is on; "
    "algorithm.rollout_correction.rollout_is=null in the YAML, but the dataclass default is 'sequence' with "
    "rollout_is_threshold=2.0 (truncation from above only, log-weight clamped to +-20): the preset uses the "
    "latter when rollout_logp is given. The trainer passes dp_size, batch_num_tokens and global_batch_size, so "
    "fully masked answers count in the seq-mean modes."
)

LOSS_PRESETS: dict[str, LossPreset] = {
    p.name: p
    for p in (
        LossPreset(
            "trl-grpo", "trl 1.16.0", 'GRPOTrainer._compute_loss, loss_type="grpo"',
            dict(loss="clip", eps_low=0.2, eps_high=None, beta=0.0, kl="k3", kl_bias_correction=True,
                 agg="seq-mean-token-mean", framework_metrics="trl"),
            _TRL_RUN + ("delta", "grad_accum_steps"),
            "GRPOConfig(loss_type='grpo'): -min(min(r, delta) A, clip(r, 1-epsilon, 1+epsilon_high) A) per token, "
            "the mean over each answer's real tokens (max(|o_i|, 1)), the mean over the micro-batch's answers "
            "(empty ones count), divided by gradient_accumulation_steps. " + _TRL_DEFAULTS,
            with_rollout=_TRL_ROLLOUT, fixed={"agg": _TRL_AGG},
        ),
        LossPreset(
            "trl-bnpo", "trl 1.16.0", 'GRPOTrainer._compute_loss, loss_type="bnpo"',
            dict(loss="clip", eps_low=0.2, eps_high=None, beta=0.0, kl="k3", kl_bias_correction=True,
                 agg="token-mean", framework_metrics="trl"),
            _TRL_RUN + ("delta", "grad_accum_steps"),
            "GRPOConfig(loss_type='bnpo'): the clipped loss of trl-grpo, summed over the micro-batch and divided by "
            "the micro-batch's own real tokens (max(n, 1)), then by gradient_accumulation_steps: the normaliser's "
            "scope is the micro-batch. " + _TRL_DEFAULTS,
            with_rollout=_TRL_ROLLOUT,
            fixed={"agg": _TRL_AGG, "num_items_in_batch": "bnpo divides by the micro-batch's own tokens; trl-dapo "
                   "divides by num_items_in_batch"},
        ),
        LossPreset(
            "trl-dr_grpo", "trl 1.16.0", 'GRPOTrainer._compute_loss, loss_type="dr_grpo"',
            dict(loss="clip", eps_low=0.2, eps_high=None, beta=0.0, kl="k3", kl_bias_correction=True,
                 agg="seq-mean-token-sum-norm", max_len=512, framework_metrics="trl"),
            _TRL_RUN + ("delta", "grad_accum_steps", "max_len"),
            "GRPOConfig(loss_type='dr_grpo'): the clipped loss of trl-grpo, summed and divided by B x "
            "max_completion_length (default 512; B the micro-batch's answers, empty ones included), then by "
            "gradient_accumulation_steps. Dr. GRPO also sets scale_rewards='none'; nothing enforces it. "
            + _TRL_DEFAULTS,
            with_rollout=_TRL_ROLLOUT, fixed={"agg": _TRL_AGG},
        ),
        LossPreset(
            "trl-dapo", "trl 1.16.0", 'GRPOTrainer._compute_loss, loss_type="dapo" (the default)',
            dict(loss="clip", eps_low=0.2, eps_high=None, beta=0.0, kl="k3", kl_bias_correction=True,
                 agg="token-mean", framework_metrics="trl"),
            _TRL_RUN + ("delta", "num_items_in_batch", "num_processes"),
            "GRPOConfig(loss_type='dapo'), TRL's default: the clipped loss of trl-grpo, summed over the micro-batch "
            "and divided by num_items_in_batch / num_processes x current_gradient_accumulation_steps / "
            "steps_per_generation, where num_items_in_batch counts the real tokens of the whole generation batch "
            "over all processes and steps_per_generation defaults to gradient_accumulation_steps (their ratio is "
            "then 1): summed over the micro-steps and averaged over processes, the loss is the global token mean. "
            "Without num_items_in_batch the preset uses this batch's tokens (one micro-batch, one process). The "
            "DAPO recipe sets epsilon_high=0.28, mask_truncated_completions=True. " + _TRL_DEFAULTS,
            with_rollout=_TRL_ROLLOUT,
            fixed={"agg": _TRL_AGG, "grad_accum_steps": "dapo's normaliser is num_items_in_batch, which spans the "
                   "accumulated micro-batches (the factor GA / steps_per_generation is 1 by default)"},
        ),
        LossPreset(
            "trl-cispo", "trl 1.16.0", 'GRPOTrainer._compute_loss, loss_type="cispo"',
            dict(loss="cispo", eps_low=1.0, eps_high=0.2 - 1.0, beta=0.0, kl="k3", kl_bias_correction=True,
                 agg="token-mean", framework_metrics="trl"),
            tuple(k for k in _TRL_RUN if k != "eps_low") + ("num_items_in_batch", "num_processes"),
            "GRPOConfig(loss_type='cispo'): -sg(min(r, epsilon_high)) A log pi_theta per token, a one-sided cap at "
            "epsilon_high itself (not 1 + epsilon_high) and no lower bound (grpo_core: eps_low=1, eps_high = "
            "epsilon_high - 1), normalised like dapo. epsilon_high=None falls back to epsilon = 0.2, so the default "
            "caps the weight at 0.2 (eps_high=-0.8); TRL's documentation recommends epsilon_high=5.0 "
            "(eps_high=4.0). " + _TRL_DEFAULTS,
            with_rollout=_TRL_ROLLOUT,
            fixed={"agg": _TRL_AGG, "eps_low": "TRL's cispo weight has no lower bound (epsilon only defaults "
                   "epsilon_high)", "grad_accum_steps": "cispo is normalised like dapo, by num_items_in_batch"},
        ),
        LossPreset(
            "trl-sapo", "trl 1.16.0", 'GRPOTrainer._compute_loss, loss_type="sapo"',
            dict(loss="sapo", sapo_tau_pos=1.0, sapo_tau_neg=TRL_SAPO_TAU_NEG, beta=0.0, kl="k3",
                 kl_bias_correction=True, agg="seq-mean-token-mean", framework_metrics="trl"),
            tuple(k for k in _TRL_RUN if k not in ("eps_low", "eps_high")) + ("sapo_tau_pos", "sapo_tau_neg",
                                                                                "grad_accum_steps"),
            "GRPOConfig(loss_type='sapo'): -(4/tau) sigmoid(tau (r - 1)) A per token with tau = "
            "sapo_temperature_pos (1.0) for A > 0, sapo_temperature_neg (1.05, a float32 tensor in TRL: "
            "1.0499999523) otherwise; aggregated like grpo. No clip, no clip metric. " + _TRL_DEFAULTS,
            with_rollout=_TRL_ROLLOUT,
            fixed={"agg": _TRL_AGG, "eps_low": "SAPO has no clip", "eps_high": "SAPO has no clip"},
            float32=("sapo_tau_pos", "sapo_tau_neg"),
        ),
        LossPreset(
            "verl-vanilla", "verl 0.9.1", "core_algos.compute_policy_loss_vanilla (+ agg_loss, kl_penalty)",
            dict(loss="clip", eps_low=0.2, eps_high=0.2, dual_clip=3.0, log_ratio_clamp=20.0, beta=0.0, kl="k3",
                 kl_clamp="verl", agg="token-mean", framework_metrics="verl"),
            _VERL_RUN + ("agg", "dual_clip"),
            "actor_rollout_ref.actor.policy_loss.loss_mode=vanilla: log-ratio clamped to +-20, PPO's clip, and for "
            "A < 0 the dual clip at -clip_ratio_c A (c = 3), then agg_loss(loss_agg_mode). " + _VERL_DEFAULTS,
            with_rollout=_VERL_ROLLOUT,
            fixed={"delta": "verl has no delta; its dual clip (dual_clip, clip_ratio_c) caps the same ratios"},
        ),
        LossPreset(
            "verl-gspo", "verl 0.9.1", "core_algos.compute_policy_loss_gspo (+ agg_loss, kl_penalty)",
            dict(loss="gspo", eps_low=3e-4, eps_high=4e-4, log_ratio_clamp=(None, 10.0), beta=0.0, kl="k3",
                 kl_clamp="verl", agg="seq-mean-token-mean", framework_metrics="verl"),
            _VERL_RUN + ("agg",),
            "actor_rollout_ref.actor.policy_loss.loss_mode=gspo with the GSPO recipe's "
            "actor_rollout_ref.actor.clip_ratio_low=3e-4, clip_ratio_high=4e-4 and "
            "loss_agg_mode=seq-mean-token-mean (verl's own defaults would be 0.2/0.2 and token-mean: the "
            "function's default seq-mean-token-mean is never used by the trainer). Each token's ratio has the value "
            "of its answer's geometric mean and the gradient of its own log-prob, clamped from above at exp(10); no "
            "dual clip. " + _VERL_DEFAULTS,
            with_rollout=_VERL_ROLLOUT,
            fixed={"ratio_level": "verl's gspo forms the sequence ratio itself"},
        ),
        LossPreset(
            "verl-cispo", "verl 0.9.1", "core_algos.compute_policy_loss_cispo (+ agg_loss, kl_penalty)",
            dict(loss="cispo", eps_low=0.2, eps_high=0.2, log_ratio_clamp=20.0, beta=0.0, kl="k3", kl_clamp="verl",
                 agg="token-mean", framework_metrics="verl"),
            _VERL_RUN + ("agg",),
            "actor_rollout_ref.actor.policy_loss.loss_mode=cispo: -sg(clip(r, 1 - clip_ratio_low, 1 + "
            "clip_ratio_high)) A log pi_theta, a two-sided clip of the weight ([0.8, 1.2] by default; TRL's cispo "
            "with epsilon_high=E is clip_ratio_low >= 1, clip_ratio_high = E - 1), log-ratio clamped to +-20. "
            + _VERL_DEFAULTS,
            with_rollout=_VERL_ROLLOUT,
        ),
        LossPreset(
            "verl-geo_mean", "verl 0.9.1", "core_algos.compute_policy_loss_geo_mean (+ agg_loss, kl_penalty)",
            dict(loss="gmpo", eps_low=0.2, eps_high=0.2, beta=0.0, kl="k3", kl_clamp="verl",
                 agg="seq-mean-token-mean", kl_agg="token-mean", framework_metrics="verl"),
            tuple(k for k in _VERL_RUN if k not in ("num_sequences", "num_processes")),
            "actor_rollout_ref.actor.policy_loss.loss_mode=geo_mean (GMPO): per answer -mean_t(A) exp(mean_t "
            "d_hat), the log-ratio clipped in log space to [-clip_ratio_low, clip_ratio_high] on the side the "
            "advantage's sign makes flat (0.2/0.2 by default; the GMPO paper uses 0.4), no clamp of the log-ratio; "
            "the plain mean over the micro-batch's answers: loss_agg_mode, global_batch_size and dp_size are "
            "ignored by the policy term (the KL term uses loss_agg_mode, token-mean by default). Rollout IS weights "
            "enter as their geometric mean over each answer. " + _VERL_DEFAULTS,
            with_rollout=_VERL_ROLLOUT,
            fixed={"agg": "verl's geo_mean takes the plain mean over answers, whatever loss_agg_mode; kl_agg sets "
                   "the KL term's", "num_sequences": "verl's geo_mean ignores global_batch_size",
                   "num_processes": "verl's geo_mean ignores dp_size"},
        ),
        LossPreset(
            "verl-sapo", "verl 0.9.1", "core_algos.compute_policy_loss_sapo (+ agg_loss, kl_penalty)",
            dict(loss="sapo", sapo_tau_pos=1.0, sapo_tau_neg=1.05, log_ratio_clamp=20.0, beta=0.0, kl="k3",
                 kl_clamp="verl", agg="seq-mean-token-mean", kl_agg="token-mean", framework_metrics="verl"),
            tuple(k for k in _VERL_RUN if k not in ("eps_low", "eps_high")) + ("sapo_tau_pos", "sapo_tau_neg"),
            "actor_rollout_ref.actor.policy_loss.loss_mode=sapo: -(4/tau) sigmoid(tau (r - 1)) A with "
            "actor_rollout_ref.actor.tau_pos=1.0 (A > 0) and tau_neg=1.05 (in the advantages' dtype), log-ratio "
            "clamped to +-20; the policy term is always aggregated with seq-mean-token-mean (with the global batch "
            "info), the KL term with loss_agg_mode (token-mean by default). " + _VERL_DEFAULTS,
            with_rollout=_VERL_ROLLOUT,
            fixed={"agg": "verl's sapo always aggregates its policy term with seq-mean-token-mean; kl_agg sets the "
                   "KL term's (loss_agg_mode)", "eps_low": "SAPO has no clip", "eps_high": "SAPO has no clip"},
        ),
    )
}

_LOSS_KEYWORDS = tuple(
    name for name, p in inspect.signature(grpo_loss).parameters.items() if p.kind is inspect.Parameter.KEYWORD_ONLY
)


def preset_settings(name: str, **overrides) -> dict:
    """The :func:`grpo_core.grpo_loss` keywords of preset ``name`` with ``overrides`` applied.

    Raises ``ValueError`` for an unknown preset (listing the presets), an unknown keyword (listing
    the preset's keywords) and a keyword the preset fixes (saying why, and listing the ones it
    takes), and for the combinations the framework cannot express (verl's truncation has no lower
    bound).
    """
    check_choice(name, "preset", LOSS_PRESETS)
    p = LOSS_PRESETS[name]
    allowed = sorted(p.overridable)
    for key in overrides:
        if key not in _LOSS_KEYWORDS:
            raise ValueError(f"`{key}` is not a keyword of grpo_loss; preset {name!r} takes {allowed}.")
        if key not in p.overridable:
            why = (p.fixed.get(key) or _FRAMEWORK_FIXED[p.framework.split()[0]].get(key) or _FIXED.get(key)
                   or f"{p.framework}'s {p.function} has no such setting")
            raise ValueError(f"preset {name!r} cannot take `{key}`: {why}. It takes {allowed}.")
    settings = dict(p.settings)
    if overrides.get("rollout_logp") is not None:
        settings.update(p.with_rollout)
    settings.update(overrides)
    for key in p.float32:
        if key in overrides and isinstance(overrides[key], (int, float)) and not isinstance(overrides[key], bool):
            settings[key] = torch.tensor(float(overrides[key]), dtype=torch.float32).item()
    if (p.framework.startswith("verl") and settings.get("rollout_logp") is not None
            and settings.get("is_mode") == "truncate" and settings.get("is_min") is not None):
        raise ValueError(
            f"preset {name!r}: verl's truncated IS (a float rollout_is_threshold) has no lower bound, so `is_min` "
            "needs is_mode='mask' (IcePop, a 'low_high' threshold)."
        )
    return settings


def preset_loss(name: str, logp, old_logp, ref_logp, advantages, mask, **overrides):
    """The loss of a framework's preset: :func:`grpo_core.grpo_loss` with the settings of
    :data:`LOSS_PRESETS` ``[name]``, then ``overrides`` (grpo_core's keywords).

    Presets (each one's ``doc`` lists the framework settings and their release defaults):

    ================  ========================================================================
    trl-grpo          TRL 1.16.0 ``loss_type="grpo"``: per-answer token mean, mean over answers
    trl-bnpo          ``"bnpo"``: token mean over the micro-batch (local normaliser)
    trl-dr_grpo       ``"dr_grpo"``: sum / (B x max_completion_length)
    trl-dapo          ``"dapo"`` (TRL's default): sum / whole batch's tokens (``num_items_in_batch``)
    trl-cispo         ``"cispo"``: detached weight capped at epsilon_high, normalised like dapo
    trl-sapo          ``"sapo"``: soft gate, aggregated like grpo
    verl-vanilla      verl 0.9.1 ``loss_mode=vanilla``: clip, dual clip c = 3, clamp +-20, token-mean
    verl-gspo         ``gspo`` with the recipe's 3e-4 / 4e-4 and seq-mean-token-mean
    verl-cispo        ``cispo``: weight clipped to [0.8, 1.2]
    verl-geo_mean     ``geo_mean`` (GMPO): geometric mean of clipped ratios, mean over answers
    verl-sapo         ``sapo``: soft gate, seq-mean-token-mean
    ================  ========================================================================

    Args:
        name: a key of :data:`LOSS_PRESETS`.
        logp, old_logp, ref_logp, advantages, mask: as for :func:`grpo_core.grpo_loss`
            (``ref_logp`` may be None: every preset defaults to beta = 0, as both frameworks do).
        overrides: grpo_core keywords; see :func:`preset_settings` for what is refused.

    Returns:
        ``(loss, metrics)`` of :func:`grpo_core.grpo_loss`, the metrics including the framework's
        own names (TRL's ``clip_ratio/...``, verl's ``actor/pg_clipfrac``, ...).
    """
    settings = preset_settings(name, **overrides)
    try:
        return grpo_loss(logp, old_logp, ref_logp, advantages, mask, **settings)
    except ValueError as err:  # a contradiction between overrides: say which keywords the preset takes
        if any(f"`{key}`" in str(err) or f"'{key}'" in str(err) for key in overrides):
            raise ValueError(f"preset {name!r}: {err} It takes {sorted(LOSS_PRESETS[name].overridable)}.") from None
        raise
