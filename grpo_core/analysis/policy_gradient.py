"""The policy gradient and importance sampling, exactly, on policies small enough to enumerate.

The chapter "Deriving the GRPO objective" goes from the policy-gradient theorem (book Eq.
``pg-theorem``) through importance sampling (Eq. ``is-gradient``) to the surrogate whose gradient
GRPO follows. Each step is checked here on two tiny policies:

- a **categorical policy** ``pi = softmax(logits)`` over K answers (one decision, like the toy
  bandit): :func:`score_function`, :func:`exact_policy_gradient` and
  :func:`policy_gradient_estimate` (on-policy, or importance-sampled from a behaviour policy);
- a **sequence policy** whose every answer can be listed, e.g. two tokens from a vocabulary of V
  (:func:`two_token_logprobs`): :func:`enumerated_surrogates` gives the exact expectations of
  the true objective and of the per-sequence, per-token and GSPO surrogates, so their gradients
  can be compared without sampling noise.

Float64 is recommended; every function accepts any floating dtype.
"""

from __future__ import annotations

import torch

from .._checks import as_actions, as_float_tensor, as_logits, check_finite, check_same_shape

__all__ = [
    "score_function",
    "exact_policy_gradient",
    "policy_gradient_estimate",
    "two_token_logprobs",
    "enumerated_surrogates",
]


def score_function(logits, actions) -> torch.Tensor:
    """``grad_logits log pi(a)`` for each sampled answer ``a``: ``onehot(a) - softmax(logits)``.

    The closed form of the softmax's score function (book Eq. ``pg-theorem``); the tests check it
    against autograd.

    Args:
        logits: ``[K]`` logits of ``pi = softmax(logits)``.
        actions: ``[N]`` integer answers in ``0..K-1``.

    Returns:
        ``[N, K]``, row n the gradient of ``log pi(actions[n])`` with respect to the logits.
    """
    lg = as_logits(logits, "logits")
    a = as_actions(actions, lg.numel())
    onehot = torch.nn.functional.one_hot(a.to(lg.device), lg.numel()).to(lg.dtype)
    return onehot - torch.softmax(lg, -1)


def exact_policy_gradient(logits, rewards) -> torch.Tensor:
    """``grad_logits J`` of ``J = sum_a pi(a) r(a)`` with ``pi = softmax(logits)``: ``pi * (r - J)``.

    What every policy-gradient estimator on this policy estimates.

    Args:
        logits: ``[K]``.
        rewards: ``[K]``, the reward of each answer.

    Returns:
        ``[K]``.
    """
    lg = as_logits(logits, "logits")
    r = as_float_tensor(rewards, "rewards").to(device=lg.device, dtype=lg.dtype)
    check_same_shape(lg, "logits", r, "rewards")
    check_finite(r, "rewards")
    p = torch.softmax(lg, -1)
    return p * (r - (p * r).sum())


def policy_gradient_estimate(logits, actions, advantages, behaviour_logits=None) -> torch.Tensor:
    """Monte Carlo estimate of ``grad J`` from N sampled answers (book Eqs. ``pg-theorem``, ``is-gradient``).

    On-policy (``behaviour_logits=None``; the answers were drawn from ``softmax(logits)``)::

        (1/N) sum_n A_n grad log pi_theta(a_n)

    Importance-sampled (the answers were drawn from ``pi_old = softmax(behaviour_logits)``)::

        (1/N) sum_n [pi_theta(a_n) / pi_old(a_n)] A_n grad log pi_theta(a_n)

    Both are unbiased for ``grad J`` when ``A_n = r(a_n) - b`` with ``b`` a constant.

    Args:
        logits: ``[K]``, pi_theta's logits (the policy whose gradient is wanted).
        actions: ``[N]`` sampled answers.
        advantages: ``[N]``, one per sampled answer.
        behaviour_logits: ``[K]``, the logits of the policy that sampled ``actions``, or None.

    Returns:
        ``[K]``.
    """
    lg = as_logits(logits, "logits")
    a = as_actions(actions, lg.numel())
    adv = as_float_tensor(advantages, "advantages").to(device=lg.device, dtype=lg.dtype)
    if adv.shape != a.shape:
        raise ValueError(f"`advantages` has shape {tuple(adv.shape)} but `actions` has shape {tuple(a.shape)}; pass one advantage per sampled answer.")
    check_finite(adv, "advantages")
    weight = adv
    if behaviour_logits is not None:
        old = as_logits(behaviour_logits, "behaviour_logits").to(device=lg.device, dtype=lg.dtype)
        check_same_shape(lg, "logits", old, "behaviour_logits")
        idx = a.to(lg.device)
        log_ratio = torch.log_softmax(lg, -1)[idx] - torch.log_softmax(old, -1)[idx]
        weight = torch.exp(log_ratio) * adv
    return (weight[:, None] * score_function(lg, a)).mean(dim=0)


def two_token_logprobs(logits1, logits2) -> torch.Tensor:
    """Per-token log-probabilities of every answer ``(x, y)`` of a two-token policy.

    The first token is drawn from ``softmax(logits1)``, the second from ``softmax(logits2[x])``:
    a language model with a vocabulary of V tokens and answers of length 2, small enough that the
    ``V**2`` answers can be listed and every expectation summed exactly.

    Args:
        logits1: ``[V]``.
        logits2: ``[V, V]``, row x the logits of the second token after first token x.

    Returns:
        ``[V*V, 2]``: row ``x*V + y`` holds ``log pi(x)`` and ``log pi(y | x)``. Gradients flow to
        both logit tensors.
    """
    l1 = as_logits(logits1, "logits1")
    l2 = as_float_tensor(logits2, "logits2")
    v = l1.numel()
    if l2.shape != (v, v):
        raise ValueError(f"`logits2` must be [V, V] = {(v, v)} (one row of next-token logits per first token); got {tuple(l2.shape)}.")
    check_finite(l2, "logits2")
    first = torch.log_softmax(l1, -1).repeat_interleave(v)
    second = torch.log_softmax(l2.to(l1.dtype), -1).reshape(v * v)
    return torch.stack([first, second], dim=1)


def enumerated_surrogates(token_logp, old_token_logp, rewards) -> dict[str, torch.Tensor]:
    """Exact expectations over every answer of a policy whose answers can all be listed.

    With ``pi(o) = exp(sum_t token_logp[o, t])``, per-token ratios ``r_t = pi_theta(o_t | o_<t) /
    pi_old(o_t | o_<t)`` and the outcome advantage ``A(o) = R(o) - b``, ``b = E_old[R]``
    (a constant, so every line is an unbiased baseline form)::

        "objective": J(theta)   = sum_o pi_theta(o) R(o)                   (Eq. pg-objective)
        "sequence":  L_seq      = E_old[ (pi_theta(o) / pi_old(o)) A(o) ]  (Eq. is-surrogate)
        "token":     L_tok      = E_old[ sum_t r_t A(o) ]                  (Eq. token-surrogate)
        "gspo":      L_gspo     = E_old[ exp(mean_t log r_t) A(o) ]        (Eq. gspo-ratio)

    ``L_seq = J - b`` for every theta, so its gradient is ``grad J`` everywhere; ``L_tok`` and
    ``L_gspo`` agree with ``grad J`` (``L_gspo`` up to the factor 1/T) only at theta = theta_old.

    Args:
        token_logp: ``[S, T]`` log pi_theta of each token of each of the S answers (with gradient).
        old_token_logp: ``[S, T]`` the same under pi_old (constant).
        rewards: ``[S]`` reward of each answer.

    Returns:
        Dict of scalar tensors, differentiable with respect to ``token_logp``.
    """
    lp = as_float_tensor(token_logp, "token_logp")
    old = as_float_tensor(old_token_logp, "old_token_logp").to(device=lp.device, dtype=lp.dtype).detach()
    check_same_shape(lp, "token_logp", old, "old_token_logp")
    if lp.dim() != 2:
        raise ValueError(f"`token_logp` must be [S, T] (answers x tokens); got shape {tuple(lp.shape)}.")
    check_finite(lp, "token_logp")
    check_finite(old, "old_token_logp")
    r = as_float_tensor(rewards, "rewards").to(device=lp.device, dtype=lp.dtype)
    if r.shape != lp.shape[:1]:
        raise ValueError(f"`rewards` has shape {tuple(r.shape)}; it must be [S] = {tuple(lp.shape[:1])}, one per answer.")
    check_finite(r, "rewards")
    for name, t in (("token_logp", lp), ("old_token_logp", old)):
        total = float(t.detach().sum(dim=1).exp().sum())
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"`{name}` must list every answer: its probabilities sum to {total:.6g}, not 1.")
    p_old = old.sum(dim=1).exp()
    adv = r - (p_old * r).sum()
    log_r = lp - old
    return {
        "objective": (lp.sum(dim=1).exp() * r).sum(),
        "sequence": (p_old * log_r.sum(dim=1).exp() * adv).sum(),
        "token": (p_old * log_r.exp().sum(dim=1) * adv).sum(),
        "gspo": (p_old * log_r.mean(dim=1).exp() * adv).sum(),
    }
