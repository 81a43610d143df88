"""Variance of the advantage and of the policy-gradient estimate (book chapter 'Variance').

Two different questions hide behind "the variance of GRPO":

1. **How variable is one normalised advantage?** With the group's own population std the
   advantages of a group satisfy ``sum_i A_i = 0`` and ``sum_i A_i**2 = G`` exactly, so
   ``Var[A_i] = 1`` whatever the reward distribution (book Eq. ``var-adv-one``). The source notes'
   ``(1/G)(1 + gamma_2/2)`` (seed 5.2) is not that; :func:`advantage_variance_study` measures the
   candidates side by side, with exact shape moments from :func:`excess_kurtosis` and two
   heavy-tailed reward distributions of :mod:`grpo_core.analysis.rewards` (:class:`StudentT`,
   :class:`LogNormal`).
2. **How noisy is the gradient estimate built from those advantages?** On a problem whose true
   gradient is known exactly (:class:`PromptBandits`: several prompts, each a softmax over K
   answers with 0/1 rewards), :func:`gradient_estimates` draws many independent batches of G
   answers per prompt and returns the gradient each estimator would compute (Monte Carlo,
   vectorised), :func:`exact_estimator_moments` gives the exact mean and covariance trace, and
   :func:`estimator_summary` turns either into the numbers the book compares (noise-to-signal
   ratio, cosine and norm ratio of the mean gradient against the true one).
   :func:`expected_gradient_weight` is the closed form of the per-prompt reweighting that the
   std division causes.

And the PPO side of seed 2.3 and 5.2: generalised advantage estimation itself is
:func:`grpo_core.gae` (the core's, which the PPO trainer uses too), and :func:`gae_variance` (its variance for equicorrelated TD errors, which contains the notes'
``sigma**2 / (1 - gamma lambda)**2`` as the fully correlated extreme).
"""

from __future__ import annotations

import dataclasses
import math

import torch

from .._checks import (
    as_float_tensor,
    check_choice,
    check_finite,
    check_group_size,
    check_instance,
    check_int,
    check_nonneg_number,
    check_real,
    check_seed,
    check_unit_interval,
)
from ..advantages import bernoulli_advantages, compute_advantages, group_advantages
from .rewards import (
    Bernoulli,
    BernoulliBeta,
    Beta,
    Gaussian,
    LogNormal,
    Mixture,
    NearlyConstant,
    RewardDistribution,
    StudentT,
    Uniform,
)
from .toy import make_bandit

__all__ = [
    "excess_kurtosis",
    "notes_advantage_variance",
    "sample_variance_relvar",
    "advantage_variance_study",
    "gae_variance",
    "PromptBandits",
    "make_prompt_bandits",
    "true_gradient",
    "ESTIMATORS",
    "GROUP_ESTIMATORS",
    "gradient_estimates",
    "expected_gradient_weight",
    "exact_estimator_moments",
    "estimator_summary",
]


def excess_kurtosis(dist: RewardDistribution) -> float:
    """Exact excess kurtosis ``gamma_2 = E[(r - mu)**4] / sigma**4 - 3`` of one reward of ``dist``.

    Gaussian 0, uniform -1.2, Bernoulli(p) ``(1 - 6 p q) / (p q)`` (-2 at p = 1/2, the smallest
    value any distribution can have), Student-t ``6 / (df - 4)``, and the closed forms of the
    Beta, the two-mode mixture and the log-normal.

    Raises:
        ValueError: a distribution without spread (``std == 0``: kurtosis undefined), a
            Student-t with ``df <= 4`` (infinite fourth moment), or :class:`BernoulliBeta`,
            whose answers to one prompt are not independent draws of one distribution.
    """
    if not isinstance(dist, RewardDistribution):
        raise ValueError(f"`dist` must be a reward distribution (grpo_core.analysis.rewards); got {dist!r}.")
    if isinstance(dist, BernoulliBeta):
        raise ValueError(
            "`dist` is BernoulliBeta: answers to one prompt share a success rate, so a group is "
            "not an i.i.d. sample and no single kurtosis describes it; use Bernoulli(p) per prompt."
        )
    if not dist.std > 0.0:
        raise ValueError(f"`dist` = {dist.label} has no spread (std 0); its kurtosis is undefined.")
    if isinstance(dist, Bernoulli):
        pq = dist.p * (1.0 - dist.p)
        return (1.0 - 6.0 * pq) / pq
    if isinstance(dist, (Gaussian, NearlyConstant)):
        return 0.0
    if isinstance(dist, Uniform):
        return -1.2
    if isinstance(dist, Beta):
        a, b = dist.a, dist.b
        num = 6.0 * ((a - b) ** 2 * (a + b + 1.0) - a * b * (a + b + 2.0))
        return num / (a * b * (a + b + 2.0) * (a + b + 3.0))
    if isinstance(dist, Mixture):
        m, s2 = dist.mean, dist.sigma**2
        comps = ((dist.w, dist.mu1 - m), (1.0 - dist.w, dist.mu2 - m))
        m2 = sum(w * (d * d + s2) for w, d in comps)
        m4 = sum(w * (d**4 + 6.0 * d * d * s2 + 3.0 * s2 * s2) for w, d in comps)
        return m4 / (m2 * m2) - 3.0
    if isinstance(dist, StudentT):
        if not dist.df > 4.0:
            raise ValueError(f"`dist` is a Student-t with df = {dist.df} <= 4: its fourth moment is infinite.")
        return 6.0 / (dist.df - 4.0)
    if isinstance(dist, LogNormal):
        s2 = dist.sigma**2
        return math.exp(4 * s2) + 2 * math.exp(3 * s2) + 3 * math.exp(2 * s2) - 6.0
    raise ValueError(f"`dist` = {dist.label}: no closed-form kurtosis is known here.")


# ------------------------------------------------------------------- variance of one advantage


def notes_advantage_variance(G: int, kurtosis: float) -> float:
    """The source notes' claim (seed 5.2): ``Var[r_hat_i] = (1 / G) (1 + gamma_2 / 2)`` (book Eq. ``var-notes``).

    Returned as stated, to be compared with what it claims to describe (it is not the variance
    of the normalised reward, which is 1; see the chapter and :func:`advantage_variance_study`).
    """
    g = check_group_size(G, "G")
    return (1.0 + 0.5 * check_real(kurtosis, "kurtosis", " (the excess kurtosis gamma_2; no distribution has one below -2)", minimum=-2.0)) / g


def sample_variance_relvar(G: int, kurtosis: float) -> float:
    """Exact ``Var[s**2] / sigma**4`` of the Bessel sample variance of G i.i.d. rewards (book Eq. ``var-s2``).

    ``2 / (G - 1) + gamma_2 / G``; for large G this is ``(2 + gamma_2) / G``, twice the notes'
    expression.
    """
    g = check_group_size(G, "G")
    return 2.0 / (g - 1) + check_real(kurtosis, "kurtosis", " (the excess kurtosis gamma_2; no distribution has one below -2)", minimum=-2.0) / g


def advantage_variance_study(dist: RewardDistribution, G: int, n_groups: int = 100_000, seed: int = 0) -> dict[str, float]:
    """Monte Carlo of the quantities the notes' variance formula could mean, for groups of G.

    Draws ``n_groups`` groups of G rewards from ``dist`` (float64) and returns:

    - ``var_adv``: ``Var[A_1]`` of the first answer's advantage, population std (eps = 0), over
      the groups with spread (exactly 1 in expectation: book Eq. ``var-adv-one``);
    - ``var_adv_sample``: the same with the sample std (exactly ``(G - 1) / G``);
    - ``relvar_s2``: ``Var[s**2] / sigma**4`` of the Bessel sample variance (compare
      :func:`sample_variance_relvar`);
    - ``relvar_s``: ``Var[s] / sigma**2`` of the population std (about ``(2 + gamma_2) / (4 G)``);
    - ``oracle_mse``: ``E[(A_i - z_i)**2]`` over every answer of the groups with spread, where
      ``z_i = (r_i - mu) / sigma`` is the reward standardised with the true mean and std (about
      ``(1.5 + gamma_2 / 4) / G``);
    - ``zero_spread``: share of groups whose rewards are all equal (left out of the first three).

    No loop over groups: one ``[n_groups, G]`` tensor.
    """
    if not isinstance(dist, RewardDistribution):
        raise ValueError(f"`dist` must be a reward distribution (grpo_core.analysis.rewards); got {dist!r}.")
    g = check_group_size(G, "G")
    check_int(n_groups, "n_groups", 2)
    if not dist.std > 0.0:
        raise ValueError(f"`dist` = {dist.label} has no spread: every advantage is 0.")
    r = dist.sample(n_groups, g, seed=seed, dtype=torch.float64)
    spread = r.amax(dim=1) > r.amin(dim=1)
    a_pop = group_advantages(r, g, eps=0.0)[spread]
    a_smp = group_advantages(r, g, std="sample", eps=0.0)[spread]
    z = ((r - dist.mean) / dist.std)[spread]
    s2 = r.var(dim=1, correction=1) / dist.std**2
    s = r.std(dim=1, correction=0) / dist.std
    return {
        "var_adv": float(a_pop[:, 0].var()),
        "var_adv_sample": float(a_smp[:, 0].var()),
        "relvar_s2": float(s2.var()),
        "relvar_s": float(s.var()),
        "oracle_mse": float(((a_pop - z) ** 2).mean()),
        "zero_spread": float(1.0 - spread.double().mean()),
    }


# ------------------------------------------------------------------------------------------ GAE


def gae_variance(sigma: float, gamma: float, lam: float, horizon: int | None = None, rho: float = 0.0) -> float:
    """Variance of ``sum_{k<H} (gamma lam)**k delta_k`` for TD errors of equal variance ``sigma**2``
    and equal pairwise correlation ``rho`` (book Eq. ``var-gae-equicorrelated``).

    ``sigma**2 [(1 - rho) sum_k x**(2k) + rho (sum_k x**k)**2]`` with ``x = gamma lam``.
    ``rho = 0`` (uncorrelated TD errors, as an exact critic gives) and ``H`` infinite:
    ``sigma**2 / (1 - x**2)``; ``rho = 1`` (every TD error the same): ``sigma**2 / (1 - x)**2``,
    the notes' expression, and the largest value any correlation can give.

    Args:
        sigma: std of one TD error, >= 0.
        gamma, lam: in [0, 1].
        horizon: number of TD errors summed, an int >= 1; None for an infinite sum (then
            ``gamma * lam < 1`` is required).
        rho: correlation between any two TD errors, in [0, 1].
    """
    sigma = check_nonneg_number(sigma, "sigma", " (the TD errors' std)")
    x = check_unit_interval(gamma, "gamma", "") * check_unit_interval(lam, "lam", "")
    rho = check_unit_interval(rho, "rho", " (a correlation)")
    if horizon is None:
        if x >= 1.0:
            raise ValueError("`horizon` must be given when gamma * lam = 1: the infinite sum diverges.")
        s1, s2 = 1.0 / (1.0 - x), 1.0 / (1.0 - x * x)
    else:
        check_int(horizon, "horizon", 1, " (or None for an infinite sum)")
        s1 = float(horizon) if x == 1.0 else (1.0 - x**horizon) / (1.0 - x)
        s2 = float(horizon) if x == 1.0 else (1.0 - x ** (2 * horizon)) / (1.0 - x * x)
    return sigma**2 * ((1.0 - rho) * s2 + rho * s1 * s1)


# ---------------------------------------------------------------- a problem with a known gradient


@dataclasses.dataclass(frozen=True)
class PromptBandits:
    """P prompts, each a softmax policy over K answers with a fixed reward per answer.

    ``logits[p]`` are prompt p's own parameters (a tabular policy, as if each prompt had its own
    head), ``rewards[p, a]`` the reward of answer a to prompt p. The objective is the mean
    expected reward over prompts, ``J = (1/P) sum_p sum_a pi_p(a) r_p(a)`` (book Eq. ``var-objective``).
    Float64; ``probs`` (``softmax(logits)`` per row) is computed once at construction.
    """

    logits: torch.Tensor
    rewards: torch.Tensor
    probs: torch.Tensor = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self):
        lg, rw = self.logits, self.rewards
        if not (isinstance(lg, torch.Tensor) and isinstance(rw, torch.Tensor)):
            raise ValueError("`logits` and `rewards` must be tensors of shape [P, K].")
        if lg.dim() != 2 or lg.shape != rw.shape or lg.shape[1] < 2:
            raise ValueError(
                f"`logits` and `rewards` must both be [P, K] with K >= 2; got {tuple(lg.shape)} and {tuple(rw.shape)}."
            )
        object.__setattr__(self, "logits", lg.detach().double())
        object.__setattr__(self, "rewards", rw.detach().double())
        check_finite(self.logits, "logits")
        check_finite(self.rewards, "rewards")
        # pi_p = softmax(logits_p), computed once: every estimator and closed form needs it
        object.__setattr__(self, "probs", torch.softmax(self.logits, dim=1))

    @property
    def n_prompts(self) -> int:
        return self.logits.shape[0]

    @property
    def n_answers(self) -> int:
        return self.logits.shape[1]

    @property
    def success(self) -> torch.Tensor:
        """Expected reward per prompt, ``J_p = sum_a pi_p(a) r_p(a)``, shape ``[P]``."""
        return (self.probs * self.rewards).sum(dim=1)

    @property
    def reward_std(self) -> torch.Tensor:
        """Std of one answer's reward per prompt, shape ``[P]``."""
        pi = self.probs
        return (pi * (self.rewards - self.success[:, None]) ** 2).sum(dim=1).sqrt()

    @property
    def binary(self) -> bool:
        return bool(((self.rewards == 0) | (self.rewards == 1)).all())

    def objective(self, logits: torch.Tensor | None = None) -> torch.Tensor:
        """``J`` at ``logits`` (default: the set's own), differentiable."""
        lg = self.logits if logits is None else logits
        return (torch.softmax(lg, dim=1) * self.rewards).sum(dim=1).mean()


def make_prompt_bandits(success=(0.1, 0.5, 0.9), n_answers: int = 8, n_correct: int = 2, seed: int = 0) -> PromptBandits:
    """Prompts of chosen difficulty: prompt p's policy answers correctly with probability ``success[p]``.

    Each prompt is a :func:`grpo_core.analysis.toy.make_bandit` (``n_correct`` of ``n_answers`` answers earn
    1, the rest 0, probabilities spread unevenly), seeded ``seed + p``.
    """
    try:
        rates = [float(s) for s in success]
    except TypeError:
        raise ValueError(f"`success` must be a sequence of success rates in (0, 1); got {success!r}.") from None
    if not rates or not all(0.0 < s < 1.0 for s in rates):
        raise ValueError(f"`success` must hold one or more success rates strictly between 0 and 1; got {success!r}.")
    seed = check_seed(seed)
    check_seed(seed + len(rates) - 1)
    bandits = [make_bandit(n_answers, n_correct, s, seed=seed + p) for p, s in enumerate(rates)]
    return PromptBandits(
        logits=torch.stack([b.ref_logits for b in bandits]),
        rewards=torch.stack([b.rewards for b in bandits]),
    )


def true_gradient(prompts: PromptBandits) -> torch.Tensor:
    """Exact ``dJ/dlogits``, ``[P, K]``: ``(1/P) pi_p(a) (r_p(a) - J_p)`` (book Eq. ``var-true-gradient``)."""
    ps = check_instance(prompts, PromptBandits, "prompts", " (see make_prompt_bandits)")
    pi = ps.probs
    return pi * (ps.rewards - ps.success[:, None]) / ps.n_prompts


#: The gradient estimators compared in the book: name -> the advantage of answer i in its group.
ESTIMATORS: dict[str, str] = {
    "none": "r_i (REINFORCE, no baseline)",
    "critic": "r_i - V_p with V_p the exact expected reward (ideal critic)",
    "learned-critic": "r_i - V_p with V_p the mean of m earlier rewards (fitted critic)",
    "rloo": "r_i - mean of the other G-1 rewards (RLOO)",
    "dr-grpo": "r_i - group mean (Dr. GRPO)",
    "grpo": "(r_i - group mean) / group std (GRPO, population std)",
}

#: The estimators of :data:`ESTIMATORS` that use the answers' own group, as the names of
#: :data:`grpo_core.ADVANTAGE_ESTIMATORS` they are computed with ("grpo" is DeepSeekMath's
#: formula read literally: population std, eps = 0, all-equal groups give 0).
GROUP_ESTIMATORS = {"rloo": "rloo", "dr-grpo": "dr-grpo", "grpo": "deepseekmath"}


def _sample_answers(ps: PromptBandits, shape_tail: tuple[int, int], gen: torch.Generator) -> torch.Tensor:
    """``[n, P, m]`` answer indices, each prompt's answers drawn from its policy (inverse CDF)."""
    n, m = shape_tail
    cdf = ps.probs.cumsum(dim=1)
    cdf[:, -1] = 1.0
    u = torch.rand(ps.n_prompts, n * m, generator=gen, dtype=torch.float64)
    idx = torch.searchsorted(cdf, u, right=True).clamp_(max=ps.n_answers - 1)
    return idx.view(ps.n_prompts, n, m).transpose(0, 1)


def gradient_estimates(
    prompts: PromptBandits,
    G: int,
    estimator: str,
    n: int = 10_000,
    *,
    seed: int = 0,
    critic_samples: int = 8,
) -> torch.Tensor:
    """``n`` independent policy-gradient estimates, ``[n, P, K]``, each from one batch of G answers per prompt.

    One estimate is the gradient of the GRPO-style surrogate at the sampling policy,
    ``(1 / (P G)) sum_p sum_i A_{p,i} grad log pi_p(a_{p,i})`` with
    ``grad_{logits_p} log pi_p(a) = e_a - pi_p``, and ``A`` set by ``estimator`` (see
    :data:`ESTIMATORS`): ``"learned-critic"`` draws ``critic_samples`` further answers per prompt,
    independent of the batch, and uses the mean of their rewards as ``V_p`` (the least-squares
    fit of a per-prompt constant to earlier samples). The group estimators come from
    :func:`grpo_core.compute_advantages` (see :data:`GROUP_ESTIMATORS`).

    Vectorised over the n batches (no Python loop over samples); seeded local generator.
    """
    ps = check_instance(prompts, PromptBandits, "prompts", " (see make_prompt_bandits)")
    g = check_group_size(G, "G")
    check_choice(estimator, "estimator", ESTIMATORS)
    n = check_int(n, "n", 1)
    m = check_int(critic_samples, "critic_samples", 1)
    gen = torch.Generator().manual_seed(check_seed(seed))
    P, K = ps.n_prompts, ps.n_answers
    idx = _sample_answers(ps, (n, g), gen)                                  # [n, P, G]
    r = torch.gather(ps.rewards.expand(n, P, K), 2, idx)                    # [n, P, G]
    if estimator == "none":
        adv = r
    elif estimator == "critic":
        adv = r - ps.success[None, :, None]
    elif estimator == "learned-critic":
        hist = _sample_answers(ps, (n, m), gen)
        v = torch.gather(ps.rewards.expand(n, P, K), 2, hist).mean(dim=2, keepdim=True)
        adv = r - v
    else:
        adv = compute_advantages(GROUP_ESTIMATORS[estimator], r.reshape(n * P, g), g).view(n, P, g)
    weighted = torch.zeros(n, P, K, dtype=torch.float64).scatter_add_(2, idx, adv)
    est = weighted - adv.sum(dim=2, keepdim=True) * ps.probs[None]
    return est / (P * g)


def _group_advantage_table(G: int, estimator: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``(A_right(k), A_wrong(k))`` for k = 0..G accepted answers out of G (0 where undefined)."""
    k = torch.arange(G + 1, dtype=torch.float64)
    if estimator == "dr-grpo":
        return 1.0 - k / G, -k / G
    if estimator == "rloo":
        return 1.0 - (k - 1.0) / (G - 1), -k / (G - 1)
    right, wrong = bernoulli_advantages(torch.arange(G + 1), G)
    return right.nan_to_num(0.0), wrong.nan_to_num(0.0)


def _binomial_pmf(G: int, p: torch.Tensor) -> torch.Tensor:
    """``[len(p), G + 1]``: P(k successes out of G) for each success rate in ``p``."""
    k = torch.arange(G + 1, dtype=torch.float64)
    log_choose = torch.lgamma(torch.tensor(G + 1.0, dtype=torch.float64)) - torch.lgamma(k + 1) - torch.lgamma(G - k + 1)
    p = p[:, None]
    logs = log_choose + torch.xlogy(k, p) + torch.xlogy(G - k, 1 - p)
    return logs.exp()


def expected_gradient_weight(success, G: int, estimator: str = "grpo") -> torch.Tensor:
    """Exact factor ``alpha`` with ``E[estimate_p] = alpha_p * (true gradient of prompt p)``, 0/1 rewards.

    With 0/1 rewards the expected advantage of an answer given its reward is affine in the reward,
    so each prompt's expected gradient is its true gradient times
    ``alpha = E[A_i | r_i = 1] - E[A_i | r_i = 0]`` (book Eq. ``var-grpo-weight``): 1 for no baseline,
    the critics and RLOO, ``(G - 1) / G`` for Dr. GRPO, and for GRPO a function of the prompt's
    success rate ``p`` that tends to ``1 / sqrt(p (1 - p))`` for large G.

    Args:
        success: success rate(s) ``p`` in [0, 1], a float or a tensor.
        G: group size >= 2.
        estimator: a name of :data:`ESTIMATORS`.

    Returns:
        float64 tensor shaped like ``success``.
    """
    g = check_group_size(G, "G")
    check_choice(estimator, "estimator", ESTIMATORS)
    p = torch.as_tensor(success, dtype=torch.float64)
    check_finite(p, "success")
    if bool(((p < 0) | (p > 1)).any()):
        raise ValueError(f"`success` must lie in [0, 1] (a success rate); got {p.tolist()}.")
    if estimator in ("none", "critic", "learned-critic", "rloo"):
        return torch.ones_like(p)
    if estimator == "dr-grpo":
        return torch.full_like(p, (g - 1) / g)
    right, wrong = _group_advantage_table(g, estimator)
    pmf = _binomial_pmf(g - 1, p.reshape(-1))               # the other G-1 answers: k' successes
    alpha = (pmf * (right[1:] - wrong[:-1])).sum(dim=1)     # own answer right: k = k'+1; wrong: k = k'
    return alpha.view(p.shape)


def exact_estimator_moments(prompts: PromptBandits, G: int, estimator: str, *, critic_samples: int = 8) -> dict:
    """Exact mean ``[P, K]`` and covariance trace of :func:`gradient_estimates`'s estimator.

    Closed forms (book section ``variance-gradient``, "How the exact values are computed"): for ``"none"``, ``"critic"`` and
    ``"learned-critic"`` the G terms of an estimate are i.i.d. given the baseline; for the group
    estimators the rewards must be 0/1, and the sum runs over the number k of accepted answers
    with the counts of each answer multinomial given k.

    Returns:
        ``{"mean": [P, K] tensor, "trace_cov": float}``.
    """
    ps = check_instance(prompts, PromptBandits, "prompts", " (see make_prompt_bandits)")
    g = check_group_size(G, "G")
    check_choice(estimator, "estimator", ESTIMATORS)
    m = check_int(critic_samples, "critic_samples", 1)
    pi, rw, J = ps.probs, ps.rewards, ps.success
    grad_p = pi * (rw - J[:, None])                        # per-prompt true gradient (no 1/P)
    pi_sq = (pi * pi).sum(dim=1)                           # ||pi||^2
    if estimator in ("none", "critic", "learned-critic"):
        b = torch.zeros_like(J) if estimator == "none" else J
        h2 = 1.0 - 2.0 * pi + pi_sq[:, None]               # ||e_a - pi||^2
        second = (pi * (rw - b[:, None]) ** 2 * h2).sum(dim=1)
        if estimator == "learned-critic":
            second = second + ps.reward_std**2 / m * (1.0 - pi_sq)
        mean_p = grad_p
        sq = second / g + (1.0 - 1.0 / g) * (grad_p * grad_p).sum(dim=1)   # E||g_p||^2
    else:
        if not ps.binary:
            raise ValueError("`prompts` must have 0/1 rewards for the exact moments of a group estimator.")
        right, wrong = _group_advantage_table(g, estimator)
        correct = rw == 1
        p = J.clamp(0.0, 1.0)
        q_c = torch.where(correct, pi, 0.0) / p.clamp_min(1e-300)[:, None]
        q_w = torch.where(correct, 0.0, pi) / (1.0 - p).clamp_min(1e-300)[:, None]
        k = torch.arange(g + 1, dtype=torch.float64)
        pmf = _binomial_pmf(g, p)                                              # [P, G+1]
        qc2, qw2 = (q_c * q_c).sum(dim=1, keepdim=True), (q_w * q_w).sum(dim=1, keepdim=True)
        m2_c = k * (1.0 - qc2) + k * k * qc2                                   # E||n_C||^2 given k
        m2_w = (g - k) * (1.0 - qw2) + (g - k) ** 2 * qw2
        sq = (pmf * (right**2 * m2_c + wrong**2 * m2_w)).sum(dim=1) / g**2
        c_coef = (pmf * right * k).sum(dim=1) / g
        w_coef = (pmf * wrong * (g - k)).sum(dim=1) / g
        mean_p = c_coef[:, None] * q_c + w_coef[:, None] * q_w
    P = ps.n_prompts
    trace = float((sq - (mean_p * mean_p).sum(dim=1)).sum()) / P**2
    return {"mean": mean_p / P, "trace_cov": max(trace, 0.0)}


def estimator_summary(mean: torch.Tensor, trace_cov: float, truth: torch.Tensor) -> dict[str, float]:
    """The numbers the book compares estimators by, from an estimator's mean and covariance trace.

    - ``noise_to_signal``: ``trace(Cov) / ||E g||**2``, scale-free (a constant factor on the
      advantages, which a learning rate absorbs, does not change it);
    - ``relative_variance``: ``trace(Cov) / ||grad J||**2``;
    - ``cosine``: cosine between ``E g`` and the true gradient (1: no bias in direction);
    - ``norm_ratio``: ``||E g|| / ||grad J||``;
    - ``relative_mse``: ``E||g - grad J||**2 / ||grad J||**2``.

    From Monte Carlo estimates ``est`` ``[n, ...]`` use ``mean = est.mean(0)`` and
    ``trace_cov = est.var(0).sum()``.
    """
    mu = as_float_tensor(mean, "mean").double().reshape(-1)
    tr = as_float_tensor(truth, "truth").double().reshape(-1)
    check_finite(mu, "mean")
    check_finite(tr, "truth")
    if mu.shape != tr.shape:
        raise ValueError(f"`mean` and `truth` must have the same number of entries; got {mu.numel()} and {tr.numel()}.")
    tc = float(trace_cov)
    if not (math.isfinite(tc) and tc >= 0.0):
        raise ValueError(f"`trace_cov` must be a finite number >= 0; got {trace_cov!r}.")
    t2 = float(tr @ tr)
    if t2 == 0.0:
        raise ValueError("`truth` is the zero vector: nothing to compare against (every prompt solved or failed).")
    m2 = float(mu @ mu)
    return {
        "noise_to_signal": tc / m2 if m2 > 0 else math.inf,
        "relative_variance": tc / t2,
        "cosine": float(mu @ tr) / math.sqrt(m2 * t2) if m2 > 0 else 0.0,
        "norm_ratio": math.sqrt(m2 / t2),
        "relative_mse": (tc + float((mu - tr) @ (mu - tr))) / t2,
    }
