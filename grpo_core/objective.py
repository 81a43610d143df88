"""The GRPO objective: clipped surrogate, loss aggregation, and the loss a trainer minimises.

DeepSeekMath Eq. 3 (the book's Eq. ``grpo-objective``), per question q with G answers::

    J = (1/G) sum_i (1/|o_i|) sum_t [ min(r_it A_it, clip(r_it, 1-eps, 1+eps) A_it) - beta KL_it ]

with the per-token ratio ``r_it = pi_theta(o_it) / pi_old(o_it)`` and ``KL_it`` a per-token
estimate of KL(pi_theta || pi_ref) (k3 in the paper). ``grpo_loss`` returns ``-J``, aggregated
over tokens in one of the modes of :data:`AGGREGATIONS`.
"""

from __future__ import annotations

import torch

from ._checks import (
    as_float_tensor,
    as_mask,
    check_choice,
    check_clip_range,
    check_int,
    check_finite,
    check_nonneg_number,
    check_same_shape,
)
from .kl import KL_ESTIMATORS, kl_estimate

__all__ = [
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
    "seq-mean-token-mean": "mean over each answer's tokens, then over answers (DeepSeekMath; TRL 'grpo')",
    "token-mean": "sum over all tokens / number of tokens (DAPO; TRL 'bnpo', 'dapo')",
    "seq-mean-token-sum": "sum over each answer's tokens, then mean over answers",
    "seq-mean-token-sum-norm": "sum over all tokens / (number of answers * max_len) (Dr. GRPO; TRL 'dr_grpo')",
}


def _broadcast_advantages(advantages, like: torch.Tensor) -> torch.Tensor:
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
    check_finite(out, "advantages")
    return out.to(like.dtype)


def _ratio(logp, old_logp) -> tuple[torch.Tensor, torch.Tensor]:
    lp = as_float_tensor(logp, "logp")
    old = as_float_tensor(old_logp, "old_logp")
    check_same_shape(lp, "logp", old, "old_logp")
    if lp.dim() not in (1, 2):
        raise ValueError(f"`logp` must be [B] or [B, T]; got shape {tuple(lp.shape)}.")
    check_finite(lp, "logp")
    check_finite(old, "old_logp")
    return lp, torch.exp(lp - old.detach())


def _max_len(max_len, padded_len: int) -> int:
    """The constant of ``"seq-mean-token-sum-norm"``: ``max_len``, or the padded length T if None."""
    if max_len is None:
        return padded_len
    return check_int(max_len, "max_len", 1, " (the generation limit)")


def clipped_surrogate(logp, old_logp, advantages, eps_low: float = 0.2, eps_high: float | None = None) -> torch.Tensor:
    """Per-token clipped surrogate ``min(r A, clip(r, 1 - eps_low, 1 + eps_high) A)`` (to maximise).

    Book Eq. ``clipped-surrogate``; PPO (Schulman et al. 2017) Eq. 7 with DAPO's separate
    upper range ("clip-higher").

    Args:
        logp: log pi_theta of the sampled tokens, ``[B, T]`` (or ``[B]`` for one ratio per answer);
            gradients flow through it.
        old_logp: log pi_old of the same tokens (the policy that sampled them), same shape;
            treated as a constant.
        advantages: ``[B]`` (broadcast over tokens) or the shape of ``logp``.
        eps_low: lower clip range; the ratio is clipped below at ``1 - eps_low``.
        eps_high: upper clip range; defaults to ``eps_low``.

    Returns:
        The per-token objective, shape of ``logp``. Where the clip is active (``r > 1 + eps_high``
        with ``A > 0``, or ``r < 1 - eps_low`` with ``A < 0``) it does not depend on ``logp``, so
        its gradient there is exactly 0.
    """
    lo, hi = check_clip_range(eps_low, eps_high)
    lp, ratio = _ratio(logp, old_logp)
    adv = _broadcast_advantages(advantages, lp)
    return torch.minimum(ratio * adv, ratio.clamp(1.0 - lo, 1.0 + hi) * adv)


def aggregate(values, mask, mode: str = "seq-mean-token-mean", max_len: int | None = None) -> torch.Tensor:
    """Reduce per-token values ``[B, T]`` to a scalar over the tokens where ``mask`` is 1.

    Modes (book Eq. ``aggregation``; see :data:`AGGREGATIONS`), with ``m`` the mask and
    ``L_i = sum_t m_it`` the length of answer i::

        "seq-mean-token-mean":     (1/B) sum_i (1/L_i) sum_t m_it v_it
        "token-mean":              sum_it m_it v_it / sum_i L_i
        "seq-mean-token-sum":      (1/B) sum_i sum_t m_it v_it
        "seq-mean-token-sum-norm": sum_it m_it v_it / (B * max_len)

    Args:
        values: ``[B, T]`` per-token values.
        mask: ``[B, T]`` 0/1 or bool; 1 marks a real token, 0 padding.
        mode: one of the four above.
        max_len: the constant of ``"seq-mean-token-sum-norm"``, usually the generation limit;
            defaults to T, the padded length. Ignored by the other modes.

    An answer with no real token (an all-zero mask row) contributes 0 but still counts as one of
    the B answers, so the weight of every other token does not change (TRL's convention). If the
    whole mask is 0 the result is 0.
    """
    v = as_float_tensor(values, "values")
    if v.dim() != 2:
        raise ValueError(f"`values` must be [B, T] (answers x tokens); got shape {tuple(v.shape)}.")
    m = as_mask(mask, v)
    check_choice(mode, "mode", AGGREGATIONS)
    masked = v * m
    lengths = m.sum(dim=1)
    n_seq = v.shape[0]
    if mode == "seq-mean-token-mean":
        return (masked.sum(dim=1) / lengths.clamp(min=1.0)).mean()
    if mode == "token-mean":
        return masked.sum() / lengths.sum().clamp(min=1.0)
    if mode == "seq-mean-token-sum":
        return masked.sum(dim=1).mean()
    return masked.sum() / (n_seq * _max_len(max_len, v.shape[1]))


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
) -> tuple[torch.Tensor, dict[str, float]]:
    """The GRPO loss to minimise, ``-J`` of DeepSeekMath Eq. 3 (book Eq. ``grpo-loss``).

    Per token: ``loss_it = -(min(r A, clip(r) A) - beta * KL_it)``, then :func:`aggregate` with
    mode ``agg``. The KL term sits inside the aggregation, as in the paper, so it is weighted
    like the surrogate.

    Args:
        logp: ``[B, T]`` log pi_theta of the sampled tokens (with gradient).
        old_logp: ``[B, T]`` log pi_old, the sampling policy's log-probabilities (constant).
        ref_logp: ``[B, T]`` log pi_ref, the frozen reference's; may be None when ``beta == 0``.
        advantages: ``[B]`` or ``[B, T]``, e.g. from :func:`grpo_core.group_advantages`.
        mask: ``[B, T]`` 0/1, 1 for completion tokens.
        eps_low, eps_high: clip ranges (``eps_high`` defaults to ``eps_low``).
        beta: KL coefficient; 0 drops the KL term.
        kl: KL estimator, ``"k1"``, ``"k2"`` or ``"k3"``.
        agg: aggregation mode (see :data:`AGGREGATIONS`).
        max_len: constant for ``agg="seq-mean-token-sum-norm"``.
        ratio_level: ``"token"`` (one ratio per token, GRPO and PPO) or ``"sequence"`` (GSPO,
            Zheng et al. 2025: every token of answer i uses ``s_i = exp(mean_t log(pi_theta /
            pi_old))``, :func:`sequence_log_ratio` with ``mode="mean"``, clipped at that level;
            with ``agg="seq-mean-token-mean"`` the loss is the mean over answers of
            ``-min(s_i A_i, clip(s_i) A_i)``, GSPO's Eq. 5).

    Returns:
        ``(loss, metrics)``: the scalar loss, and floats over the masked tokens: ``kl`` (mean
        per-token KL estimate; NaN when ``ref_logp`` is None), ``clip_frac_low`` (tokens with
        ``r < 1 - eps_low`` and ``A < 0``, where the clip zeroes the gradient), ``clip_frac_high``
        (``r > 1 + eps_high`` and ``A > 0``), ``clip_frac`` (their sum), ``ratio_mean``,
        ``advantage_mean``, ``policy_loss`` and ``kl_loss`` (the two parts of ``loss``).
    """
    lo, hi = check_clip_range(eps_low, eps_high)
    beta = check_nonneg_number(beta, "beta")
    check_choice(kl, "kl", KL_ESTIMATORS)
    check_choice(agg, "agg", AGGREGATIONS)
    check_choice(ratio_level, "ratio_level", RATIO_LEVELS)
    lp, ratio = _ratio(logp, old_logp)
    if lp.dim() != 2:
        raise ValueError(f"`logp` must be [B, T] (answers x tokens); got shape {tuple(lp.shape)}.")
    adv = _broadcast_advantages(advantages, lp)
    m = as_mask(mask, lp)
    if ratio_level == "sequence":
        ratio = torch.exp(sequence_log_ratio(lp, old_logp, m, "mean"))[:, None].expand_as(lp)

    surrogate = torch.minimum(ratio * adv, ratio.clamp(1.0 - lo, 1.0 + hi) * adv)
    policy_loss = aggregate(-surrogate, m, agg, max_len)
    if ref_logp is None:
        if beta != 0.0:
            raise ValueError("`ref_logp` is None but beta > 0; pass the reference model's log-probabilities or set beta=0.")
        kl_tok = None
        kl_loss = torch.zeros((), dtype=lp.dtype, device=lp.device)
    else:
        ref = as_float_tensor(ref_logp, "ref_logp").to(lp.device)
        kl_tok = kl_estimate(lp, ref, kl)
        kl_loss = beta * aggregate(kl_tok, m, agg, max_len) if beta != 0.0 else torch.zeros((), dtype=lp.dtype, device=lp.device)
    loss = policy_loss + kl_loss

    with torch.no_grad():
        n_tok = m.sum().clamp(min=1.0)

        def tok_mean(x: torch.Tensor) -> float:
            return float((x * m).sum() / n_tok)

        low = ((ratio < 1.0 - lo) & (adv < 0)).to(lp.dtype)
        high = ((ratio > 1.0 + hi) & (adv > 0)).to(lp.dtype)
        metrics = {
            "kl": tok_mean(kl_tok) if kl_tok is not None else float("nan"),
            "clip_frac_low": tok_mean(low),
            "clip_frac_high": tok_mean(high),
            "clip_frac": tok_mean(low + high),
            "ratio_mean": tok_mean(ratio),
            "advantage_mean": tok_mean(adv),
            "policy_loss": float(policy_loss),
            "kl_loss": float(kl_loss),
        }
    return loss, metrics


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


def aggregation_weights(mask, mode: str = "seq-mean-token-mean", max_len: int | None = None) -> torch.Tensor:
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

    Returns:
        ``[B, T]`` weights in the default float dtype (float64 if ``mask`` is float64).
    """
    m0 = mask if isinstance(mask, torch.Tensor) else torch.as_tensor(mask)
    if m0.dim() != 2:
        raise ValueError(f"`mask` must be [B, T] (answers x tokens); got shape {tuple(m0.shape)}.")
    like = torch.empty(m0.shape, dtype=m0.dtype if m0.is_floating_point() else torch.get_default_dtype(), device=m0.device)
    m = as_mask(m0, like)
    check_choice(mode, "mode", AGGREGATIONS)
    n_seq = m.shape[0]
    lengths = m.sum(dim=1, keepdim=True)
    if mode == "seq-mean-token-mean":
        return m / (n_seq * lengths.clamp(min=1.0))
    if mode == "token-mean":
        return m / lengths.sum().clamp(min=1.0)
    if mode == "seq-mean-token-sum":
        return m / n_seq
    return m / (n_seq * _max_len(max_len, m.shape[1]))


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
    answer without tokens gets log-ratio 0.

    Args:
        logp: ``[B, T]`` log pi_theta of the sampled tokens (with gradient).
        old_logp: ``[B, T]`` log pi_old of the same tokens.
        mask: ``[B, T]`` 0/1, 1 for a real token.
        mode: ``"sum"`` or ``"mean"`` (see :data:`SEQUENCE_RATIOS`).

    Returns:
        ``[B]`` log-ratios.
    """
    check_choice(mode, "mode", SEQUENCE_RATIOS)
    lp, _ = _ratio(logp, old_logp)
    if lp.dim() != 2:
        raise ValueError(f"`logp` must be [B, T] (answers x tokens); got shape {tuple(lp.shape)}.")
    old = as_float_tensor(old_logp, "old_logp").to(device=lp.device, dtype=lp.dtype)
    m = as_mask(mask, lp)
    total = ((lp - old.detach()) * m).sum(dim=1)
    if mode == "sum":
        return total
    return total / m.sum(dim=1).clamp(min=1.0)
