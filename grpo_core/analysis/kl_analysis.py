"""Exact KL values, the statistics of the KL estimators, and what a KL penalty optimises.

Companion of the chapter "The KL penalty". Four groups of functions:

- **exact KL** between two categoricals (:func:`categorical_kl`) and two Gaussians
  (:func:`gaussian_kl`), the ground truth the estimators are compared with;
- **the estimators' exact moments**, per sample, for a categorical pair
  (:func:`categorical_estimator_moments`, by enumeration) and a Gaussian pair
  (:func:`gaussian_estimator_moments`, in closed form), and their **Monte Carlo** behaviour
  (:func:`sample_gaussian_pair`, :func:`sample_categorical_pair`, :func:`monte_carlo_kl`);
- **what the penalty optimises** on a K-answer policy: the optimum of the reward-penalty
  objective ``E_pi[r] - beta KL(pi || pi_ref)`` (:func:`kl_regularised_optimum`, book Eq.
  ``kl-optimum``) and the point where the expected gradient of GRPO's loss form with k3 vanishes
  (:func:`k3_loss_fixed_point`, book Eq. ``k3-fixed-point``);
- **the expected gradient of an estimator used as a loss** (:func:`expected_estimator_gradient`,
  book Eq. ``k3-grad-expectation``).

Conventions: pi_theta samples, pi_ref is the reference, ``log_r = log pi_ref - log pi_theta`` as in
:mod:`grpo_core.kl`. Everything runs in float64.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch

from .._checks import (
    as_float_tensor,
    as_prob_pair,
    as_probs,
    check_bool,
    check_choice,
    check_finite,
    check_int,
    check_nonneg_number,
    check_positive,
    check_real,
    check_seed,
)
from ..kl import KL_ESTIMATORS, kl_estimate

__all__ = [
    "categorical_kl",
    "gaussian_kl",
    "EstimatorMoments",
    "categorical_estimator_moments",
    "gaussian_estimator_moments",
    "sample_gaussian_pair",
    "sample_categorical_pair",
    "EstimatorStats",
    "monte_carlo_kl",
    "kl_regularised_optimum",
    "beta_for_kl",
    "k3_loss_fixed_point",
    "expected_estimator_gradient",
]


# ------------------------------------------------------------------------------------ exact KL


def categorical_kl(probs, ref_probs) -> float:
    """Exact ``KL(p || q) = sum_a p_a log(p_a / q_a)`` of two categoricals (book Eq. ``kl-def``).

    Answers with ``p_a = 0`` contribute 0; an answer with ``p_a > 0`` and ``q_a = 0`` makes the
    KL infinite (returned as ``inf``).
    """
    p, q = as_prob_pair(probs, ref_probs)
    support = p > 0
    if bool((q[support] == 0).any()):
        return math.inf
    return float((p[support] * (p[support].log() - q[support].log())).sum())


def gaussian_kl(mu: float, sigma: float, ref_mu: float, ref_sigma: float) -> float:
    """Exact ``KL(N(mu, sigma^2) || N(ref_mu, ref_sigma^2))``:
    ``log(ref_sigma / sigma) + (sigma^2 + (mu - ref_mu)^2) / (2 ref_sigma^2) - 1/2``."""
    m, s = check_real(mu, "mu"), check_positive(sigma, "sigma", " (a standard deviation)")
    rm, rs = check_real(ref_mu, "ref_mu"), check_positive(ref_sigma, "ref_sigma", " (a standard deviation)")
    return math.log(rs / s) + (s * s + (m - rm) ** 2) / (2 * rs * rs) - 0.5


# ------------------------------------------------------------------------------------ exact moments


class EstimatorMoments(NamedTuple):
    """Mean and standard deviation of one estimator's value for ONE sample from pi_theta.

    The mean of ``n`` independent samples has the same mean and standard deviation ``std / sqrt(n)``.
    """

    mean: float
    std: float


def categorical_estimator_moments(probs, ref_probs) -> dict[str, EstimatorMoments]:
    """Exact per-sample mean and std of k1, k2, k3 for ``o ~ probs``, by summing over the K answers.

    Both distributions must give every answer a positive probability (the estimators need both
    log-probabilities of every answer that can be sampled).
    """
    p, q = as_prob_pair(probs, ref_probs)
    if bool((p == 0).any()) or bool((q == 0).any()):
        raise ValueError("`probs` and `ref_probs` must be > 0 for every answer; drop answers neither can produce.")
    logp, logq = p.log(), q.log()
    out = {}
    for kind in KL_ESTIMATORS:
        k = kl_estimate(logp, logq, kind)
        mean = float((p * k).sum())
        var = float((p * (k - mean) ** 2).sum())
        out[kind] = EstimatorMoments(mean, math.sqrt(max(var, 0.0)))
    return out


def _gauss_poly_mean(coeffs: np.ndarray) -> float:
    """E[P(z)] for z ~ N(0, 1), P given by coefficients in increasing order: E[z^j] = (j-1)!! for even j."""
    total = 0.0
    for j, c in enumerate(coeffs):
        if j % 2 == 0:
            total += c * float(np.prod(np.arange(j - 1, 0, -2)))  # empty product for j = 0
    return total


def gaussian_estimator_moments(mu: float, sigma: float, ref_mu: float, ref_sigma: float) -> dict[str, EstimatorMoments]:
    """Exact per-sample mean and std of k1, k2, k3 for ``x ~ N(mu, sigma^2)``, ``pi_ref = N(ref_mu, ref_sigma^2)``.

    With ``x = mu + sigma z``, ``t = sigma / ref_sigma`` and ``d = (mu - ref_mu) / ref_sigma``, the
    log-ratio is a quadratic in the standard normal z (book Eq. ``gauss-log-ratio``)::

        log_r = a + b z + c z^2,   a = log t - d^2 / 2,   b = -t d,   c = (1 - t^2) / 2

    so the moments of k1 and k2 are moments of a Gaussian polynomial, and those of k3 follow from
    ``E[exp(s log_r)] = exp(s a + s^2 b^2 / (2 (1 - 2 s c))) / sqrt(1 - 2 s c)``. ``E[r^2]`` is finite
    only when ``1 - 4c > 0``, that is ``ref_sigma < sqrt(2) sigma``: for a reference at least
    sqrt(2) times wider than pi_theta, k3 has infinite variance (``std = inf``).
    """
    m, s = check_real(mu, "mu"), check_positive(sigma, "sigma", " (a standard deviation)")
    rm, rs = check_real(ref_mu, "ref_mu"), check_positive(ref_sigma, "ref_sigma", " (a standard deviation)")
    t, d = s / rs, (m - rm) / rs
    a, b, c = math.log(t) - d * d / 2, -t * d, (1 - t * t) / 2
    L = np.array([a, b, c])
    L2 = np.polynomial.polynomial.polymul(L, L)
    L4 = np.polynomial.polynomial.polymul(L2, L2)
    mean_L, mean_L2, mean_L4 = (float(_gauss_poly_mean(x)) for x in (L, L2, L4))

    kl = -mean_L
    k1 = EstimatorMoments(kl, math.sqrt(max(mean_L2 - mean_L**2, 0.0)))
    k2 = EstimatorMoments(0.5 * mean_L2, 0.5 * math.sqrt(max(mean_L4 - mean_L2**2, 0.0)))
    # k3 = r - 1 - log_r, with E[r] = 1.
    if 1 - 4 * c <= 0:
        k3_std = math.inf
    else:
        e_r2 = math.exp(2 * a + 2 * b * b / (1 - 4 * c)) / math.sqrt(1 - 4 * c)
        e_rL = a + b * b * (1 - c) / (1 - 2 * c) ** 2 + c / (1 - 2 * c)  # E[r log_r] = M'(1)
        var = e_r2 - 2 * e_rL + mean_L2 - (1 - mean_L) ** 2
        k3_std = math.sqrt(max(var, 0.0))
    return {"k1": k1, "k2": k2, "k3": EstimatorMoments(kl, k3_std)}


# ------------------------------------------------------------------------------------ Monte Carlo


def sample_gaussian_pair(n: int, reps: int, ref_mu: float, ref_sigma: float, mu: float = 0.0, sigma: float = 1.0, seed: int = 0):
    """``reps`` independent batches of ``n`` samples ``x ~ N(mu, sigma^2)`` (pi_theta).

    Returns ``(logp, ref_logp)``, each ``[reps, n]``: the log-densities of the samples under
    pi_theta and under ``pi_ref = N(ref_mu, ref_sigma^2)``, ready for :func:`grpo_core.kl_estimate`.
    """
    n, reps = check_int(n, "n"), check_int(reps, "reps")
    m, s = check_real(mu, "mu"), check_positive(sigma, "sigma", " (a standard deviation)")
    rm, rs = check_real(ref_mu, "ref_mu"), check_positive(ref_sigma, "ref_sigma", " (a standard deviation)")
    gen = torch.Generator().manual_seed(check_seed(seed))
    z = torch.randn(reps, n, generator=gen, dtype=torch.float64)
    x = m + s * z
    half_log_2pi = 0.5 * math.log(2 * math.pi)
    logp = -0.5 * z * z - math.log(s) - half_log_2pi
    ref_logp = -0.5 * ((x - rm) / rs) ** 2 - math.log(rs) - half_log_2pi
    return logp, ref_logp


def sample_categorical_pair(probs, ref_probs, n: int, reps: int, seed: int = 0):
    """``reps`` batches of ``n`` answers drawn from ``probs``; returns ``(logp, ref_logp)``, ``[reps, n]``."""
    p, q = as_prob_pair(probs, ref_probs)
    n, reps = check_int(n, "n"), check_int(reps, "reps")
    if bool((q[p > 0] == 0).any()):
        raise ValueError("`ref_probs` is 0 for an answer `probs` can sample: the KL is infinite and no estimator is finite.")
    gen = torch.Generator().manual_seed(check_seed(seed))
    idx = torch.multinomial(p, n * reps, replacement=True, generator=gen).view(reps, n)
    return p.log()[idx], q.log()[idx]


@dataclass(frozen=True)
class EstimatorStats:
    """Monte Carlo behaviour of one estimator over ``reps`` batches of ``n`` samples.

    ``estimates``: the ``reps`` batch means (each an estimate of the KL from n samples);
    ``bias``: their mean minus the exact KL; ``std``: their standard deviation;
    ``negative_share``: share of single-sample values below 0; ``negative_estimate_share``:
    share of batch means below 0 (a logged "KL" below zero).
    """

    kind: str
    estimates: torch.Tensor
    bias: float
    std: float
    negative_share: float
    negative_estimate_share: float


def monte_carlo_kl(logp, ref_logp, exact: float) -> dict[str, EstimatorStats]:
    """k1, k2, k3 on ``reps`` batches of ``n`` samples (``logp``, ``ref_logp``: ``[reps, n]``).

    ``exact`` is the true KL(pi_theta || pi_ref) the estimates are compared with.
    """
    lp, ref = as_float_tensor(logp, "logp"), as_float_tensor(ref_logp, "ref_logp")
    if lp.dim() != 2:
        raise ValueError(f"`logp` must be [reps, n] (batches x samples); got shape {tuple(lp.shape)}.")
    exact = check_real(exact, "exact")
    out = {}
    for kind in KL_ESTIMATORS:
        # reductions in NumPy: on small CPU tensors they are several times faster than torch's
        per_sample = kl_estimate(lp, ref, kind).detach().cpu().double().numpy()
        est = per_sample.mean(axis=1)
        out[kind] = EstimatorStats(
            kind=kind,
            estimates=torch.from_numpy(est),
            bias=float(est.mean()) - exact,
            std=float(est.std(ddof=1)) if est.size > 1 else 0.0,
            negative_share=float((per_sample < 0).mean()),
            negative_estimate_share=float((est < 0).mean()),
        )
    return out


# ------------------------------------------------------------------------------------ what a penalty optimises


def _bandit_inputs(ref_probs, rewards, beta) -> tuple[torch.Tensor, torch.Tensor, float]:
    q = as_probs(ref_probs, "ref_probs")
    r = as_float_tensor(rewards, "rewards").double()
    if r.shape != q.shape:
        raise ValueError(f"`rewards` has shape {tuple(r.shape)} but `ref_probs` has {tuple(q.shape)}; give one reward per answer.")
    check_finite(r, "rewards")
    return q, r, check_nonneg_number(beta, "beta")


def _beta_zero_limit(q: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """beta -> 0: pi_ref restricted to the best answers it can produce, renormalised."""
    best = r == r[q > 0].max()
    w = torch.where(best, q, torch.zeros_like(q))
    return w / w.sum()


def kl_regularised_optimum(ref_probs, rewards, beta: float) -> torch.Tensor:
    """The maximiser of ``E_pi[r] - beta KL(pi || pi_ref)`` over all distributions on K answers.

    ``pi*(a) = pi_ref(a) exp(r(a) / beta) / Z`` (book Eq. ``kl-optimum``): the reference tilted
    towards high reward, by a factor ``exp(1 / beta)`` per unit of reward. This is what the
    reward-penalty form (PPO for language models, reward ``r - beta log(pi / pi_ref)``) converges to.
    ``beta = 0`` gives the limit: pi_ref restricted to the highest-reward answers it can produce.
    """
    q, r, beta = _bandit_inputs(ref_probs, rewards, beta)
    if beta == 0.0:
        return _beta_zero_limit(q, r)
    return torch.softmax(q.log() + r / beta, 0)


def beta_for_kl(ref_probs, rewards, kl: float) -> float:
    """The beta whose optimum :func:`kl_regularised_optimum` sits at ``KL(pi* || pi_ref) = kl``.

    The optimum's KL falls from its beta -> 0 limit to 0 as beta grows, so bisection (on log beta)
    finds it; the optimum for that beta earns the most reward any policy can at that KL (the
    reward-KL frontier). ``kl`` must be > 0 and below the beta -> 0 limit.
    """
    q, r, _ = _bandit_inputs(ref_probs, rewards, 0.0)
    kl = check_nonneg_number(kl, "kl")
    top = categorical_kl(_beta_zero_limit(q, r), q)
    if not 0.0 < kl < top:
        raise ValueError(f"`kl` must be in (0, {top:.6g}): the optimum's KL for beta from infinity down to 0; got {kl!r}.")
    lo, hi = math.log(1e-6), math.log(1e6)
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if categorical_kl(torch.softmax(q.log() + r / math.exp(mid), 0), q) > kl:
            lo = mid
        else:
            hi = mid
    return math.exp(0.5 * (lo + hi))


def k3_loss_fixed_point(ref_probs, rewards, beta: float) -> torch.Tensor:
    """Where the expected gradient of ``-E_pi[r] + beta * mean(k3)`` vanishes (on-policy samples).

    With the samples held fixed, the expected gradient of the k3 loss is the gradient of
    ``KL(pi_ref || pi)``, not of ``KL(pi || pi_ref)`` (book Eq. ``k3-grad-expectation``). For a
    softmax policy over K answers the expected update is zero where
    ``pi(a) (r(a) - E_pi r) = beta (pi(a) - pi_ref(a))``, which gives (book Eq. ``k3-fixed-point``)::

        pi(a) = beta pi_ref(a) / (c - r(a)),   c > max r chosen so that sum_a pi(a) = 1

    (and then ``c = E_pi r + beta``). This is the maximiser of ``E_pi[r] - beta KL(pi_ref || pi)``.
    The reward enters through ``1 / (c - r)``, not ``exp(r / beta)``. ``beta = 0`` gives the same
    limit as :func:`kl_regularised_optimum`.
    """
    q, r, beta = _bandit_inputs(ref_probs, rewards, beta)
    if beta == 0.0:
        return _beta_zero_limit(q, r)
    support = q > 0
    gap = r[support].max() - r  # >= 0 on the support
    # Solve f(u) = sum_a beta q_a / (u + gap_a) = 1 for u = c - max r in (0, beta]: f decreases
    # from +inf to at most 1; bisect on log u, since u can be tiny when beta is.
    qs, gs = q[support], gap[support]

    def f(u: float) -> float:
        return float((beta * qs / (u + gs)).sum())

    lo, hi = math.log(beta) - 60.0, math.log(beta)
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if f(math.exp(mid)) > 1.0:
            lo = mid
        else:
            hi = mid
    u = math.exp(0.5 * (lo + hi))
    pi = torch.where(support, beta * q / (u + gap), torch.zeros_like(q))
    return pi / pi.sum()


def expected_estimator_gradient(logits, ref_logits, kind: str = "k3", weighted: bool = False) -> torch.Tensor:
    """``E_{o ~ pi_theta}[ d k(o) / d logits ]`` for a softmax policy, with the sampled o held fixed.

    This is what minimising ``mean_i k(o_i)`` over on-policy samples does on average: autograd
    differentiates ``k`` through ``log pi_theta(o)`` but not through the sampling. The sum over
    the K answers is exact (book Eq. ``k3-grad-expectation``). Results, for the record:
    k1 gives 0, k2 gives ``grad KL(pi_theta || pi_ref)``, k3 gives ``grad KL(pi_ref || pi_theta)``.

    ``weighted=True`` differentiates ``w(o) k(o)`` instead, with ``w = exp(log pi_theta(o) -
    stop_grad(log pi_theta(o)))``: a weight whose value is 1 but whose gradient is the score
    ``grad log pi_theta(o)``. It adds back the term the fixed samples drop (book Eq.
    ``kl-grad-split``), so k1 and k3 then give ``grad KL(pi_theta || pi_ref)`` (the on-policy case
    of the importance weight ``pi_theta / pi_old`` that DeepSeek-V3.2 puts on k3).
    """
    check_choice(kind, "kind", KL_ESTIMATORS)
    lg = as_float_tensor(logits, "logits").double()
    ref = as_float_tensor(ref_logits, "ref_logits").double()
    if lg.dim() != 1 or lg.shape != ref.shape:
        raise ValueError(f"`logits` and `ref_logits` must be 1-D of the same length; got {tuple(lg.shape)} and {tuple(ref.shape)}.")
    check_finite(lg, "logits")
    check_finite(ref, "ref_logits")
    lg = lg.detach().clone().requires_grad_(True)
    logp = torch.log_softmax(lg, 0)
    per_answer = kl_estimate(logp, torch.log_softmax(ref, 0), kind)
    if check_bool(weighted, "weighted"):
        per_answer = torch.exp(logp - logp.detach()) * per_answer
    weights = logp.detach().exp()  # the sampling distribution: not differentiated
    (grad,) = torch.autograd.grad((weights * per_answer).sum(), lg)
    return grad
