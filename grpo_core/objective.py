"""The GRPO objective: clipped surrogate, loss aggregation, and the loss a trainer minimises.

DeepSeekMath Eq. 3 (the book's Eq. ``grpo-objective``), per question q with G answers::

    J = (1/G) sum_i (1/|o_i|) sum_t [ min(r_it A_it, clip(r_it, 1-eps, 1+eps) A_it) - beta KL_it ]

with the per-token ratio ``r_it = pi_theta(o_it) / pi_old(o_it)`` and ``KL_it`` a per-token
estimate of KL(pi_theta || pi_ref) (k3 in the paper). ``grpo_loss`` returns ``-J``, aggregated
over tokens in one of the modes of :data:`AGGREGATIONS`, with the per-token policy loss of a kind
of :data:`grpo_core.POLICY_LOSSES` (PPO's clip by default; CISPO, SAPO, GMPO, GSPO) and the
options that TRL and verl add (:data:`grpo_core.LOSS_PRESETS` names their combinations).
"""

from __future__ import annotations

import torch

import math

from ._checks import (
    as_float_tensor,
    as_mask,
    check_choice,
    check_clip_range,
    check_int,
    check_finite,
    check_finite_at,
    check_nonempty_batch,
    check_overflow,
    check_nonneg_number,
    check_positive,
    check_real,
    check_same_shape,
)
from .kl import KL_CLAMPS, KL_KINDS, kl_estimate
from .policy_losses import (
    POLICY_LOSSES,
    _clamp,
    clamp_bounds,
    clip_objective,
    clip_safe_log_ratio,
    high_entropy_mask,
    rollout_importance_weights,
)

__all__ = [
    "FRAMEWORK_METRICS",
    "clipped_surrogate",
    "aggregate",
    "grpo_loss",
    "AGGREGATIONS",
    "clip_active",
    "aggregation_weights",
    "sequence_log_ratio",
    "SEQUENCE_RATIOS",
    "RATIO_LEVELS",
]

#: Where the importance ratio of :func:`grpo_loss` lives.
RATIO_LEVELS = {
    "token": "one ratio per token, pi_theta / pi_old of that token (GRPO, PPO)",
    "sequence": "one ratio per answer, the geometric mean of its token ratios (GSPO)",
}

#: Loss aggregation modes (verl's names; TRL's ``loss_type`` in brackets).
AGGREGATIONS = {
    "seq-mean-token-mean": "mean over each answer's tokens, then over answers (DeepSeekMath; TRL 'grpo', 'sapo')",
    "token-mean": "sum over all tokens / number of tokens (DAPO; TRL 'bnpo': this micro-batch's tokens; "
                  "'dapo', 'cispo': the whole batch's, num_items_in_batch)",
    "seq-mean-token-sum": "sum over each answer's tokens, then mean over answers",
    "seq-mean-token-sum-norm": "sum over all tokens / (number of answers * max_len) (Dr. GRPO; TRL 'dr_grpo')",
}


def _broadcast_advantages(advantages, like: torch.Tensor, real: torch.Tensor | None = None) -> torch.Tensor:
    """``advantages`` as ``like``'s shape and dtype; finite everywhere, or (``real`` given) where
    ``real`` is True, and set to 0 elsewhere (a masked position's advantage never matters)."""
    adv = as_float_tensor(advantages, "advantages").to(device=like.device)
    if adv.shape == like.shape:
        out = adv
    elif like.dim() == 2 and adv.shape == like.shape[:1]:
        out = adv.unsqueeze(-1).expand_as(like)
    else:
        raise ValueError(
            f"`advantages` has shape {tuple(adv.shape)}; with log-probabilities of shape "
            f"{tuple(like.shape)} it must be [B] = {tuple(like.shape[:1])} (one advantage per answer, "
            f"broadcast over its tokens) or {tuple(like.shape)} (one per token)."
        )
    if real is None:
        check_finite(out, "advantages")
        return out.to(like.dtype)
    check_finite_at(out, real, "advantages")
    out = out.to(like.dtype)
    return torch.where(real, out, torch.zeros_like(out))


def _ratio(logp, old_logp) -> tuple[torch.Tensor, torch.Tensor]:
    lp = as_float_tensor(logp, "logp")
    old = as_float_tensor(old_logp, "old_logp")
    check_same_shape(lp, "logp", old, "old_logp")
    if lp.dim() not in (1, 2):
        raise ValueError(f"`logp` must be [B] or [B, T]; got shape {tuple(lp.shape)}.")
    check_finite(lp, "logp")
    check_finite(old, "old_logp")
    return lp, torch.exp(lp - old.detach())


def _max_len(max_len, m: torch.Tensor) -> int:
    """The constant of ``"seq-mean-token-sum-norm"``: ``max_len``, or the padded length T if None.

    ``max_len`` is the generation limit, so no answer of the mask ``m`` may be longer."""
    if max_len is None:
        if m.shape[1] == 0:
            raise ValueError(
                "`max_len` is None, so mode 'seq-mean-token-sum-norm' would divide by the padded length T, "
                "and the mask has T = 0 columns; pass max_len (the generation limit, e.g. max_len=512)."
            )
        return m.shape[1]
    max_len = check_int(max_len, "max_len", 1, " (the generation limit)")
    longest = int(m.sum(dim=1).max()) if m.numel() else 0
    if max_len < longest:
        raise ValueError(
            f"`max_len`={max_len} is below the longest answer of the mask ({longest} tokens); max_len is the "
            f"generation limit, which no answer exceeds: pass max_len >= {longest} (or None for the padded length)."
        )
    return max_len


def clipped_surrogate(
    logp,
    old_logp,
    advantages,
    eps_low: float = 0.2,
    eps_high: float | None = None,
    *,
    delta: float | None = None,
    dual_clip: float | None = None,
    log_ratio_clamp=None,
) -> torch.Tensor:
    """Per-token clipped surrogate ``min(r A, clip(r, 1 - eps_low, 1 + eps_high) A)`` (to maximise).

    Book Eq. ``clipped-surrogate``; PPO (Schulman et al. 2017) Eq. 7 with DAPO's separate
    upper range ("clip-higher"), and the two caps that the frameworks add for ratios that have
    run far from 1 (book Eq. ``clip-dual``):

    - ``delta`` (TRL's two-sided GRPO, INTELLECT-2): the unclipped branch uses ``min(r, delta)``,
      so for ``A < 0`` the objective is at least ``delta A``;
    - ``dual_clip = c`` (verl's ``clip_ratio_c``, default 3 there; Ye et al. 2020): for ``A < 0``
      the objective is at least ``c A``. With ``c = delta`` the two agree exactly.

    Args:
        logp: log pi_theta of the sampled tokens, ``[B, T]`` (or ``[B]`` for one ratio per answer);
            gradients flow through it.
        old_logp: log pi_old of the same tokens (the policy that sampled them), same shape;
            treated as a constant.
        advantages: ``[B]`` (broadcast over tokens) or the shape of ``logp``.
        eps_low: lower clip range; the ratio is clipped below at ``1 - eps_low``.
        eps_high: upper clip range; defaults to ``eps_low``.
        delta: None (off) or a number > 1: the cap of the unclipped ratio.
        dual_clip: None (off) or a number c > 1.
        log_ratio_clamp: None, a number c (the log-ratio is clamped to ``[-c, c]`` before ``exp``,
            as verl does with c = 20) or a pair ``(low, high)`` with None for an open side.

    Returns:
        The per-token objective, shape of ``logp``. Where the clip is active (``r > 1 + eps_high``
        with ``A > 0``, or ``r < 1 - eps_low`` with ``A < 0``), or a cap acts, it does not depend
        on ``logp``, so its gradient there is exactly 0, for any finite gap ``logp - old_logp``:
        the log-ratio is clamped at a bound beyond which the clip (or cap) is certainly active
        (:func:`grpo_core.policy_losses.clip_safe_log_ratio`), so ``exp`` cannot overflow there.

    Raises:
        ValueError: where the objective itself overflows the dtype (``A < 0`` with no cap and a
        ratio beyond the dtype's range, or an advantage such as 3e38): the argument is named.
    """
    lo, hi = check_clip_range(eps_low, eps_high)
    delta, dual_clip = _check_caps(delta, dual_clip)
    bounds = clamp_bounds(log_ratio_clamp)
    lp, old = _logps(logp, old_logp)
    adv = _broadcast_advantages(advantages, lp)
    ratio = torch.exp(clip_safe_log_ratio(_clamp(lp - old.detach(), bounds), adv, hi, delta, dual_clip))
    out = clip_objective(ratio, adv, lo, hi, delta, dual_clip)
    if not bool(torch.isfinite(out).all()):
        check_overflow(out, "advantages" if bool(torch.isfinite(ratio).all()) else "logp", _OVERFLOW_HINT)
    return out


def _logps(logp, old_logp) -> tuple[torch.Tensor, torch.Tensor]:
    lp = as_float_tensor(logp, "logp")
    old = as_float_tensor(old_logp, "old_logp")
    check_same_shape(lp, "logp", old, "old_logp")
    if lp.dim() not in (1, 2):
        raise ValueError(f"`logp` must be [B] or [B, T]; got shape {tuple(lp.shape)}.")
    check_finite(lp, "logp")
    check_finite(old, "old_logp")
    return lp, old.to(device=lp.device, dtype=lp.dtype)


def _check_caps(delta, dual_clip) -> tuple[float | None, float | None]:
    if delta is not None:
        delta = check_real(delta, "delta", " (TRL's cap of the unclipped ratio)")
        if not delta > 1.0:
            raise ValueError(f"`delta` must be > 1 (a cap on ratios above 1 + eps_high); got {delta!r}. Use None for no cap.")
    if dual_clip is not None:
        dual_clip = check_real(dual_clip, "dual_clip", " (verl's clip_ratio_c)")
        if not dual_clip > 1.0:
            raise ValueError(f"`dual_clip` must be > 1 (verl asserts clip_ratio_c > 1); got {dual_clip!r}. Use None for no dual clip.")
    return delta, dual_clip


def _global_count(value, name: str, what: str) -> int | None:
    """None, or a positive int (a 0-d integer tensor is accepted, as TRL passes one)."""
    if value is None:
        return None
    if isinstance(value, torch.Tensor) and value.dim() == 0 and not value.is_floating_point() and value.dtype != torch.bool:
        value = int(value)
    return check_int(value, name, 1, f" ({what})")


_OVERFLOW_HINT = (
    "the true value is beyond the dtype's range. A ratio exp(logp - old_logp) that large is an answer "
    "sampled by a very different policy: cap it (dual_clip, delta), clamp it (log_ratio_clamp), or drop "
    "the answer; scale huge advantages down (whiten the rewards); or compute in float64."
)


def aggregate(
    values,
    mask,
    mode: str = "seq-mean-token-mean",
    max_len: int | None = None,
    *,
    num_items_in_batch: int | None = None,
    num_sequences: int | None = None,
) -> torch.Tensor:
    """Reduce per-token values ``[B, T]`` to a scalar over the tokens where ``mask`` is 1.

    Modes (book Eq. ``aggregation``; see :data:`AGGREGATIONS`), with ``m`` the mask and
    ``L_i = sum_t m_it`` the length of answer i::

        "seq-mean-token-mean":     (1/B) sum_i (1/L_i) sum_t m_it v_it
        "token-mean":              sum_it m_it v_it / sum_i L_i
        "seq-mean-token-sum":      (1/B) sum_i sum_t m_it v_it
        "seq-mean-token-sum-norm": sum_it m_it v_it / (B * max_len)

    The normaliser's *scope* (book section ``objective-normaliser-scope``): by default ``B`` and
    ``sum_i L_i`` are those of this batch. When the batch is one micro-batch of a larger one
    (gradient accumulation, several processes), pass the larger batch's counts:

    - ``num_items_in_batch``: the number of real tokens of the whole batch, the denominator of
      ``"token-mean"`` (TRL's ``num_items_in_batch`` of ``loss_type="dapo"``, verl's
      ``batch_num_tokens``);
    - ``num_sequences``: the number of answers of the whole batch, the ``B`` of the three
      ``"seq-mean-*"`` modes (verl's ``global_batch_size``).

    Then the sum over micro-batches of their ``aggregate`` is the whole batch's.

    Args:
        values: ``[B, T]`` per-token values.
        mask: ``[B, T]`` 0/1 or bool; 1 marks a real token, 0 padding.
        mode: one of the four above.
        max_len: the constant of ``"seq-mean-token-sum-norm"``, usually the generation limit;
            defaults to T, the padded length. Ignored by the other modes.
        num_items_in_batch: only with ``"token-mean"``; at least this batch's token count.
        num_sequences: only with the ``"seq-mean-*"`` modes; at least B.

    An answer with no real token (an all-zero mask row) contributes 0 but still counts as one of
    the B answers, so the weight of every other token does not change (TRL's convention; verl's
    trainer too, which passes ``global_batch_size``). If the whole mask is 0 the result is 0. A
    value at a masked position never reaches the result or its gradient, not even a NaN or an inf.

    Raises:
        ValueError: a NaN or inf in ``values`` at a real (unmasked) position; an empty batch
        (B = 0); ``max_len`` below the longest answer, or T = 0 without ``max_len`` in
        ``"seq-mean-token-sum-norm"``; a sum that overflows the dtype.
    """
    v = as_float_tensor(values, "values")
    if v.dim() != 2:
        raise ValueError(f"`values` must be [B, T] (answers x tokens); got shape {tuple(v.shape)}.")
    m = as_mask(mask, v)
    check_choice(mode, "mode", AGGREGATIONS)
    check_nonempty_batch(v, "values")
    check_finite_at(v, m > 0, "values")
    out = _aggregate(v, m, mode, max_len, num_items_in_batch, num_sequences)
    check_overflow(out, "values", "their sum is beyond the dtype's range; compute in float64 or scale them down.")
    return out


def _aggregate(v, m, mode, max_len, num_items_in_batch, num_sequences) -> torch.Tensor:
    """:func:`aggregate` without the checks of ``values`` (grpo_loss checks its own terms)."""
    n_items, n_seqs = _check_normalisers(mode, m, num_items_in_batch, num_sequences)
    masked = torch.where(m > 0, v, torch.zeros_like(v))
    lengths = m.sum(dim=1)
    if mode == "token-mean":
        if n_items is not None:
            return masked.sum() / n_items
        return masked.sum() / lengths.sum().clamp(min=1.0)
    if mode == "seq-mean-token-mean":
        per_answer = masked.sum(dim=1) / lengths.clamp(min=1.0)
    else:
        per_answer = masked.sum(dim=1)
    if mode == "seq-mean-token-sum-norm":
        return masked.sum() / ((v.shape[0] if n_seqs is None else n_seqs) * _max_len(max_len, m))
    return per_answer.mean() if n_seqs is None else per_answer.sum() / n_seqs


def _check_normalisers(mode, m, num_items_in_batch, num_sequences) -> tuple[int | None, int | None]:
    n_items = _global_count(num_items_in_batch, "num_items_in_batch", "real tokens of the whole batch")
    n_seqs = _global_count(num_sequences, "num_sequences", "answers of the whole batch")
    if n_items is not None:
        if mode != "token-mean":
            raise ValueError(
                f"`num_items_in_batch` is the token count that divides mode 'token-mean'; mode {mode!r} does not "
                f"divide by a token count. Pass num_sequences for the seq-mean modes, or drop it."
            )
        local = int(m.sum())
        if n_items < local:
            raise ValueError(f"`num_items_in_batch`={n_items} is below this batch's own {local} tokens; it counts the whole batch.")
    if n_seqs is not None:
        if mode == "token-mean":
            raise ValueError(
                "`num_sequences` is the answer count of the seq-mean modes; mode 'token-mean' divides by tokens: "
                "pass num_items_in_batch instead."
            )
        if n_seqs < m.shape[0]:
            raise ValueError(f"`num_sequences`={n_seqs} is below this batch's own {m.shape[0]} answers; it counts the whole batch.")
    return n_items, n_seqs


def grpo_loss(
    logp,
    old_logp,
    ref_logp,
    advantages,
    mask,
    *,
    eps_low: float = 0.2,
    eps_high: float | None = None,
    beta: float = 0.04,
    kl: str = "k3",
    agg: str = "seq-mean-token-mean",
    max_len: int | None = None,
    ratio_level: str = "token",
    loss: str = "clip",
    delta: float | None = None,
    dual_clip: float | None = None,
    log_ratio_clamp=None,
    sapo_tau_pos: float | None = None,
    sapo_tau_neg: float | None = None,
    kl_clamp: str | None = None,
    kl_bias_correction: bool = False,
    kl_agg: str | None = None,
    rollout_logp=None,
    is_level: str | None = None,
    is_mode: str | None = None,
    is_min: float | None = None,
    is_max: float | None = None,
    is_log_clamp: float | None = None,
    entropy=None,
    top_entropy_quantile: float | None = None,
    num_items_in_batch: int | None = None,
    num_sequences: int | None = None,
    num_processes: int = 1,
    grad_accum_steps: int = 1,
    framework_metrics: str | None = None,
    tensor_metrics: bool = False,
) -> tuple[torch.Tensor, dict]:
    """The GRPO loss to minimise, ``-J`` of DeepSeekMath Eq. 3 (book Eq. ``grpo-loss``).

    Per token: ``loss_it = -(min(r A, clip(r) A) - beta * KL_it)``, then :func:`aggregate` with
    mode ``agg``. The KL term sits inside the aggregation, as in the paper, so it is weighted
    like the surrogate. The keywords after ``ratio_level`` switch on what TRL 1.16 and verl 0.9.1
    add; :data:`grpo_core.LOSS_PRESETS` names their combinations, and ``tests/conformance``
    checks each against the frameworks' own code. In the order they act:

    1. the log-ratio ``d = log pi_theta - log pi_old``, 0 at padding (so nothing at a masked
       position reaches the loss or its gradient); per answer with ``ratio_level="sequence"``;
    2. the per-token policy loss of kind ``loss`` (:data:`grpo_core.POLICY_LOSSES`: ``"clip"``,
       ``"cispo"``, ``"sapo"``, ``"gmpo"``, ``"gspo"``), with ``log_ratio_clamp`` before ``exp``;
    3. TRL's high-entropy mask (``entropy``, ``top_entropy_quantile``), then the rollout
       importance weight (``rollout_logp`` and ``is_*``), both on the policy term only;
    4. ``+ beta * KL`` (kind ``kl``, clamps ``kl_clamp``, times the ratio if
       ``kl_bias_correction``), each term aggregated (``agg``, ``kl_agg``) over the normaliser's
       scope (``num_items_in_batch``, ``num_sequences``);
    5. ``* num_processes / grad_accum_steps``.

    Args:
        logp: ``[B, T]`` log pi_theta of the sampled tokens (with gradient).
        old_logp: ``[B, T]`` log pi_old, the sampling policy's log-probabilities (constant).
        ref_logp: ``[B, T]`` log pi_ref, the frozen reference's; may be None when ``beta == 0``.
        advantages: ``[B]`` or ``[B, T]``, e.g. from :func:`grpo_core.group_advantages`.
        mask: ``[B, T]`` 0/1, 1 for completion tokens.
        eps_low, eps_high: clip ranges (``eps_high`` defaults to ``eps_low``): the ratio is clipped
            to ``[1 - eps_low, 1 + eps_high]``. For ``loss="cispo"`` the same bounds clip its
            weight, and ``eps_high`` may be negative (TRL's cispo caps the weight at its
            ``epsilon_high``, i.e. grpo_core's ``eps_high = epsilon_high - 1``); for ``loss="gmpo"``
            they bound the log-ratio, ``[-eps_low, eps_high]``. SAPO has no clip.
        beta: KL coefficient; 0 drops the KL term.
        kl: KL kind, ``"k1"``, ``"k2"``, ``"k3"`` or the straight-through ``"k1+"``, ``"k2+"``,
            ``"k3+"`` (:data:`grpo_core.KL_KINDS`; verl's ``kl_loss_type``; book Eq. ``kl-plus``).
        agg: aggregation mode (see :data:`AGGREGATIONS`).
        max_len: constant for ``agg="seq-mean-token-sum-norm"`` (TRL's ``max_completion_length``,
            verl's ``loss_scale_factor``; default T).
        ratio_level: ``"token"`` (one ratio per token, GRPO and PPO) or ``"sequence"`` (GSPO,
            Zheng et al. 2025: every token of answer i uses ``s_i = exp(mean_t log(pi_theta /
            pi_old))``, :func:`sequence_log_ratio` with ``mode="mean"``, clipped at that level;
            with ``agg="seq-mean-token-mean"`` the loss is the mean over answers of
            ``-min(s_i A_i, clip(s_i) A_i)``, GSPO's Eq. 5; TRL's ``importance_sampling_level``).
        loss: the policy-loss kind, a key of :data:`grpo_core.POLICY_LOSSES`.
        delta: ``"clip"`` only: TRL's two-sided cap of the unclipped ratio (> 1), see
            :func:`clipped_surrogate`.
        dual_clip: ``"clip"`` only: verl's ``clip_ratio_c`` (> 1): for ``A < 0`` a token's loss is at
            most ``-c A`` (book Eq. ``clip-dual``).
        log_ratio_clamp: None, c (clamp the log of the ratio to ``[-c, c]`` before ``exp``) or
            ``(low, high)`` with None for an open side; verl: 20 for vanilla, cispo and sapo,
            ``(None, 10)`` for gspo.
        sapo_tau_pos, sapo_tau_neg: ``"sapo"`` only: the gate's temperatures for ``A > 0`` and
            ``A <= 0`` (default 1.0 and 1.05).
        kl_clamp: None, or ``"verl"``: verl's clamps of ``low_var_kl`` (see
            :func:`grpo_core.kl_estimate`).
        kl_bias_correction: multiply the per-token KL by the ratio ``r`` (with its gradient; per
            answer with ``ratio_level="sequence"``): TRL's ``use_bias_correction_kl`` (its default;
            DeepSeek-V3.2's "k3 x pi_theta / pi_old", book Eq. ``kl-bias-corrected``).
        kl_agg: aggregation mode of the KL term (default ``agg``); verl aggregates the KL with
            ``actor.loss_agg_mode`` even where its sapo and geo_mean fix their own.
        rollout_logp: None, or ``[B, T]`` log-probabilities of the sampling engine (vLLM): then the
            policy term is weighted by :func:`grpo_core.policy_losses.rollout_importance_weights`
            with ``is_level`` (``"token"`` | ``"sequence"``, default ``"token"``), ``is_mode``
            (``"truncate"`` | ``"mask"``, default ``"truncate"``), the bounds ``is_min``, ``is_max``
            and ``is_log_clamp``; ``"gmpo"`` uses their geometric mean over each answer, as verl.
        entropy: None, or ``[B, T]`` per-token entropy of pi_theta; reported as ``entropy``.
        top_entropy_quantile: with ``entropy``: keep only the policy term of the tokens in this
            top fraction of entropy (TRL's ``top_entropy_quantile``; 1 keeps all).
        num_items_in_batch, num_sequences: the normaliser's scope (see :func:`aggregate`): the
            whole batch's real tokens (for ``"token-mean"``) and answers (for the seq-mean modes)
            when this call sees one micro-batch of it.
        num_processes: the number of data-parallel processes; the loss is multiplied by it because
            DDP averages their gradients (TRL's dapo divides by ``num_items_in_batch /
            num_processes``, verl multiplies by ``dp_size``).
        grad_accum_steps: the micro-batches whose gradients are summed into one step; the loss is
            divided by it (TRL's local normalisers do this). Not with a whole-batch count, which
            already spans the micro-batches.
        framework_metrics: None, ``"trl"`` (add TRL's metric names: ``clip_ratio/low_mean``,
            ``clip_ratio/low_min``, ``clip_ratio/high_mean``, ``clip_ratio/high_max``,
            ``clip_ratio/region_mean`` for ``"clip"``, ``cispo_clip_ratio`` for ``"cispo"``,
            computed as TRL does) or ``"verl"`` (``actor/pg_clipfrac``, ``actor/ppo_kl``,
            ``actor/pg_clipfrac_lower``, as verl computes them for each kind).
        tensor_metrics: return the metrics as 0-d tensors on the device (no host sync).

    Hostile inputs (tests/test_fuzz.py, tests/test_hardening.py):

    - A position whose ``mask`` is 0 never reaches the loss, its gradient or the metrics, whatever
      ``logp``, ``old_logp``, ``ref_logp``, ``rollout_logp``, ``entropy`` or per-token
      ``advantages`` hold there (NaN and +-inf included): everything is masked with ``where``
      before ``exp``. NaN or inf at a real position is a ``ValueError`` naming the tensor.
    - For any finite gap ``logp - old_logp``, a token where PPO's clip (or ``delta``,
      ``dual_clip``) is active has gradient exactly 0, not NaN: the log-ratio is clamped at a
      bound beyond which the clip is certainly active
      (:func:`grpo_core.policy_losses.clip_safe_log_ratio`), which changes nothing below it.
      SAPO's gate clamps it at :func:`grpo_core.policy_losses.exp_safe_bound`, where the gate is
      saturated. The frameworks' own clamps (``log_ratio_clamp``, verl's 20) act first, as there.
    - Where the loss itself is beyond the dtype (``A < 0`` with no cap and a ratio that
      overflows, an advantage of 3e38, a KL term of a gap of 100 in float32), a ``ValueError``
      names ``logp``, ``advantages`` or ``ref_logp``. The metric ``ratio_mean`` is computed from
      the unclamped ratio and can be inf for such a gap.
    - An empty batch (B = 0), ``max_len`` below the longest answer and T = 0 without ``max_len``
      in ``"seq-mean-token-sum-norm"`` are errors.

    Returns:
        ``(loss, metrics)``: the scalar loss, and metrics over the masked tokens: ``kl`` (mean
        per-token KL term, after the bias correction; NaN when ``ref_logp`` is None),
        ``clip_frac_low`` (tokens where the kind's clip takes the gradient away on the lower
        side, for ``"clip"``: ``r < 1 - eps_low`` and ``A < 0``), ``clip_frac_high`` (upper side,
        ``r > 1 + eps_high`` and ``A > 0``), ``clip_frac`` (their sum), ``ratio_mean``,
        ``advantage_mean``, ``policy_loss`` and ``kl_loss`` (the two parts of ``loss``); with
        ``dual_clip`` also ``clip_frac_dual``, with ``rollout_logp`` ``is_weight_mean``, with
        ``entropy`` ``entropy`` (and ``entropy_kept_frac`` under ``top_entropy_quantile``), and
        the framework's names under ``framework_metrics``. Floats unless ``tensor_metrics``.
    """
    check_choice(loss, "loss", POLICY_LOSSES)
    kind = POLICY_LOSSES[loss]
    check_choice(ratio_level, "ratio_level", RATIO_LEVELS)
    if ratio_level not in kind.ratio_levels:
        raise ValueError(
            f"`ratio_level`={ratio_level!r} does not apply to loss={loss!r}, which forms its own ratio; "
            f"it takes {list(kind.ratio_levels)}."
        )
    settings = _kind_settings(kind, eps_low, eps_high, delta, dual_clip, sapo_tau_pos, sapo_tau_neg)
    settings["bounds"] = clamp_bounds(log_ratio_clamp)
    beta = check_nonneg_number(beta, "beta")
    check_choice(kl, "kl", KL_KINDS)
    if kl_clamp is not None:
        check_choice(kl_clamp, "kl_clamp", KL_CLAMPS)
    check_choice(agg, "agg", AGGREGATIONS)
    kl_agg = agg if kl_agg is None else kl_agg
    check_choice(kl_agg, "kl_agg", AGGREGATIONS)
    check_int(num_processes, "num_processes", 1, " (data-parallel processes)")
    check_int(grad_accum_steps, "grad_accum_steps", 1, " (micro-batches per optimiser step)")
    if not isinstance(kl_bias_correction, bool):
        raise ValueError(f"`kl_bias_correction` must be True or False; got {kl_bias_correction!r}.")
    if not isinstance(tensor_metrics, bool):
        raise ValueError(f"`tensor_metrics` must be True or False; got {tensor_metrics!r}.")
    if framework_metrics is not None:
        check_choice(framework_metrics, "framework_metrics", FRAMEWORK_METRICS)
        if loss not in FRAMEWORK_METRICS[framework_metrics]:
            raise ValueError(
                f"`framework_metrics`={framework_metrics!r} has no metrics for loss={loss!r}; "
                f"it covers the kinds {list(FRAMEWORK_METRICS[framework_metrics])}."
            )
    settings["need"] = framework_metrics is not None

    lp = as_float_tensor(logp, "logp")
    old = as_float_tensor(old_logp, "old_logp")
    check_same_shape(lp, "logp", old, "old_logp")
    if lp.dim() != 2:
        raise ValueError(f"`logp` must be [B, T] (answers x tokens); got shape {tuple(lp.shape)}.")
    check_nonempty_batch(lp, "logp")
    old = old.to(device=lp.device, dtype=lp.dtype)
    m = as_mask(mask, lp)
    real = m > 0
    check_finite_at(lp, real, "logp")
    check_finite_at(old, real, "old_logp")
    adv = _broadcast_advantages(advantages, lp, real)
    per_answer_adv = as_float_tensor(advantages, "advantages").dim() == 1
    scope = _scope(agg, kl_agg, beta, ref_logp, m, num_items_in_batch, num_sequences, grad_accum_steps)

    # 1. the log-ratio, 0 at padding; one per answer at the sequence level
    d = torch.where(real, lp - old.detach(), torch.zeros_like(lp))
    if ratio_level == "sequence":  # [B, 1], broadcast by the kind (as TRL does)
        log_ratio = (d.sum(dim=1) / m.sum(dim=1).clamp(min=1.0))[:, None]
    else:
        log_ratio = d

    # 2. the kind's per-token loss
    terms = kind.fn(lp, log_ratio, adv, m, settings)
    per_token = terms.loss
    _check_policy_overflow(per_token, real, terms.ratio)

    # 3. entropy mask and rollout importance weight, on the policy term only
    keep, ent = None, None
    if entropy is not None:
        ent = as_float_tensor(entropy, "entropy").to(device=lp.device, dtype=lp.dtype)
        check_same_shape(lp, "logp", ent, "entropy")
        check_finite_at(ent, real, "entropy")
        ent = torch.where(real, ent, torch.zeros_like(ent))
        if top_entropy_quantile is not None:
            keep = high_entropy_mask(ent, m, top_entropy_quantile)
            per_token = per_token * keep.to(lp.dtype)
    elif top_entropy_quantile is not None:
        raise ValueError("`top_entropy_quantile` needs `entropy`, the per-token entropy of pi_theta; pass both or neither.")
    is_weight = _rollout_weight(rollout_logp, old, m, kind, is_level, is_mode, is_min, is_max, is_log_clamp, lp)
    if is_weight is not None:
        per_token = per_token * is_weight

    # 4. the two terms, each aggregated over the normaliser's scope
    policy_loss = _aggregate(per_token, m, agg, max_len, **_scope_args(scope[agg]))
    check_overflow(policy_loss, "advantages", "the policy term's sum over tokens is beyond the dtype's range: "
                   + _OVERFLOW_HINT)
    zero = torch.zeros((), dtype=lp.dtype, device=lp.device)
    if ref_logp is None:
        if beta != 0.0:
            raise ValueError("`ref_logp` is None but beta > 0; pass the reference model's log-probabilities or set beta=0.")
        kl_tok = None
        kl_loss = zero
    else:
        ref = as_float_tensor(ref_logp, "ref_logp").to(lp.device)
        check_same_shape(lp, "logp", ref, "ref_logp")
        check_finite_at(ref, real, "ref_logp")
        ref = ref.to(lp.dtype)
        kl_tok = kl_estimate(torch.where(real, lp, torch.zeros_like(lp)), torch.where(real, ref, torch.zeros_like(ref)),
                             kl, clamp=kl_clamp)
        if kl_bias_correction:
            kl_tok = kl_tok * torch.exp(_clamp(log_ratio, settings["bounds"]))
            check_overflow(torch.where(real, kl_tok, torch.zeros_like(kl_tok)), "logp",
                           "the KL term times the ratio exp(logp - old_logp) (kl_bias_correction) is beyond the dtype's "
                           "range; " + _OVERFLOW_HINT)
        if beta != 0.0:
            kl_loss = beta * _aggregate(kl_tok, m, kl_agg, max_len, **_scope_args(scope[kl_agg]))
            check_overflow(kl_loss, "ref_logp", "beta times the KL term is beyond the dtype's range; compute in "
                           "float64, or clamp the estimate (kl_clamp='verl').")
        else:
            kl_loss = zero
    total = policy_loss + kl_loss

    # 5. data-parallel processes and gradient accumulation
    scale = num_processes / grad_accum_steps
    if scale != 1.0:
        total, policy_loss, kl_loss = total * scale, policy_loss * scale, kl_loss * scale

    with torch.no_grad():
        metrics = _metrics(terms, kl_tok, adv, m, policy_loss, kl_loss, is_weight, ent,
                           keep, framework_metrics, ratio_level == "sequence" and per_answer_adv)
    if not tensor_metrics:
        metrics = {k: float(v) for k, v in metrics.items()}
    return total, metrics


def _scope_args(scope: dict) -> dict:
    return dict(num_items_in_batch=scope.get("num_items_in_batch"), num_sequences=scope.get("num_sequences"))


def _check_policy_overflow(per_token: torch.Tensor, real: torch.Tensor, ratio: torch.Tensor) -> None:
    """Name the argument that made a real token's policy loss overflow (inputs are finite by now)."""
    bad = ~torch.isfinite(per_token) & real
    if not bool(bad.any()):
        return
    idx = tuple(int(i) for i in torch.nonzero(bad)[0])
    r = ratio.expand_as(per_token)[idx].item() if ratio.dim() == per_token.dim() else float("nan")
    name = "logp" if not torch.isfinite(torch.tensor(r)) else "advantages"
    raise ValueError(
        f"`{name}` makes the policy loss overflow {per_token.dtype} at index {idx} (the ratio is {r:.4g}, the "
        f"loss {per_token[idx].item()}): " + _OVERFLOW_HINT
    )


#: The metric names :func:`grpo_loss` adds under ``framework_metrics``, and the kinds they cover.
FRAMEWORK_METRICS = {
    "trl": ("clip", "cispo", "sapo"),
    "verl": ("clip", "cispo", "sapo", "gmpo", "gspo"),
}


def _kind_settings(kind, eps_low, eps_high, delta, dual_clip, tau_pos, tau_neg) -> dict:
    name = kind.name
    for key, value in (("delta", delta), ("dual_clip", dual_clip), ("sapo_tau_pos", tau_pos), ("sapo_tau_neg", tau_neg)):
        if value is not None and key not in kind.options:
            owners = sorted(k for k, v in POLICY_LOSSES.items() if key in v.options)
            raise ValueError(f"`{key}` applies to loss={owners[0]!r} only, not to loss={name!r}; drop it or change `loss`.")
    if name == "cispo":
        lo = check_nonneg_number(eps_low, "eps_low")
        hi = lo if eps_high is None else check_real(eps_high, "eps_high", " (the weight's upper bound is 1 + eps_high)")
        if not 1.0 + hi > 0.0:
            raise ValueError(f"`eps_high`={eps_high!r} puts CISPO's upper bound 1 + eps_high at or below 0; it must be > -1.")
        if 1.0 - lo > 1.0 + hi:
            raise ValueError(f"CISPO's bounds are crossed: 1 - eps_low = {1 - lo} > 1 + eps_high = {1 + hi}.")
    elif name == "gmpo":
        lo = check_nonneg_number(eps_low, "eps_low", " (GMPO clips the log-ratio to [-eps_low, eps_high])")
        hi = lo if eps_high is None else check_nonneg_number(eps_high, "eps_high", " (GMPO's log-space bound)")
    else:
        lo, hi = check_clip_range(eps_low, eps_high)
    delta, dual_clip = _check_caps(delta, dual_clip)
    out = dict(eps_low=lo, eps_high=hi, delta=delta, dual_clip=dual_clip)
    if name == "sapo":
        out["sapo_tau_pos"] = 1.0 if tau_pos is None else check_positive(tau_pos, "sapo_tau_pos")
        out["sapo_tau_neg"] = 1.05 if tau_neg is None else check_positive(tau_neg, "sapo_tau_neg")
    return out


def _scope(agg, kl_agg, beta, ref_logp, m, num_items_in_batch, num_sequences, grad_accum_steps) -> dict:
    """The normaliser keywords of :func:`aggregate` for each mode in use."""
    modes = {agg} | ({kl_agg} if (beta != 0.0 and ref_logp is not None) else set())
    if num_items_in_batch is not None and "token-mean" not in modes:
        raise ValueError(
            f"`num_items_in_batch` divides the 'token-mean' aggregation; agg={agg!r} does not use it. "
            f"Pass num_sequences for the seq-mean modes, or drop it."
        )
    if num_sequences is not None and not modes - {"token-mean"}:
        raise ValueError("`num_sequences` is the answer count of the seq-mean modes; agg='token-mean' divides by tokens: "
                         "pass num_items_in_batch instead.")
    if grad_accum_steps > 1 and (num_items_in_batch is not None or num_sequences is not None):
        raise ValueError(
            "`grad_accum_steps` > 1 divides a micro-batch's own normaliser; num_items_in_batch / num_sequences "
            "already count every micro-batch of the step. Use one or the other."
        )
    out = {}
    for mode in modes | {agg, kl_agg}:
        out[mode] = (dict(num_items_in_batch=num_items_in_batch) if mode == "token-mean"
                     else dict(num_sequences=num_sequences))
    return out


def _rollout_weight(rollout_logp, old, m, kind, is_level, is_mode, is_min, is_max, is_log_clamp, lp):
    given = {"is_level": is_level, "is_mode": is_mode, "is_min": is_min, "is_max": is_max, "is_log_clamp": is_log_clamp}
    if rollout_logp is None:
        extra = sorted(k for k, v in given.items() if v is not None)
        if extra:
            raise ValueError(f"{extra} set, but `rollout_logp` is None: pass the sampling engine's log-probabilities, "
                             f"or drop {extra}.")
        return None
    roll = as_float_tensor(rollout_logp, "rollout_logp").to(device=lp.device)
    check_same_shape(lp, "logp", roll, "rollout_logp")
    check_finite_at(roll, m > 0, "rollout_logp")
    w = rollout_importance_weights(old, roll.to(lp.dtype), m, is_level or "token", is_mode or "truncate",
                                   is_min, is_max, is_log_clamp)
    if kind.is_weighting == "geometric":
        n = m.sum(dim=1).clamp(min=1.0)
        log_w = torch.where(m > 0, torch.log(w + 1e-10), torch.zeros_like(w))
        w = torch.exp(log_w.sum(dim=1) / n)[:, None].expand_as(w)
    return w


def _metrics(terms, kl_tok, adv, m, policy_loss, kl_loss, is_weight, ent, keep, framework, row_flags) -> dict:
    n_tok = m.sum().clamp(min=1.0)

    def tok_mean(x: torch.Tensor) -> torch.Tensor:
        return (x * m).sum() / n_tok

    dt = m.dtype
    low, high = terms.low.to(dt), terms.high.to(dt)
    nan = torch.full((), float("nan"), dtype=dt, device=m.device)
    out = {
        "kl": tok_mean(kl_tok) if kl_tok is not None else nan,
        "clip_frac_low": tok_mean(low),
        "clip_frac_high": tok_mean(high),
        "clip_frac": tok_mean(low + high),
        "ratio_mean": tok_mean(terms.ratio),
        "advantage_mean": tok_mean(adv),
        "policy_loss": policy_loss.detach(),
        "kl_loss": kl_loss.detach(),
    }
    if "dual" in terms.extra:
        out["clip_frac_dual"] = tok_mean(terms.extra["dual"].to(dt))
    if is_weight is not None:
        out["is_weight_mean"] = tok_mean(is_weight)
    if ent is not None:
        out["entropy"] = tok_mean(ent)
        if keep is not None:
            out["entropy_kept_frac"] = tok_mean(keep.to(dt))
    ex = terms.extra
    if framework == "trl":
        # TRL's flags are float32; one per answer at the sequence level (then averaged over answers)
        def trl_mean(flag):
            f = flag.to(torch.float32)
            return f[:, 0].mean() if row_flags else (f * m).sum() / m.sum().clamp(min=1.0)

        def trl_rows(flag):
            f = flag.to(torch.float32)
            return f[:, 0] if row_flags else (f * m).sum(dim=1) / m.sum(dim=1)

        if "trl_low" in ex:
            out["clip_ratio/low_mean"] = trl_mean(ex["trl_low"])
            out["clip_ratio/high_mean"] = trl_mean(ex["trl_high"])
            out["clip_ratio/region_mean"] = trl_mean(ex["trl_low"] | ex["trl_high"])
            out["clip_ratio/low_min"] = _nan_reduce(trl_rows(ex["trl_low"]), "min")
            out["clip_ratio/high_max"] = _nan_reduce(trl_rows(ex["trl_high"]), "max")
        if "trl_cispo" in ex:
            out["cispo_clip_ratio"] = trl_mean(ex["trl_cispo"])
    elif framework == "verl":
        out["actor/pg_clipfrac"] = tok_mean(ex["verl_clipfrac"].to(dt))
        out["actor/ppo_kl"] = tok_mean(-ex["verl_log_ratio"])
        out["actor/pg_clipfrac_lower"] = tok_mean(ex["verl_clipfrac_lower"].to(dt))
    return out


def _nan_reduce(x: torch.Tensor, how: str) -> torch.Tensor:
    """min or max over the non-NaN entries (NaN if there are none), without a host sync."""
    valid = ~torch.isnan(x)
    fill = torch.full_like(x, math.inf if how == "min" else -math.inf)
    y = torch.where(valid, x, fill)
    red = y.min() if how == "min" else y.max()
    return torch.where(valid.any(), red, torch.full_like(red, math.nan))

# ----------------------------------------------------------------------------------------------
# Tools of the chapter "Deriving the GRPO objective": where the clip acts, what weight each token
# gets from the aggregation, and one ratio per answer instead of one per token.


def clip_active(logp, old_logp, advantages, eps_low: float = 0.2, eps_high: float | None = None) -> torch.Tensor:
    """Where the clip of :func:`clipped_surrogate` switches a token's gradient off (book Eq. ``clip-cases``).

    The clipped term wins the ``min`` and is flat in the ratio exactly when::

        r > 1 + eps_high  and  A > 0     (the answer is already more likely than the bound allows)
        r < 1 - eps_low   and  A < 0     (the answer is already less likely than the bound allows)

    The inequalities are strict: at ``r = 1 + eps_high`` itself autograd still passes the gradient
    (``clamp`` is inclusive). These are the tokens ``grpo_loss`` counts in ``clip_frac``.

    Args:
        logp, old_logp, advantages, eps_low, eps_high: as in :func:`clipped_surrogate`.

    Returns:
        A bool tensor of ``logp``'s shape; combine it with the padding mask yourself.
    """
    lo, hi = check_clip_range(eps_low, eps_high)
    lp, ratio = _ratio(logp, old_logp)
    adv = _broadcast_advantages(advantages, lp)
    ratio = ratio.detach()
    return ((ratio > 1.0 + hi) & (adv > 0)) | ((ratio < 1.0 - lo) & (adv < 0))


def aggregation_weights(
    mask,
    mode: str = "seq-mean-token-mean",
    max_len: int | None = None,
    *,
    num_items_in_batch: int | None = None,
    num_sequences: int | None = None,
) -> torch.Tensor:
    """The weight ``w_it`` of each token in :func:`aggregate`: ``aggregate(v, mask, mode) = sum_it w_it v_it``.

    Closed form (book Eq. ``aggregation``), with ``B`` answers and ``L_i`` the length of answer i::

        "seq-mean-token-mean":     w_it = m_it / (B L_i)          (a token of a short answer weighs more)
        "token-mean":              w_it = m_it / sum_j L_j        (every token alike)
        "seq-mean-token-sum":      w_it = m_it / B                (every token alike; grows with length)
        "seq-mean-token-sum-norm": w_it = m_it / (B max_len)      (every token alike, a constant)

    Because :func:`aggregate` is linear in the values, these are also its gradient with respect
    to them (the tests check both). Padding and empty answers get weight 0.

    Args:
        mask: ``[B, T]`` 0/1 or bool, 1 for a real token.
        mode: one of :data:`AGGREGATIONS`.
        max_len: the constant of ``"seq-mean-token-sum-norm"`` (default T).
        num_items_in_batch, num_sequences: the whole batch's counts, as in :func:`aggregate`
            (they replace ``sum_j L_j`` and ``B``).

    Returns:
        ``[B, T]`` weights in the default float dtype (float64 if ``mask`` is float64).
    """
    m0 = mask if isinstance(mask, torch.Tensor) else as_float_tensor(mask, "mask")
    if m0.dim() != 2:
        raise ValueError(f"`mask` must be [B, T] (answers x tokens); got shape {tuple(m0.shape)}.")
    like = torch.empty(m0.shape, dtype=m0.dtype if m0.is_floating_point() else torch.get_default_dtype(), device=m0.device)
    m = as_mask(m0, like)
    check_choice(mode, "mode", AGGREGATIONS)
    n_items, n_seqs = _check_normalisers(mode, m, num_items_in_batch, num_sequences)
    n_seq = m.shape[0] if n_seqs is None else n_seqs
    lengths = m.sum(dim=1, keepdim=True)
    if mode == "seq-mean-token-mean":
        return m / (n_seq * lengths.clamp(min=1.0))
    if mode == "token-mean":
        return m / (lengths.sum().clamp(min=1.0) if n_items is None else n_items)
    if mode == "seq-mean-token-sum":
        return m / n_seq
    return m / (n_seq * _max_len(max_len, m))


#: How :func:`sequence_log_ratio` turns per-token log-ratios into one per answer.
SEQUENCE_RATIOS = {
    "sum": "log of the likelihood ratio of the whole answer, prod_t r_it (seed notes 3.2)",
    "mean": "length-normalised: log of the geometric mean of the r_it (GSPO's s_i)",
}


def sequence_log_ratio(logp, old_logp, mask, mode: str = "mean") -> torch.Tensor:
    """One log-ratio per answer from per-token log-probabilities (book Eq. ``gspo-ratio``).

    With ``d_it = log pi_theta(o_it) - log pi_old(o_it)`` over the real tokens of answer i::

        "sum":  log rho_i = sum_t d_it          rho_i = pi_theta(o_i) / pi_old(o_i), the exact
                                                importance weight of the answer (seed notes 3.2)
        "mean": log s_i   = (1/L_i) sum_t d_it  GSPO (Zheng et al. 2025), the geometric mean of
                                                the per-token ratios

    ``exp`` of the result is the ratio. It can be passed as ``logp`` (with ``old_logp = 0``) to
    :func:`clipped_surrogate` to clip at the sequence level. ``old_logp`` gets no gradient; an
    answer without tokens gets log-ratio 0; a value at a masked position (even NaN) is never read.

    Args:
        logp: ``[B, T]`` log pi_theta of the sampled tokens (with gradient).
        old_logp: ``[B, T]`` log pi_old of the same tokens.
        mask: ``[B, T]`` 0/1, 1 for a real token.
        mode: ``"sum"`` or ``"mean"`` (see :data:`SEQUENCE_RATIOS`).

    Returns:
        ``[B]`` log-ratios.
    """
    check_choice(mode, "mode", SEQUENCE_RATIOS)
    lp = as_float_tensor(logp, "logp")
    old = as_float_tensor(old_logp, "old_logp")
    check_same_shape(lp, "logp", old, "old_logp")
    if lp.dim() != 2:
        raise ValueError(f"`logp` must be [B, T] (answers x tokens); got shape {tuple(lp.shape)}.")
    old = old.to(device=lp.device, dtype=lp.dtype)
    m = as_mask(mask, lp)
    real = m > 0
    check_finite_at(lp, real, "logp")
    check_finite_at(old, real, "old_logp")
    total = torch.where(real, lp - old.detach(), torch.zeros_like(lp)).sum(dim=1)
    if mode == "sum":
        return total
    return total / m.sum(dim=1).clamp(min=1.0)
