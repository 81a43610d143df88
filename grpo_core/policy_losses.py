"""The per-token policy losses that :func:`grpo_core.grpo_loss` dispatches on, one small function each.

A *policy-loss kind* turns the log-ratio ``d_t = log pi_theta(o_t) - log pi_old(o_t)`` of every
token and the advantages into a per-token loss (to minimise), before the aggregation of
:func:`grpo_core.aggregate`. :data:`POLICY_LOSSES` is their registry (in the spirit of verl's
``register_policy_loss``)::

    "clip"   PPO's clipped surrogate (book Eq. ``clipped-surrogate``), with DAPO's separate upper
             range, TRL's two-sided ``delta`` and verl's dual clip ``c`` (book Eq. ``clip-dual``):
             -min(min(r, delta) A, clip(r, 1 - eps_low, 1 + eps_high) A), and for A < 0 at most -c A
    "cispo"  CISPO (MiniMax-M1): -sg(clip(r, 1 - eps_low, 1 + eps_high)) A log pi_theta
    "sapo"   SAPO (Qwen): -(4 / tau) sigmoid(tau (r - 1)) A, tau = tau_pos if A > 0 else tau_neg
    "gmpo"   GMPO (verl "geo_mean"): one loss per answer, -mean_t(A) exp(mean_t clip_A(d_t)),
             the log-ratio clipped in log space on the side that its advantage's sign makes flat
    "gspo"   GSPO as verl writes it: every token's ratio has the value of the answer's geometric
             mean s_i and the gradient of its own token, then PPO's clip

Every kind takes the log-ratio ``[B, T]`` (``[B, 1]``, one per answer, at the sequence level)
*already zero at padding* (``grpo_loss`` masks before anything is exponentiated), so a value at a masked position can change neither the loss nor its gradient.
``log_ratio_clamp`` bounds the log of the ratio each kind exponentiates (verl clamps it to
[-20, 20] for vanilla, cispo and sapo, from above at 10 for gspo, not at all for geo_mean; TRL
never).

Also here, the two masks and weights that ``grpo_loss`` multiplies in: the importance weight
between the trainer's pi_old and the inference engine's sampling policy
(:func:`rollout_importance_weights`, TRL's ``vllm_importance_sampling_correction``, verl's
``rollout_is``) and TRL's high-entropy token mask (:func:`high_entropy_mask`).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Callable, NamedTuple

import torch

from ._checks import (
    ArgumentTypeError,
    as_float_tensor,
    as_mask,
    check_choice,
    check_finite_at,
    check_nonneg_number,
    check_positive,
    check_same_shape,
    check_unit_interval,
)

__all__ = [
    "POLICY_LOSSES",
    "PolicyLoss",
    "PolicyTerms",
    "register_policy_loss",
    "IS_LEVELS",
    "IS_MODES",
    "rollout_importance_weights",
    "high_entropy_mask",
]


class PolicyTerms(NamedTuple):
    """What a policy-loss kind returns, tensors ``[B, T]`` (``ratio`` and a flag may be ``[B, 1]``
    at the sequence level, where the kind receives one log-ratio per answer).

    ``loss``: the per-token loss (with gradient); ``ratio``: the ratio it uses (for metrics);
    ``low`` / ``high``: bool, where the kind's clip or cap takes the token's gradient away
    (``low``: the lower side, ``high``: the upper side; grpo_loss's ``clip_frac_low`` and
    ``clip_frac_high``); ``extra``: bool or float tensors from which grpo_loss computes the
    frameworks' own metrics (``"trl_low"``, ``"trl_high"``, ``"trl_cispo"``, ``"verl_clipfrac"``,
    ``"verl_clipfrac_lower"``, ``"verl_log_ratio"``, ``"dual"``), where the kind has them.
    """

    loss: torch.Tensor
    ratio: torch.Tensor
    low: torch.Tensor
    high: torch.Tensor
    extra: dict


@dataclass(frozen=True)
class PolicyLoss:
    """A policy-loss kind: ``fn(logp, log_ratio, advantages, mask, settings) -> PolicyTerms``, a
    one-line ``description``, the ``ratio_levels`` it accepts, the keyword ``options`` of
    :func:`grpo_core.grpo_loss` that only this kind reads, and ``is_weighting``: how the
    rollout importance weights enter (``"token"``: multiplied into each token's loss;
    ``"geometric"``: their geometric mean over the answer, as verl's geo_mean does)."""

    name: str
    fn: Callable
    description: str
    ratio_levels: tuple = ("token",)
    options: tuple = ()
    is_weighting: str = "token"


#: Every policy-loss kind of :func:`grpo_core.grpo_loss`, by name.
POLICY_LOSSES: dict[str, PolicyLoss] = {}


def register_policy_loss(name: str, description: str, ratio_levels=("token",), options=(), is_weighting="token"):
    """Decorator: add ``fn(logp, log_ratio, advantages, mask, settings)`` to :data:`POLICY_LOSSES`."""
    if not isinstance(name, str) or not name:
        raise ArgumentTypeError(f"`name` must be a non-empty str (the policy loss's name); got {name!r}.")

    def deco(fn):
        if name in POLICY_LOSSES:
            raise ValueError(f"`name`={name!r}: a policy loss of that name is already registered; pick another.")
        POLICY_LOSSES[name] = PolicyLoss(name, fn, description, tuple(ratio_levels), tuple(options), is_weighting)
        return fn

    return deco


def clamp_bounds(log_ratio_clamp, name: str = "log_ratio_clamp") -> tuple[float | None, float | None]:
    """``None`` (no clamp), a number c (the interval [-c, c]) or a pair ``(low, high)`` whose
    entries may be None (one-sided, e.g. ``(None, 10.0)``, verl's gspo)."""
    if log_ratio_clamp is None:
        return None, None
    if isinstance(log_ratio_clamp, numbers.Real) and not isinstance(log_ratio_clamp, bool):
        c = check_positive(log_ratio_clamp, name)
        return -c, c
    if isinstance(log_ratio_clamp, (tuple, list)) and len(log_ratio_clamp) == 2:
        lo, hi = log_ratio_clamp
        for v in (lo, hi):
            if v is not None and (isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v)):
                raise ValueError(f"`{name}` entries must be finite numbers or None; got {log_ratio_clamp!r}.")
        if lo is not None and hi is not None and not lo < hi:
            raise ValueError(f"`{name}`=({lo}, {hi}) must have low < high.")
        return (None if lo is None else float(lo)), (None if hi is None else float(hi))
    raise ValueError(
        f"`{name}` must be None, a number c (clamp to [-c, c]) or a pair (low, high) with None for an open side; "
        f"got {log_ratio_clamp!r}."
    )


def _clamp(x: torch.Tensor, bounds) -> torch.Tensor:
    lo, hi = bounds
    if lo is None and hi is None:
        return x
    return x.clamp(min=lo, max=hi)


def clip_safe_log_ratio(log_ratio: torch.Tensor, adv: torch.Tensor, eps_high: float, delta=None,
                        dual_clip=None) -> torch.Tensor:
    """The log-ratio of PPO's clip, clamped from above where the clip (or a cap) is certainly active.

    ``exp(log_ratio)`` overflows for a gap above about 88.7 in float32 and 11 in float16; the
    clipped branch then still wins the ``min``, but autograd multiplies its zero gradient by the
    infinite derivative of ``exp`` and returns NaN. Beyond these bounds the objective is flat in
    the ratio, so clamping there changes neither its value nor its (zero) gradient::

        A >= 0:  log_ratio <= log(1 + eps_high) + 1             (r > e (1 + eps_high): clipped)
        A <  0:  log_ratio <= log(max(c, 1 + eps_high)) + 1     (c = min(delta, dual_clip): capped)

    With one ratio per answer (``log_ratio`` ``[B, 1]``) the bound is the largest of its tokens'
    bounds, beyond which every token of the answer is flat. Below the bounds nothing changes (the
    loss and its gradient are bitwise what they were); for ``A < 0`` without a
    cap nothing is clamped, because there the loss ``-A r`` really grows with the ratio (an
    overflow is then a real one, which :func:`grpo_core.grpo_loss` reports).
    """
    up = math.log1p(eps_high) + 1.0
    caps = [c for c in (delta, dual_clip) if c is not None]
    down = math.log(max(min(caps), 1.0 + eps_high)) + 1.0 if caps else math.inf
    bound = torch.where(adv >= 0, torch.full_like(adv, up), torch.full_like(adv, down))
    # one ratio per answer ([B, 1]): clamp where every token of the answer is flat, keeping the shape
    # (and so the order of autograd's sums) of the unclamped ratio
    dims = [i for i in range(bound.dim()) if log_ratio.shape[i] == 1 and bound.shape[i] != 1]
    if dims:
        bound = bound.amax(dim=dims, keepdim=True)
    return log_ratio.clamp(max=bound)


def exp_safe_bound(dtype: torch.dtype) -> float:
    """``log`` of the dtype's largest finite value, minus 1: ``exp`` of anything below is finite
    (about 87.7 in float32 and bfloat16, 10.1 in float16, 708.8 in float64)."""
    return math.log(torch.finfo(dtype).max) - 1.0


# ------------------------------------------------------------------------------------- kinds


def clip_objective(ratio, adv, lo: float, hi: float, delta=None, dual_clip=None) -> torch.Tensor:
    """The per-token objective (to maximise) of the ``"clip"`` kind, from the ratio itself.

    ``min(r1 A, clip(r, 1 - lo, 1 + hi) A)`` with ``r1 = min(r, delta)`` (TRL's two-sided
    clip; ``r1 = r`` when delta is None); with ``dual_clip = c``, for ``A < 0`` at least ``c A``
    (verl's dual clip: the loss ``-A r`` of a bad answer whose ratio has run away is capped at
    ``-c A``). Book Eqs. ``clipped-surrogate`` and ``clip-dual``.
    """
    return _clip_parts(ratio, adv, lo, hi, delta, dual_clip)[0]


def _clip_parts(ratio, adv, lo, hi, delta, dual_clip):
    r1 = ratio if delta is None else ratio.clamp(max=delta)
    plain = torch.minimum(r1 * adv, ratio.clamp(1.0 - lo, 1.0 + hi) * adv)
    if dual_clip is None:
        return plain, r1, None
    dual = (adv < 0) & (dual_clip * adv > plain)
    return torch.where(adv < 0, torch.maximum(plain, dual_clip * adv), plain), r1, dual


@register_policy_loss(
    "clip",
    "PPO/GRPO clipped surrogate -min(r A, clip(r) A); with delta (TRL) and dual_clip (verl clip_ratio_c)",
    ratio_levels=("token", "sequence"),
    options=("delta", "dual_clip"),
)
def _clip_kind(logp, log_ratio, adv, mask, s):
    lo, hi = s["eps_low"], s["eps_high"]
    log_r = _clamp(log_ratio, s["bounds"])
    ratio = torch.exp(log_r)  # for the flags and metrics (inf if the gap overflows; no gradient is taken)
    safe = torch.exp(clip_safe_log_ratio(log_r, adv, hi, s["delta"], s["dual_clip"]))
    obj, r1, dual = _clip_parts(safe, adv, lo, hi, s["delta"], s["dual_clip"])
    low = (ratio < 1.0 - lo) & (adv < 0)
    high = (ratio > 1.0 + hi) & (adv > 0)
    extra = {"verl_log_ratio": log_r}
    if dual is not None:
        extra["dual"] = dual
    if s["need"]:
        extra["trl_low"] = (r1 < 1.0 - lo) & (adv < 0)
        extra["trl_high"] = (r1 > 1.0 + hi) & (adv > 0)
        l1, l2 = -adv * ratio, -adv * ratio.clamp(1.0 - lo, 1.0 + hi)
        c = math.inf if s["dual_clip"] is None else s["dual_clip"]
        extra["verl_clipfrac"] = l2 > l1
        extra["verl_clipfrac_lower"] = (torch.maximum(l1, l2) > -adv * c) & (adv < 0)
    return PolicyTerms(-obj, ratio, low, high, extra)


@register_policy_loss(
    "cispo",
    "CISPO -sg(clip(r, 1 - eps_low, 1 + eps_high)) A log pi_theta (MiniMax-M1; TRL 'cispo', verl 'cispo')",
    ratio_levels=("token", "sequence"),
)
def _cispo_kind(logp, log_ratio, adv, mask, s):
    lower, upper = 1.0 - s["eps_low"], 1.0 + s["eps_high"]
    ratio = torch.exp(_clamp(log_ratio, s["bounds"]))
    weight = ratio.clamp(lower, upper).detach()
    lp = torch.where(mask > 0, logp, torch.zeros_like(logp))
    loss = -weight * adv * lp
    low, high = ratio < lower, ratio > upper
    extra = {"verl_log_ratio": _clamp(log_ratio, s["bounds"])}
    if s["need"]:
        extra["trl_cispo"] = high & (adv > 0)
        extra["verl_clipfrac"] = ratio != ratio.clamp(lower, upper)
        extra["verl_clipfrac_lower"] = torch.zeros_like(high)
    return PolicyTerms(loss, ratio, low, high, extra)


@register_policy_loss(
    "sapo",
    "SAPO -(4/tau) sigmoid(tau (r - 1)) A, a soft gate instead of a clip (TRL 'sapo', verl 'sapo')",
    ratio_levels=("token", "sequence"),
    options=("sapo_tau_pos", "sapo_tau_neg"),
)
def _sapo_kind(logp, log_ratio, adv, mask, s):
    # the gate is saturated long before exp overflows; the bound keeps its zero gradient from being 0 * inf
    ratio = torch.exp(_clamp(log_ratio, s["bounds"]).clamp(max=exp_safe_bound(log_ratio.dtype)))
    tau_pos = torch.tensor(s["sapo_tau_pos"], dtype=ratio.dtype, device=ratio.device)
    tau_neg = torch.tensor(s["sapo_tau_neg"], dtype=ratio.dtype, device=ratio.device)
    tau = torch.where(adv > 0, tau_pos, tau_neg)
    gate = torch.sigmoid(tau * (ratio - 1.0)) * (4.0 / tau)
    none = torch.zeros_like(ratio, dtype=torch.bool)
    extra = {"verl_log_ratio": _clamp(log_ratio, s["bounds"])}
    if s["need"]:
        extra["verl_clipfrac"] = none
        extra["verl_clipfrac_lower"] = none
    return PolicyTerms(-gate * adv, ratio, none, none, extra)


@register_policy_loss(
    "gmpo",
    "GMPO -mean_t(A) * exp(mean_t of the log-ratio clipped in log space to [-eps_low, eps_high]) per answer "
    "(verl 'geo_mean')",
    is_weighting="geometric",
)
def _gmpo_kind(logp, log_ratio, adv, mask, s):
    lo, hi = s["eps_low"], s["eps_high"]
    d = _clamp(log_ratio, s["bounds"])
    sign = torch.sign(adv)
    d_clip = d.clamp(-lo, hi)
    d_hat = sign * torch.minimum(sign * d, sign * d_clip)
    n = mask.sum(dim=1).clamp(min=1.0)
    rho = torch.exp((d_hat * mask).sum(dim=1) / n)
    adv_mean = (adv * mask).sum(dim=1) / n
    loss = (-adv_mean * rho)[:, None].expand_as(d)
    low = (d < -lo) & (adv < 0)
    high = (d > hi) & (adv > 0)
    extra = {"verl_log_ratio": d}
    if s["need"]:
        clipped = d != d_clip
        extra["verl_clipfrac"] = clipped & (adv > 0)
        extra["verl_clipfrac_lower"] = clipped & (adv < 0)
    return PolicyTerms(loss, rho[:, None].expand_as(d).detach(), low, high, extra)


@register_policy_loss(
    "gspo",
    "GSPO in verl's token form: value s_i = exp(mean_t d_t), gradient of the token's own log-prob, then the clip",
)
def _gspo_kind(logp, log_ratio, adv, mask, s):
    lo, hi = s["eps_low"], s["eps_high"]
    n = mask.sum(dim=1).clamp(min=1.0)
    seq = ((log_ratio * mask).sum(dim=1) / n).detach()
    lp = torch.where(mask > 0, logp, torch.zeros_like(logp))
    log_s = _clamp(lp - lp.detach() + seq[:, None], s["bounds"])
    ratio = torch.exp(log_s)
    safe = torch.exp(clip_safe_log_ratio(log_s, adv, hi))
    obj = torch.minimum(safe * adv, safe.clamp(1.0 - lo, 1.0 + hi) * adv)
    low = (ratio < 1.0 - lo) & (adv < 0)
    high = (ratio > 1.0 + hi) & (adv > 0)
    extra = {"verl_log_ratio": log_ratio}
    if s["need"]:
        l1, l2 = -adv * ratio, -adv * ratio.clamp(1.0 - lo, 1.0 + hi)
        extra["verl_clipfrac"] = l2 > l1
        extra["verl_clipfrac_lower"] = torch.zeros_like(low)
    return PolicyTerms(-obj, ratio, low, high, extra)


# ---------------------------------------------------------------- rollout importance weights

#: Where :func:`rollout_importance_weights` puts the weight.
IS_LEVELS = {
    "token": "one weight per token, pi_old(o_t) / pi_sampler(o_t) (TRL 'token_*', verl rollout_is='token')",
    "sequence": "one weight per answer, the product over its tokens (TRL 'sequence_*', verl rollout_is='sequence')",
}
#: What :func:`rollout_importance_weights` does with a weight outside ``[is_min, is_max]``.
IS_MODES = {
    "truncate": "clamp it into the bounds (TRL '*_truncate'; verl's TIS, a float rollout_is_threshold, upper only)",
    "mask": "set it to 0: the token or answer leaves the loss (TRL '*_mask'; verl's IcePop, 'low_high' threshold)",
}


def rollout_importance_weights(old_logp, rollout_logp, mask, level: str = "token", mode: str = "truncate",
                               is_min: float | None = None, is_max: float | None = None,
                               log_clamp: float | None = None) -> torch.Tensor:
    """The importance weight between the trainer's pi_old and the policy that really sampled.

    An inference engine (vLLM, SGLang) samples with slightly different probabilities than the
    trainer computes for the same weights; the correction multiplies each token's policy loss by
    ``w = pi_old / pi_sampler`` (book section ``objective-rollout-is``)::

        token:     w_t = exp(d_t)                d_t = log pi_old(o_t) - log pi_sampler(o_t)
        sequence:  w_i = exp(sum_t d_t)          (a product of token ratios, not a geometric mean)

    then ``mode="truncate"`` clamps ``w`` into ``[is_min, is_max]`` (either bound may be None)
    and ``mode="mask"`` sets ``w = 0`` outside it. ``log_clamp = c`` clamps the log-weight to
    ``[-c, c]`` first (verl: 20). The weight is a constant: no gradient flows through it. At
    padding ``d = 0``, whatever the inputs hold there.

    Args:
        old_logp, rollout_logp: ``[B, T]`` log pi_old and the sampler's log-probabilities.
        mask: ``[B, T]`` 0/1 (in the dtype of ``old_logp``).
        level: ``"token"`` or ``"sequence"`` (:data:`IS_LEVELS`).
        mode: ``"truncate"`` or ``"mask"`` (:data:`IS_MODES`).
        is_min, is_max: the bounds (None: open).
        log_clamp: None or c > 0.

    Returns:
        ``[B, T]`` weights (a sequence weight is repeated over the answer's tokens).
    """
    check_choice(level, "is_level", IS_LEVELS)
    check_choice(mode, "is_mode", IS_MODES)
    lo = None if is_min is None else check_nonneg_number(is_min, "is_min")
    hi = None if is_max is None else check_positive(is_max, "is_max")
    if lo is not None and hi is not None and lo > hi:
        raise ValueError(f"`is_min`={is_min} must be <= `is_max`={is_max}.")
    bounds = clamp_bounds(log_clamp, "is_log_clamp")
    old_logp = as_float_tensor(old_logp, "old_logp")
    rollout_logp = as_float_tensor(rollout_logp, "rollout_logp").to(device=old_logp.device, dtype=old_logp.dtype)
    check_same_shape(old_logp, "old_logp", rollout_logp, "rollout_logp")
    mask = as_mask(mask, old_logp)
    check_finite_at(old_logp, mask > 0, "old_logp")
    check_finite_at(rollout_logp, mask > 0, "rollout_logp")
    d = torch.where(mask > 0, (old_logp - rollout_logp).detach(), torch.zeros_like(old_logp))
    if level == "sequence":
        d = d.sum(dim=1, keepdim=True).expand_as(old_logp)
    w = torch.exp(_clamp(d, bounds))
    if mode == "truncate":
        if lo is not None or hi is not None:
            w = w.clamp(min=lo, max=hi)
    else:
        keep = torch.ones_like(w, dtype=torch.bool)
        if lo is not None:
            keep &= w >= lo
        if hi is not None:
            keep &= w <= hi
        w = torch.where(keep, w, torch.zeros_like(w))
    return w


def high_entropy_mask(entropy, mask, top_entropy_quantile: float) -> torch.Tensor:
    """TRL's ``top_entropy_quantile``: keep only the tokens whose entropy is in the top fraction.

    The threshold is the ``1 - top_entropy_quantile`` quantile (linear interpolation) of the real
    tokens' entropies, computed in float32 as TRL does; a real token is kept when its entropy is
    at least that. ``top_entropy_quantile = 1`` keeps every real token. (TRL gathers the
    entropies of every process first; this is the one-process case.)

    Args:
        entropy: ``[B, T]`` per-token entropy of pi_theta.
        mask: ``[B, T]`` 0/1.
        top_entropy_quantile: in (0, 1].

    Returns:
        ``[B, T]`` bool: kept tokens (never a padding position).
    """
    q = check_unit_interval(top_entropy_quantile, "top_entropy_quantile", " (a fraction of the tokens)")
    if q == 0.0:
        raise ValueError("`top_entropy_quantile` must be > 0 (the fraction of tokens kept); got 0.")
    entropy = as_float_tensor(entropy, "entropy")
    mask = as_mask(mask, entropy)
    real = mask > 0
    check_finite_at(entropy, real, "entropy")
    if q == 1.0:
        return real
    values = entropy[real].float()
    if values.numel() == 0:
        return torch.zeros_like(real)
    threshold = torch.quantile(values, 1.0 - q)
    return (torch.where(real, entropy, torch.zeros_like(entropy)) >= threshold) & real
