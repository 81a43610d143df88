"""PPO's pieces for the trainer chapter's comparison: token rewards, GAE and the clipped value loss.

PPO as used for language models (Ziegler et al. 2019; Ouyang et al. 2022) differs from GRPO in
where the advantage comes from. A critic ``V`` (here a :class:`grpo_core.training.models.ValueHead`, a
second transformer the size of the policy) predicts, before each completion token ``t``, the
reward still to come. The verifiable reward arrives at the last token; with ``beta > 0`` each
token also pays ``-beta * (log pi_old - log pi_ref)`` (the KL penalty sits in the reward, not in
the loss). Generalised advantage estimation (Schulman et al. 2016) then gives every token its own
advantage::

    delta_t = r_t + gamma * V_{t+1} - V_t          (V after the last token is 0)
    A_t     = delta_t + gamma * lambda * A_{t+1}
    R_t     = A_t + V_t                             (the critic's regression target)

- :func:`token_rewards`: the per-token reward of a batch of completions;
- :func:`gae`: advantages and returns, right to left over the masked tokens;
- :func:`whiten`: advantages shifted and scaled to mean 0, std 1 over the masked tokens;
- :func:`value_loss`: PPO's clipped value loss.
"""

from __future__ import annotations

import torch

from ._checks import (
    as_float_tensor,
    as_mask,
    check_finite,
    check_finite_at,
    check_nonempty_batch,
    check_nonneg_number,
    check_same_shape,
    check_unit_interval,
)

__all__ = ["token_rewards", "gae", "whiten", "value_loss"]


def _last_index(m: torch.Tensor) -> torch.Tensor:
    """Index of each row's last masked token (rows must have at least one)."""
    if bool((m.sum(1) == 0).any()):
        raise ValueError("`mask` has a row with no completion token; every completion has at least one.")
    pos = torch.arange(m.shape[1], device=m.device)
    return (pos * (m > 0)).amax(dim=1)


def token_rewards(rewards, mask, old_logp=None, ref_logp=None, beta: float = 0.0) -> torch.Tensor:
    """Per-token rewards ``[B, T]``: ``rewards[b]`` on row b's last completion token, minus
    ``beta * (old_logp - ref_logp)`` on every completion token when ``beta > 0`` (the k1 KL
    penalty of Ziegler et al. and InstructGPT); 0 on padding."""
    m = as_mask(mask, as_float_tensor(mask, "mask"))
    if m.dim() != 2:
        raise ValueError(f"`mask` must be [B, T] (answers x tokens); got shape {tuple(m.shape)}.")
    r = as_float_tensor(rewards, "rewards").to(m.device)
    if r.shape != m.shape[:1]:
        raise ValueError(f"`rewards` has shape {tuple(r.shape)}; it must be [B] = {tuple(m.shape[:1])}.")
    check_finite(r, "rewards")
    beta = check_nonneg_number(beta, "beta")
    out = torch.zeros_like(m)
    out[torch.arange(m.shape[0], device=m.device), _last_index(m)] = r
    if beta > 0:
        if old_logp is None or ref_logp is None:
            raise ValueError("`beta` > 0 needs `old_logp` and `ref_logp` for the KL penalty.")
        old = as_float_tensor(old_logp, "old_logp").to(m.device)
        ref = as_float_tensor(ref_logp, "ref_logp").to(m.device)
        check_same_shape(m, "mask", old, "old_logp")
        check_same_shape(m, "mask", ref, "ref_logp")
        real = m > 0
        check_finite_at(old, real, "old_logp")
        check_finite_at(ref, real, "ref_logp")
        out = out - beta * torch.where(real, old - ref, torch.zeros_like(old)) * m
    return out


def gae(token_reward, values, mask=None, gamma: float = 1.0, lam: float = 0.95, *, last_value=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation (Schulman et al. 2016; book Eq. ``var-gae``): ``(advantages, returns)``.

    ``A_t = sum_k (gamma lam)**k delta_{t+k}`` with the TD errors
    ``delta_t = r_t + gamma V(s_{t+1}) - V(s_t)``, over each row of T steps, backwards in time
    (the loop runs over time steps, never over rows); ``returns = A + V``.

    Args:
        token_reward: ``[N, T]`` (or ``[T]``) per-step rewards; for a language model with an
            outcome reward, all zeros except at the last token (:func:`token_rewards`).
        values: the critic's ``V(s_t)`` before each step, same shape.
        mask: optional 0/1 of the same shape (1 = a real completion token). Padding gets advantage
            and return 0 and passes nothing back; None means every step is real.
        gamma, lam: discount and GAE parameter in [0, 1]. ``lam = 1`` gives the Monte Carlo return
            minus the value, ``lam = 0`` the one-step TD error.
        last_value: ``V(s_T)`` after the last step, one per row; default 0 (the episode ended).

    Returns:
        ``(advantages, returns)``, each shaped like ``token_reward``.
    """
    r = as_float_tensor(token_reward, "token_reward")
    v = as_float_tensor(values, "values").to(r.dtype)
    if v.shape != r.shape:
        raise ValueError(f"`values` has shape {tuple(v.shape)}; it must match `token_reward` {tuple(r.shape)}.")
    if r.dim() not in (1, 2) or r.shape[-1] == 0 or r.shape[0] == 0:
        raise ValueError(f"`token_reward` must be [N, T] (or [T]) with N, T >= 1; got shape {tuple(r.shape)}.")
    gamma = check_unit_interval(gamma, "gamma", " (the discount)")
    lam = check_unit_interval(lam, "lam", " (the GAE parameter)")
    squeeze = r.dim() == 1
    if squeeze:
        r, v = r[None], v[None]
    m = None if mask is None else as_mask(mask if not squeeze else as_float_tensor(mask, "mask")[None], r)
    if m is None:
        check_finite(r, "token_reward")
        check_finite(v, "values")
    else:  # a padding position may hold anything: it never reaches the result
        check_finite_at(r, m > 0, "token_reward")
        check_finite_at(v, m > 0, "values")
        r = torch.where(m > 0, r, torch.zeros_like(r))
        v = torch.where(m > 0, v, torch.zeros_like(v))
    if last_value is None:
        next_v = torch.zeros_like(r[:, 0])
    else:
        next_v = as_float_tensor(last_value, "last_value").to(r.dtype).reshape(-1)
        if next_v.shape != r[:, 0].shape:
            raise ValueError(f"`last_value` must have one entry per row ({r.shape[0]}); got shape {tuple(next_v.shape)}.")
        check_finite(next_v, "last_value")
    adv = torch.zeros_like(r)
    running = torch.zeros_like(r[:, 0])
    for t in range(r.shape[1] - 1, -1, -1):
        delta = r[:, t] + gamma * next_v - v[:, t]
        running = delta + gamma * lam * running
        if m is not None:
            running = running * m[:, t]
        adv[:, t] = running
        next_v = v[:, t]
    returns = adv + v if m is None else (adv + v) * m
    return (adv[0], returns[0]) if squeeze else (adv, returns)


def whiten(x, mask, eps: float = 1e-8) -> torch.Tensor:
    """``(x - mean) / (std + eps)`` with mean and population std over the masked entries; 0 on padding
    (whatever ``x`` holds there, NaN included)."""
    x = as_float_tensor(x, "x")
    m = as_mask(mask, x)
    check_nonempty_batch(x, "x")
    eps = check_nonneg_number(eps, "eps")
    real = m > 0
    check_finite_at(x, real, "x")
    x = torch.where(real, x, torch.zeros_like(x))
    n = m.sum().clamp(min=1.0)
    mean = (x * m).sum() / n
    var = (((x - mean) * m) ** 2).sum() / n
    return (x - mean) / (var.sqrt() + eps) * m


def value_loss(values, old_values, returns, mask, clip: float = 0.2) -> torch.Tensor:
    """PPO's clipped value loss, mean over masked tokens of
    ``0.5 * max((V - R)^2, (V_old + clip(V - V_old, -c, c) - R)^2)``; a padding position never
    reaches the loss or its gradient, whatever it holds."""
    v = as_float_tensor(values, "values")
    m = as_mask(mask, v)
    check_nonempty_batch(v, "values")
    clip = check_nonneg_number(clip, "clip")
    v_old = as_float_tensor(old_values, "old_values").to(v.device)
    ret = as_float_tensor(returns, "returns").to(v.device)
    check_same_shape(v, "values", v_old, "old_values")
    check_same_shape(v, "values", ret, "returns")
    real = m > 0
    for t, name in ((v, "values"), (v_old, "old_values"), (ret, "returns")):
        check_finite_at(t, real, name)
    zero = torch.zeros_like(v)
    v, v_old, ret = torch.where(real, v, zero), torch.where(real, v_old, zero), torch.where(real, ret, zero)
    v_clipped = v_old + (v - v_old).clamp(-clip, clip)
    per_tok = 0.5 * torch.maximum((v - ret) ** 2, (v_clipped - ret) ** 2)
    return (per_tok * m).sum() / m.sum().clamp(min=1.0)
