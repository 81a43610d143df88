"""A toy policy small enough that every quantity has an exact value: one prompt, K answers.

The policy is a softmax over K possible answers, ``pi_theta = softmax(logits)``; the reference
policy is another softmax; each answer has a fixed reward. GRPO runs on it exactly as on a language
model whose answers are one token long: sample G answers per group from pi_old, score them, compute
group advantages, then ``mu`` gradient steps on :func:`grpo_core.grpo_loss`. Because K is small, the
expected reward ``sum_a pi(a) r(a)`` and ``KL(pi_theta || pi_ref)`` are computed exactly after
every step, so the chapters can plot what the algorithm really does rather than noisy estimates.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch

from .._checks import check_choice, check_group_size, check_int, check_nonneg_number, check_unit_interval
from ..advantages import ADVANTAGE_ESTIMATORS, compute_advantages
from ..kl import KL_ESTIMATORS, kl_estimate
from ..objective import AGGREGATIONS, grpo_loss

__all__ = ["Bandit", "make_bandit", "expected_reward", "exact_kl", "ToyConfig", "train_toy", "KLController", "KL_PLACEMENTS"]


@dataclass(frozen=True)
class Bandit:
    """One prompt with K answers: ``rewards[a]`` is answer a's reward, ``ref_logits`` define pi_ref."""

    rewards: torch.Tensor
    ref_logits: torch.Tensor

    def __post_init__(self):
        if self.rewards.dim() != 1 or self.rewards.shape != self.ref_logits.shape or self.rewards.numel() < 2:
            raise ValueError(
                f"`rewards` and `ref_logits` must be 1-D of the same length K >= 2; got shapes "
                f"{tuple(self.rewards.shape)} and {tuple(self.ref_logits.shape)}."
            )
        if not (torch.isfinite(self.rewards).all() and torch.isfinite(self.ref_logits).all()):
            raise ValueError("`rewards` and `ref_logits` must be finite.")

    @property
    def n_answers(self) -> int:
        return self.rewards.numel()

    @property
    def ref_probs(self) -> torch.Tensor:
        return torch.softmax(self.ref_logits, 0)


def make_bandit(n_answers: int = 8, n_correct: int = 2, ref_success: float = 0.2, seed: int = 0) -> Bandit:
    """A verifiable-reward bandit: ``n_correct`` of ``n_answers`` answers earn 1, the rest 0.

    pi_ref puts total probability ``ref_success`` on the correct answers (spread unevenly, from a
    seeded draw), so the reference model succeeds sometimes and GRPO has something to improve,
    like a pretrained model on a hard task. Float64 throughout.
    """
    check_int(n_answers, "n_answers", 2)
    check_int(n_correct, "n_correct", 1, " (and < n_answers)")
    if n_correct >= n_answers:
        raise ValueError(f"`n_correct` must be an int in 1..n_answers-1; got {n_correct!r}.")
    if check_unit_interval(ref_success, "ref_success", " (the reference policy's success rate)") in (0.0, 1.0):
        raise ValueError(f"`ref_success` must be in (0, 1), the reference policy's success rate; got {ref_success!r}.")
    gen = torch.Generator().manual_seed(seed)
    weights = torch.rand(n_answers, generator=gen, dtype=torch.float64) + 0.5
    rewards = torch.zeros(n_answers, dtype=torch.float64)
    rewards[:n_correct] = 1.0
    good, bad = weights[:n_correct], weights[n_correct:]
    probs = torch.cat([ref_success * good / good.sum(), (1 - ref_success) * bad / bad.sum()])
    return Bandit(rewards=rewards, ref_logits=probs.log())


def expected_reward(logits: torch.Tensor, bandit: Bandit) -> float:
    """Exact ``E_{a ~ softmax(logits)} r(a)``."""
    return float((torch.softmax(logits.detach(), -1) * bandit.rewards).sum())


def exact_kl(logits: torch.Tensor, ref_logits: torch.Tensor) -> float:
    """Exact ``KL(softmax(logits) || softmax(ref_logits))``."""
    logp = torch.log_softmax(logits.detach(), -1)
    logq = torch.log_softmax(ref_logits.detach(), -1)
    return float((logp.exp() * (logp - logq)).sum())


#: Where :func:`train_toy` puts the KL penalty (:attr:`ToyConfig.kl_in`).
KL_PLACEMENTS = ("loss", "reward")


class KLController(Protocol):
    """What :func:`train_toy` needs of an adaptive KL coefficient: the current ``beta``, and an
    ``update(kl, n_steps)`` called after every step with the measured KL."""

    beta: float

    def update(self, kl: float, n_steps: int) -> float: ...


@dataclass
class ToyConfig:
    """Hyperparameters of :func:`train_toy`; the names follow the book.

    G: answers per group. groups: groups sampled per step (all from the one prompt).
    steps: sampling steps. mu: gradient updates per sampled batch (pi_old is refreshed after them).
    lr: SGD learning rate on the logits. eps_low, eps_high: clip range. beta: KL coefficient
    (ignored if a controller is passed). kl: estimator in the loss. agg: loss aggregation.
    advantages: a name of :data:`grpo_core.ADVANTAGE_ESTIMATORS` (one that needs no option). seed: sampling seed.
    kl_in: where the KL penalty goes. ``"loss"`` (GRPO, DeepSeekMath Eq. 3): ``beta`` times the
    estimator ``kl`` of every sampled answer is added to the loss and differentiated.
    ``"reward"`` (PPO for language models): each sampled answer's reward becomes
    ``r - beta * kl_estimate(log pi_old, log pi_ref)``, computed once at sampling time and not
    differentiated; advantages are computed from these shaped rewards and the loss has no KL
    term. ``kl="k1"`` gives the usual penalty ``beta * log(pi_old / pi_ref)``.
    """

    G: int = 8
    groups: int = 4
    steps: int = 200
    mu: int = 1
    lr: float = 0.5
    eps_low: float = 0.2
    eps_high: float | None = None
    beta: float = 0.04
    kl: str = "k3"
    agg: str = "seq-mean-token-mean"
    advantages: str = "seed-notes"
    seed: int = 0
    kl_in: str = "loss"

    def check(self) -> None:
        check_group_size(self.G, "G")
        for name in ("groups", "steps", "mu"):
            check_int(getattr(self, name), name)
        check_nonneg_number(self.lr, "lr")
        check_nonneg_number(self.beta, "beta")
        check_choice(self.kl, "kl", KL_ESTIMATORS)
        check_choice(self.agg, "agg", AGGREGATIONS)
        check_choice(self.advantages, "advantages", {n for n, e in ADVANTAGE_ESTIMATORS.items() if not e.required})
        check_choice(self.kl_in, "kl_in", KL_PLACEMENTS)


def train_toy(
    bandit: Bandit,
    config: ToyConfig | None = None,
    *,
    init_logits: torch.Tensor | None = None,
    kl_controller: KLController | None = None,
) -> dict[str, list[float]]:
    """Run GRPO on ``bandit`` and return its history, one entry per sampling step.

    The policy starts at ``init_logits`` (default: pi_ref's logits, as RL starts from the
    reference model). Each step: snapshot pi_old, sample ``groups x G`` answers from it, compute
    group advantages, then ``mu`` SGD steps on :func:`grpo_core.grpo_loss` with pi_old fixed.

    History keys: ``reward`` (exact expected reward after the step), ``kl`` (exact
    KL(pi_theta || pi_ref)), ``kl_estimate`` (the loss's estimator, averaged over the sampled
    answers, at the last inner step), ``clip_frac`` (mean over the inner steps), ``beta`` (the
    coefficient used), ``zero_std`` (share of groups whose task rewards have no spread). Also
    ``logits``: the final logits, as a list. With ``config.kl_in == "reward"`` the penalty is
    folded into the rewards before the advantages (see :class:`ToyConfig`).
    """
    cfg = config or ToyConfig()
    cfg.check()
    logits = (bandit.ref_logits if init_logits is None else init_logits).detach().clone().double().requires_grad_(True)
    ref_logp_all = torch.log_softmax(bandit.ref_logits.double(), -1)
    gen = torch.Generator().manual_seed(cfg.seed)
    n = cfg.groups * cfg.G
    mask = torch.ones(n, 1, dtype=torch.float64)
    hist: dict[str, list] = {k: [] for k in ("reward", "kl", "kl_estimate", "clip_frac", "beta", "zero_std")}

    for _ in range(cfg.steps):
        beta = kl_controller.beta if kl_controller is not None else cfg.beta
        with torch.no_grad():
            old_logp_all = torch.log_softmax(logits, -1)
            idx = torch.multinomial(old_logp_all.exp(), n, replacement=True, generator=gen)
            rewards = bandit.rewards[idx].view(cfg.groups, cfg.G)
            old_logp = old_logp_all[idx][:, None]
            ref_logp = ref_logp_all[idx][:, None]
            scored = rewards
            if cfg.kl_in == "reward":
                penalty = kl_estimate(old_logp, ref_logp, cfg.kl).view(cfg.groups, cfg.G)
                scored = rewards - beta * penalty
            adv = compute_advantages(cfg.advantages, scored, cfg.G).reshape(n)
        loss_beta = beta if cfg.kl_in == "loss" else 0.0
        clip = 0.0
        for _ in range(cfg.mu):
            logp = torch.log_softmax(logits, -1)[idx][:, None]
            loss, metrics = grpo_loss(
                logp, old_logp, ref_logp, adv, mask,
                eps_low=cfg.eps_low, eps_high=cfg.eps_high, beta=loss_beta, kl=cfg.kl, agg=cfg.agg,
            )
            (grad,) = torch.autograd.grad(loss, logits)
            with torch.no_grad():
                logits -= cfg.lr * grad
            clip += metrics["clip_frac"] / cfg.mu
        kl_now = exact_kl(logits, bandit.ref_logits)
        if kl_controller is not None:
            kl_controller.update(kl_now, 1)
        hist["reward"].append(expected_reward(logits, bandit))
        hist["kl"].append(kl_now)
        hist["kl_estimate"].append(metrics["kl"])
        hist["clip_frac"].append(clip)
        hist["beta"].append(beta)
        hist["zero_std"].append(float((rewards.amax(1) == rewards.amin(1)).double().mean()))
    hist["logits"] = logits.detach().tolist()
    return hist
