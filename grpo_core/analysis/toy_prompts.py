"""Many prompts of mixed difficulty: a toy where GRPO's learning signal collapses.

:mod:`grpo_core.analysis.toy` trains one prompt. Signal collapse is a property of a *batch* of prompts:
the easy ones are solved by every answer of their group, the hard ones by none, and both kinds
give GRPO no gradient. This module gives each of ``P`` prompts its own tabular softmax policy
over ``K`` answers (one row of logits per prompt) and a 0/1 verifier (``correct[p, a]``), with a
reference policy whose success rate runs from nearly never to nearly always. Training is
vectorised over prompts: every step samples ``G`` answers for each of ``batch`` prompts, computes
advantages with an estimator of :data:`grpo_core.ADVANTAGE_ESTIMATORS` (GRPO or a collapse mitigation), and takes one SGD
step on :func:`grpo_core.grpo_loss` (or one Adam step, ``optimizer="adam"``, the trainer's optimiser: Adam
divides each logit's step by the running size of its gradients, so a scale common to all
advantages no longer sets the step size). Success rates are exact (``softmax(logits) @ correct``), so
the curves show what the policy does, not a noisy estimate of it.

:func:`train_prompts` runs one configuration (:class:`PromptsConfig`); :data:`MITIGATIONS` names
the configurations the book compares and :func:`compare_mitigations` runs them all.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch

from .._checks import check_choice, check_group_size, check_int, check_nonneg_number, check_unit_interval
from ..advantages import ADVANTAGE_ESTIMATORS, RunningBaseline, compute_advantages
from ..objective import grpo_loss
from ..shaping import dynamic_sampling_keep
from .collapse import collapse_metrics

__all__ = [
    "PromptSet",
    "make_prompt_set",
    "success_rates",
    "PromptsConfig",
    "train_prompts",
    "MITIGATIONS",
    "compare_mitigations",
    "summarise_runs",
    "OPTIMIZERS",
    "mean_abs_advantage",
]


@dataclass(frozen=True)
class PromptSet:
    """``P`` prompts with ``K`` answers each.

    ``correct[p, a]`` is 1.0 if answer ``a`` solves prompt ``p`` and 0.0 otherwise (the
    verifier); ``ref_logits[p]`` are the reference policy's logits for prompt ``p``. Both are
    float64 ``[P, K]``.
    """

    correct: torch.Tensor
    ref_logits: torch.Tensor

    def __post_init__(self):
        c, r = self.correct, self.ref_logits
        if not isinstance(c, torch.Tensor) or not isinstance(r, torch.Tensor):
            raise ValueError("`correct` and `ref_logits` must be tensors of shape [P, K].")
        if c.dim() != 2 or c.shape != r.shape or c.shape[0] < 1 or c.shape[1] < 2:
            raise ValueError(
                f"`correct` and `ref_logits` must both be [P, K] with P >= 1 and K >= 2; got "
                f"shapes {tuple(c.shape)} and {tuple(r.shape)}."
            )
        if not bool(((c == 0) | (c == 1)).all()):
            raise ValueError("`correct` must hold only 0 and 1 (the verifier's verdict per answer).")
        if not bool(torch.isfinite(r).all()):
            raise ValueError("`ref_logits` must be finite.")

    @property
    def n_prompts(self) -> int:
        return self.correct.shape[0]

    @property
    def n_answers(self) -> int:
        return self.correct.shape[1]

    @property
    def ref_success(self) -> torch.Tensor:
        """The reference policy's success rate per prompt, ``[P]``."""
        return success_rates(self.ref_logits, self)


def make_prompt_set(
    n_prompts: int = 32,
    n_answers: int = 8,
    *,
    hardest: float = 0.01,
    easiest: float = 0.99,
    seed: int = 0,
) -> PromptSet:
    """Prompts whose reference success rates are evenly spaced in log-odds from ``hardest`` to ``easiest``.

    Each prompt has one correct answer (answer 0) among ``n_answers``. The reference policy puts
    probability ``s_p`` on it, with ``logit(s_p)`` evenly spaced between ``logit(hardest)`` and
    ``logit(easiest)``, and spreads ``1 - s_p`` over the wrong answers with seeded uneven weights.
    So the set runs from prompts the reference model nearly never solves to prompts it nearly
    always solves, like a dataset of mixed difficulty for a pretrained model.
    """
    for name, v in (("n_prompts", n_prompts), ("n_answers", n_answers)):
        check_int(v, name, 1 if name == "n_prompts" else 2)
    for name, v in (("hardest", hardest), ("easiest", easiest)):
        check_unit_interval(v, name, " (a success rate)")
        if v in (0.0, 1.0):
            raise ValueError(f"`{name}` must be a success rate strictly between 0 and 1; got {v!r}.")
    if hardest > easiest:
        raise ValueError(f"`hardest` ({hardest}) must not exceed `easiest` ({easiest}).")
    lo, hi = math.log(hardest / (1 - hardest)), math.log(easiest / (1 - easiest))
    if n_prompts == 1:
        s = torch.tensor([hardest], dtype=torch.float64)
    else:
        s = torch.sigmoid(torch.linspace(lo, hi, n_prompts, dtype=torch.float64))
    gen = torch.Generator().manual_seed(seed)
    w = torch.rand(n_prompts, n_answers - 1, generator=gen, dtype=torch.float64) + 0.5
    wrong = (1 - s)[:, None] * w / w.sum(dim=1, keepdim=True)
    probs = torch.cat([s[:, None], wrong], dim=1)
    correct = torch.zeros(n_prompts, n_answers, dtype=torch.float64)
    correct[:, 0] = 1.0
    return PromptSet(correct=correct, ref_logits=probs.log())


def success_rates(logits: torch.Tensor, prompts: PromptSet) -> torch.Tensor:
    """Exact success rate per prompt, ``softmax(logits) @ correct`` row by row: ``[P]`` float64."""
    if not isinstance(logits, torch.Tensor) or logits.shape != prompts.correct.shape:
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ValueError(f"`logits` must be a [P, K] = {tuple(prompts.correct.shape)} tensor; got {shape}.")
    return (_log_softmax(logits.detach().double()).exp() * prompts.correct).sum(dim=-1)


def _log_softmax(logits: torch.Tensor) -> torch.Tensor:
    """Row-wise log-softmax from elementwise ops.

    Same values as ``torch.log_softmax(logits, -1)``; on a small ``[P, K]`` tensor it avoids
    torch's row-parallel softmax kernel, whose thread hand-offs cost milliseconds per call on a
    busy 2-core machine (elementwise ops on a few hundred numbers run on one thread).
    """
    shifted = logits - logits.detach().amax(dim=-1, keepdim=True)
    return shifted - shifted.exp().sum(dim=-1, keepdim=True).log()


@dataclass
class PromptsConfig:
    """Hyperparameters of :func:`train_prompts`.

    G: answers per prompt. batch: prompts per step (drawn without replacement from the set).
    steps: optimisation steps. lr: learning rate on the logits. optimizer: ``"sgd"`` (plain
    gradient steps) or ``"adam"`` (torch's Adam with its defaults, betas 0.9 / 0.999, eps 1e-8).
    advantages: a name of :data:`grpo_core.ADVANTAGE_ESTIMATORS`: ``"grpo"``
    (:func:`grpo_core.group_advantages`), ``"threshold"`` (:func:`grpo_core.threshold_advantages`),
    ``"global-baseline"`` (:func:`grpo_core.global_baseline_advantages` with a
    :class:`grpo_core.RunningBaseline`), ...; it gets the options below that it takes.
    scale, std, eps, std_floor: options of :func:`grpo_core.group_advantages` (``scale="none"``
    is Dr. GRPO; for ``"global-baseline"``, ``eps`` is the one of its fallback).
    threshold: reward level for ``"threshold"``. momentum: of the running baseline.
    dynamic_sampling: DAPO's filter: drop groups without reward spread and sample further
    batches of prompts until ``batch`` groups with spread are collected or ``max_rounds`` batches
    have been drawn in this step. noise: std of Gaussian noise added to every reward (a noisy
    reward model on top of the verifier; 0 = exact 0/1 rewards). low_std: the std below which
    a group counts as near-flat in the ``low_std`` log (above the noise, below the smallest std
    of a 0/1 group with spread, ``sqrt(G - 1) / G``). beta: KL coefficient (k3
    against the reference policy; 0 drops it). seed: seeds sampling.
    """

    G: int = 4
    batch: int = 16
    steps: int = 150
    lr: float = 2.0
    optimizer: str = "sgd"
    advantages: str = "grpo"
    scale: str = "group"
    std: str = "population"
    eps: float = 1e-8
    std_floor: float = 0.0
    threshold: float = 0.5
    momentum: float = 0.9
    dynamic_sampling: bool = False
    max_rounds: int = 4
    noise: float = 0.0
    low_std: float = 0.2
    beta: float = 0.0
    seed: int = 0

    def check(self, n_prompts: int) -> None:
        check_group_size(self.G, "G")
        for name in ("batch", "steps", "max_rounds"):
            check_int(getattr(self, name), name)
        if self.batch > n_prompts:
            raise ValueError(f"`batch` ({self.batch}) must not exceed the number of prompts ({n_prompts}).")
        check_choice(self.advantages, "advantages", ADVANTAGE_ESTIMATORS)
        check_choice(self.optimizer, "optimizer", OPTIMIZERS)
        for name in ("lr", "eps", "std_floor", "noise", "low_std", "beta"):
            check_nonneg_number(getattr(self, name), name)
        if not isinstance(self.dynamic_sampling, bool):
            raise ValueError(f"`dynamic_sampling` must be True or False; got {self.dynamic_sampling!r}.")


#: The optimisers of :func:`train_prompts`.
OPTIMIZERS = {"sgd": "logits -= lr * gradient", "adam": "torch.optim.Adam(lr=lr), its default betas and eps"}


def _advantages(rewards: torch.Tensor, cfg: PromptsConfig, baseline: RunningBaseline) -> torch.Tensor:
    """``cfg.advantages`` from :data:`grpo_core.ADVANTAGE_ESTIMATORS`, with the options of ``cfg`` it takes."""
    settings = dict(scale=cfg.scale, std=cfg.std, eps=cfg.eps, std_floor=cfg.std_floor,
                    threshold=cfg.threshold, baseline=baseline)
    options = {k: v for k, v in settings.items() if k in ADVANTAGE_ESTIMATORS[cfg.advantages].options}
    adv = compute_advantages(cfg.advantages, rewards, cfg.G, **options)
    if cfg.advantages == "global-baseline":
        baseline.update(rewards)
    return adv


def train_prompts(prompts: PromptSet, config: PromptsConfig | None = None) -> dict:
    """GRPO on every prompt of ``prompts`` at once, starting from the reference policy.

    Each step: draw ``batch`` prompts, sample ``G`` answers per prompt from the current policy
    (which is pi_old: one update per batch, so the ratio is 1 and clipping is inactive), score
    them (0/1 plus optional noise), compute advantages per ``config``, and take one SGD step on
    :func:`grpo_core.grpo_loss` (sequence-mean aggregation over the groups used). With
    ``dynamic_sampling`` the step first keeps drawing batches until it has ``batch`` groups with
    spread (or ``max_rounds`` batches), then trains on those groups only.

    Returns a history of per-step lists:
    ``success`` (exact mean success rate over all P prompts after the step), ``zero_std`` (share
    of sampled groups whose rewards are all equal: what a trainer logs), ``low_std`` (share of
    sampled groups whose reward std is below ``config.low_std``: the collapse a noisy reward
    hides from ``zero_std``), ``group_std`` (mean within-group reward std of the sampled groups),
    ``informative`` (share of sampled groups whose answers differ in correctness),
    ``with_gradient`` (share of the groups in the update whose advantages are not all zero),
    ``samples`` (answers sampled so far, dropped groups included), ``mean_abs_adv`` (mean |A|
    over the answers in the update, flat groups' zeros included); and ``final_success`` (the
    per-prompt success rates at the end, a list of P floats) and ``logits`` (the final logits,
    nested lists ``[P][K]``).
    """
    cfg = config or PromptsConfig()
    cfg.check(prompts.n_prompts)
    P, G = prompts.n_prompts, cfg.G
    logits = prompts.ref_logits.detach().clone().requires_grad_(True)
    adam = torch.optim.Adam([logits], lr=cfg.lr, foreach=False) if cfg.optimizer == "adam" else None
    ref_logp_all = _log_softmax(prompts.ref_logits)
    gen = torch.Generator().manual_seed(cfg.seed)
    baseline = RunningBaseline(cfg.momentum)
    keys = ("success", "zero_std", "low_std", "group_std", "informative", "with_gradient", "samples", "mean_abs_adv")
    hist: dict[str, list] = {k: [] for k in keys}
    samples = 0

    for _ in range(cfg.steps):
        with torch.no_grad():
            probs = _log_softmax(logits).exp()
            idx_parts, ans_parts, rew_parts, sampled = [], [], [], []
            kept = 0
            for _round in range(cfg.max_rounds if cfg.dynamic_sampling else 1):
                idx = torch.randperm(P, generator=gen)[: cfg.batch]
                ans = torch.multinomial(probs[idx], G, replacement=True, generator=gen)
                right = prompts.correct[idx].gather(1, ans)
                rewards = right
                if cfg.noise > 0:
                    rewards = right + cfg.noise * torch.randn(right.shape, generator=gen, dtype=right.dtype)
                samples += idx.numel() * G
                sampled.append((rewards, right))
                if cfg.dynamic_sampling:
                    keep = dynamic_sampling_keep(right, G)  # DAPO filters on accuracy
                    idx, ans, rewards = idx[keep], ans[keep], rewards[keep]
                idx_parts.append(idx)
                ans_parts.append(ans)
                rew_parts.append(rewards)
                kept += idx.numel()
                if kept >= cfg.batch:
                    break
            idx = torch.cat(idx_parts)[: cfg.batch]
            ans = torch.cat(ans_parts)[: cfg.batch]
            rewards = torch.cat(rew_parts)[: cfg.batch]
            all_rewards = torch.cat([r for r, _ in sampled])
            all_right = torch.cat([c for _, c in sampled])
            m = collapse_metrics(all_rewards, G, low_std=cfg.low_std)
            hist["zero_std"].append(m["frac_zero_std"])
            hist["low_std"].append(m["frac_low_std"])
            hist["group_std"].append(m["reward_std"])
            hist["informative"].append(float(dynamic_sampling_keep(all_right, G).double().mean()))
            hist["samples"].append(samples)

        if idx.numel() == 0:
            hist["with_gradient"].append(0.0)
            hist["mean_abs_adv"].append(0.0)
            hist["success"].append(float(success_rates(logits, prompts).mean()))
            continue
        adv = _advantages(rewards, cfg, baseline)
        hist["with_gradient"].append(float((adv != 0).any(dim=1).double().mean()))
        hist["mean_abs_adv"].append(float(adv.abs().mean()))
        n = idx.numel() * G
        flat_idx, flat_ans = idx.repeat_interleave(G), ans.reshape(n)
        logp = _log_softmax(logits)[flat_idx, flat_ans][:, None]
        ref = ref_logp_all[flat_idx, flat_ans][:, None] if cfg.beta > 0 else None
        loss, _ = grpo_loss(
            logp, logp.detach(), ref, adv.reshape(n), torch.ones(n, 1, dtype=logp.dtype),
            beta=cfg.beta,
        )
        (grad,) = torch.autograd.grad(loss, logits)
        if adam is not None:
            logits.grad = grad
            adam.step()
        else:
            with torch.no_grad():
                logits -= cfg.lr * grad
        hist["success"].append(float(success_rates(logits, prompts).mean()))
    hist["final_success"] = success_rates(logits, prompts).tolist()
    hist["logits"] = logits.detach().tolist()
    return hist


#: The configurations the book compares, as overrides of :class:`PromptsConfig` (whose defaults
#: are plain GRPO, G = 4, 150 steps). The last one is a reference: plain GRPO run for as many
#: generations as the G = 16 configuration spends.
MITIGATIONS: dict[str, dict] = {
    "GRPO (G = 4)": dict(),
    "larger groups (G = 16)": dict(G=16),
    "smoothed std (eps = 0.1)": dict(eps=0.1),
    "std floor 0.1": dict(std_floor=0.1),
    "reward threshold 0.5": dict(advantages="threshold", threshold=0.5),
    "global baseline": dict(advantages="global-baseline"),
    "dynamic sampling (DAPO)": dict(dynamic_sampling=True),
    "no std (Dr. GRPO)": dict(scale="none"),
    "GRPO (G = 4), 600 steps": dict(steps=600),
}


def compare_mitigations(
    prompts: PromptSet,
    base: PromptsConfig | None = None,
    mitigations: dict[str, dict] | None = None,
    seeds: tuple[int, ...] = (0, 1, 2),
) -> dict[str, list[dict]]:
    """Run every configuration of ``mitigations`` (default :data:`MITIGATIONS`) over ``seeds``.

    Returns ``{name: [history per seed]}``; each history is :func:`train_prompts`'s.
    """
    base = base or PromptsConfig()
    mitigations = MITIGATIONS if mitigations is None else mitigations
    if not seeds:
        raise ValueError("`seeds` is empty; pass at least one seed.")
    return {
        name: [train_prompts(prompts, replace(base, **over, seed=s)) for s in seeds]
        for name, over in mitigations.items()
    }


def _success_at(hist: dict, budget: float, start: float) -> float:
    """Mean success after the last step whose cumulative samples are within ``budget``."""
    n = sum(1 for x in hist["samples"] if x <= budget)
    return start if n == 0 else hist["success"][n - 1]


def summarise_runs(runs: list[dict], prompts: PromptSet, *, budget: float | None = None, hard_below: float = 0.1) -> dict[str, float]:
    """Average the histories of one configuration (one per seed) into the numbers the book tabulates.

    Returns floats: ``with_gradient`` and ``informative`` (shares of groups, averaged over steps
    and seeds), ``success`` (final mean success rate over all prompts), ``hard_success`` (final
    mean success on the prompts whose reference success rate is below ``hard_below``),
    ``samples`` (answers sampled in the whole run), and ``success_at_budget`` (mean success after
    the last step within ``budget`` samples; the final success if ``budget`` is None; the
    reference success if even the first step needed more).
    """
    if not runs:
        raise ValueError("`runs` is empty; pass the histories of at least one seed.")
    hard = prompts.ref_success < hard_below
    if not bool(hard.any()):
        raise ValueError(f"no prompt has a reference success rate below `hard_below`={hard_below}; raise it.")
    start = float(prompts.ref_success.mean())

    def mean(values) -> float:
        values = list(values)
        return sum(values) / len(values)

    return {
        "with_gradient": mean(mean(h["with_gradient"]) for h in runs),
        "informative": mean(mean(h["informative"]) for h in runs),
        "success": mean(h["success"][-1] for h in runs),
        "hard_success": mean(float(torch.tensor(h["final_success"])[hard].mean()) for h in runs),
        "samples": mean(h["samples"][-1] for h in runs),
        "success_at_budget": mean(
            h["success"][-1] if budget is None else _success_at(h, budget, start) for h in runs
        ),
    }


def mean_abs_advantage(histories: list[dict]) -> float:
    """Mean |A| per answer in the updates of a configuration's runs (one history per seed),
    averaged over steps and seeds: the size of the signal an SGD step is proportional to."""
    if not histories:
        raise ValueError("`histories` is empty; pass the histories of at least one seed.")
    values = [v for h in histories for v in h["mean_abs_adv"]]
    return sum(values) / len(values)
