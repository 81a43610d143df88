"""GRPO on a small language model: the training loop of the trainer chapter.

One step of :meth:`GRPOTrainer.step` (book chapter 'The training loop', DeepSeekMath Algorithm 1):

1. sample ``prompts_per_step`` training prompts and repeat each ``G`` times;
2. with no gradient, generate one completion per row from the current policy (all ``B x G`` rows
   at once, with a KV cache), then record ``log pi_old`` (the policy that sampled, which stays
   fixed for the whole step) and ``log pi_ref`` (the frozen reference) of every completion token;
   with ``mu = minibatches = 1`` log pi_old is the update's own forward pass (the same numbers,
   computed once, so the ratio is exactly 1);
3. score the completions with the task's verifiable reward, compute group advantages
   (:meth:`GRPOTrainer.advantages`: an estimator of :data:`grpo_core.ADVANTAGE_ESTIMATORS`);
4. ``mu`` passes over the batch in ``minibatches`` minibatches: recompute ``log pi_theta``, take
   :attr:`GRPOTrainer.loss_fn` (:func:`grpo_core.grpo_loss`) over the completion mask, clip the
   gradient norm, step the optimiser.

The reference model is never updated; pi_old is the snapshot of step 2, so the ratio is exactly 1
on the first minibatch of the first pass.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import hashlib
import json
import math
import os
import time
from dataclasses import dataclass

import torch

from .._checks import (
    check_bool,
    check_choice,
    check_clip_range,
    check_device,
    check_group_size,
    check_int,
    check_nonneg_number,
    check_positive,
    check_seed,
    check_unit_interval,
)
from ..advantages import ADVANTAGE_ESTIMATORS, compute_advantages
from ..kl import KL_ESTIMATORS, kl_estimate
from ..kl_control import AdaptiveKLController
from ..objective import AGGREGATIONS, RATIO_LEVELS, grpo_loss
from ..presets import LOSS_PRESETS, preset_loss, preset_settings
from ..ppo import gae, token_rewards, value_loss, whiten
from ..shaping import dynamic_sampling_keep, overlong_penalty, truncated
from .cache import cache_dir
from .models import ModelConfig, TinyGPT, ValueHead, completion_logprobs, generate, token_logprobs
from .tasks import TASKS, TOKENIZER, Task, make_task

__all__ = ["GRPOConfig", "GRPOTrainer", "PPOTrainer", "make_trainer", "gpu_config", "state_bytes",
           "pick_device", "pretrain_base", "evaluate", "ALGOS", "LR_SCHEDULES"]

#: The advantage estimators the trainer can use: those of :data:`grpo_core.ADVANTAGE_ESTIMATORS`
#: that need no option, or only the completion mask, which the trainer passes (verl's
#: ``reinforce_plus_plus``, per-token advantages whitened over the batch); the collapse
#: mitigations that need a threshold or a baseline are not among them.
ADVANTAGE_MODES = tuple(name for name, est in ADVANTAGE_ESTIMATORS.items() if set(est.required) <= {"mask"})

#: Learning-rate schedules over the ``steps`` of a run.
LR_SCHEDULES = {
    "constant": "lr at every step",
    "cosine": "cosine annealing from lr at the first step to lr / 10 at the last (seed 10.2's advice)",
}

#: The algorithms the trainer runs, on the same model, task and sampling budget.
ALGOS = {
    "grpo": "group-relative advantages from G answers per prompt, no critic",
    "rloo": "REINFORCE with the leave-one-out mean of the other G-1 answers as baseline, no std division",
    "ppo": "one answer per prompt, a learned value model (critic) and GAE, per-token advantages",
}


#: Switches of the trainer's speed-ups, all on by default; the benchmark turns them off one at a
#: time. ``kv_cache``: generation with cached keys and values; ``fast_logprobs``: the group's
#: prompt encoded once and only the batch's longest answer computed
#: (:func:`grpo_core.training.models.completion_logprobs`); ``reuse_old``: with ``mu = minibatches = 1``,
#: log pi_old is the update's own forward pass (the same numbers), not a second one;
#: ``entropy_from_update``: the logged entropy comes from that forward pass (the sampling policy)
#: instead of one more pass after the update; ``fused_adam``: Adam's fused kernel.
SPEEDUPS = {"kv_cache": True, "fast_logprobs": True, "reuse_old": True, "entropy_from_update": True, "fused_adam": True}


def _adam_kwargs(device: torch.device) -> dict:
    """Adam's fused kernel (one call for all parameters) where torch has one: several times faster
    than the per-tensor loop for a model this small; equal to it up to float rounding."""
    return {"fused": True} if SPEEDUPS["fused_adam"] and device.type in ("cpu", "cuda") else {}


class _threads:
    """``with _threads(n):`` torch uses ``n`` intra-op CPU threads inside, the previous number after."""

    def __init__(self, n: int | None):
        self.n = n

    def __enter__(self):
        self.before = torch.get_num_threads()
        if self.n is not None and self.n != self.before:
            torch.set_num_threads(self.n)

    def __exit__(self, *exc):
        if self.n is not None and self.n != self.before:
            torch.set_num_threads(self.before)


def _mean_where(values: torch.Tensor, where: torch.Tensor) -> float:
    """Mean of ``values[where]``; NaN when nothing is selected."""
    where = where.to(values.device)
    n = int(where.sum())
    return float(values[where].float().sum() / n) if n else float("nan")


def pick_device(device: str | None = None) -> torch.device:
    """``device`` if given (it must exist here; see :func:`grpo_core._checks.check_device`), else
    CUDA when available, else CPU."""
    if device is not None:
        return check_device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@dataclass
class GRPOConfig:
    """Every knob of the trainer, named as in the book.

    Task and model: ``task`` ("sort" or "add"), the model size (``d_model``, ``n_layers``,
    ``n_heads``), the warm-up (``sft_steps`` on demonstrations with ``sft_error_rate``).
    Sampling: ``G`` completions for each of ``prompts_per_step`` prompts, ``temperature``,
    ``max_new_tokens`` (None: the task's). Update: ``mu`` passes of ``minibatches`` minibatches,
    ``lr`` (Adam) and its ``lr_schedule`` (:data:`LR_SCHEDULES`), ``max_grad_norm``, clip range ``eps_low``/``eps_high``, ``beta`` and the
    ``kl`` estimator, loss aggregation ``agg``, ``advantages`` ("grpo": group mean and population
    std; "rloo": leave-one-out mean; or a :data:`grpo_core.PRESETS` name), ``dynamic_sampling``
    (DAPO: resample prompts until every group has reward spread, up to ``max_resample`` rounds),
    ``kl_target`` (None: fixed beta; else an adaptive controller keeps KL near it).
    Variants (see :data:`grpo_core.training.variants.VARIANTS`): ``ratio_level`` ("token", or "sequence"
    for GSPO), ``mask_truncated`` (DAPO: answers without an end token are left out of the loss),
    ``overlong_cache`` (DAPO's soft length penalty over the last ``overlong_cache`` tokens before
    the limit, depth ``overlong_factor``; 0 = off).
    ``loss_preset``: a name of :data:`grpo_core.LOSS_PRESETS` (a framework's loss: CISPO, SAPO,
    GMPO, verl's dual clip, ...); the policy loss is then :func:`grpo_core.preset_loss` with that
    preset's own settings and ``loss_overrides`` (grpo_core keywords the preset accepts), and the
    fields ``eps_low``, ``eps_high``, ``agg`` and ``ratio_level`` are not used (``beta`` and
    ``kl`` are passed only when ``beta > 0``). None: :func:`grpo_core.grpo_loss` with the fields.
    ``algo`` ("grpo", "rloo" or "ppo", see :data:`ALGOS`); "rloo" overrides ``advantages``. PPO
    draws ``prompts_per_step * G`` distinct prompts with one answer each (the same number of
    samples), and uses ``gamma``, ``gae_lambda``, ``value_lr`` and ``value_clip`` for its critic;
    with PPO, ``beta`` is a per-token KL penalty in the reward. ``task_size``: the number of digits
    to sort (None: 5); only for the sort task. ``threads``: CPU threads torch may use while this
    trainer works (warm-up, steps, evaluation; restored afterwards); None leaves torch's setting.
    ``seed`` seeds the run and, unless ``base_seed`` is given, the base model's warm-up: several
    seeds with one ``base_seed`` are several runs of RL from the same base model.
    One is as fast as two for a model this small and stays fast when other work shares the cores,
    where two threads wait on each other (5-10x slower steps on a busy 2-core machine).
    """

    algo: str = "grpo"
    task: str = "sort"
    task_size: int | None = None
    steps: int = 160
    G: int = 8
    prompts_per_step: int = 32
    mu: int = 1
    minibatches: int = 1
    lr: float = 1e-3
    lr_schedule: str = "cosine"
    max_grad_norm: float = 1.0
    eps_low: float = 0.2
    eps_high: float | None = None
    beta: float = 0.0
    kl: str = "k3"
    agg: str = "seq-mean-token-mean"
    ratio_level: str = "token"
    advantages: str = "grpo"
    dynamic_sampling: bool = False
    max_resample: int = 4
    kl_target: float | None = None
    mask_truncated: bool = False
    overlong_cache: int = 0
    overlong_factor: float = 1.0
    loss_preset: str | None = None
    loss_overrides: dict | None = None
    temperature: float = 1.0
    max_new_tokens: int | None = None
    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 4
    sft_steps: int = 600
    sft_batch: int = 128
    sft_lr: float = 3e-3
    sft_error_rate: float = 0.9
    eval_size: int = 512
    gamma: float = 1.0
    gae_lambda: float = 0.95
    value_lr: float = 1e-3
    value_clip: float = 0.2
    seed: int = 0
    base_seed: int | None = None
    device: str | None = None
    threads: int | None = 1

    def check(self) -> None:
        """Validate every field, with a ValueError that names it and says what it must be."""
        check_choice(self.algo, "algo", ALGOS)
        check_choice(self.task, "task", TASKS)
        if self.task_size is not None:
            if self.task not in ("sort", "sort-work"):
                raise ValueError(f"`task_size` applies to the sort task only (and sort-work); got task={self.task!r}.")
            check_int(self.task_size, "task_size", 2, " (the number of digits to sort)")
        check_group_size(self.G, "G")
        for name in ("steps", "prompts_per_step", "mu", "minibatches", "sft_batch", "eval_size", "max_resample",
                     "d_model", "n_layers", "n_heads"):
            check_int(getattr(self, name), name)
        check_int(self.sft_steps, "sft_steps", 0)
        check_seed(self.seed)
        if self.base_seed is not None:
            check_seed(self.base_seed, "base_seed")
        if self.d_model % self.n_heads:
            raise ValueError(f"`d_model`={self.d_model} must be a multiple of `n_heads`={self.n_heads} "
                             f"(each head gets d_model / n_heads dimensions).")
        if (self.prompts_per_step * self.G) % self.minibatches:
            raise ValueError(
                f"`minibatches`={self.minibatches} must divide prompts_per_step * G = {self.prompts_per_step * self.G}."
            )
        for name in ("lr", "max_grad_norm", "beta", "sft_lr", "value_lr", "value_clip", "overlong_factor"):
            check_nonneg_number(getattr(self, name), name)
        check_clip_range(self.eps_low, self.eps_high)
        if check_nonneg_number(self.temperature, "temperature") == 0:
            raise ValueError("`temperature` must be > 0 for training: GRPO needs different answers per group.")
        if self.kl_target is not None:
            check_positive(self.kl_target, "kl_target", " (the KL the adaptive controller holds; None for a fixed beta)")
        check_unit_interval(self.sft_error_rate, "sft_error_rate", " (the share of demonstrations with a wrong digit)")
        check_unit_interval(self.gamma, "gamma", " (the discount)")
        check_unit_interval(self.gae_lambda, "gae_lambda", " (the GAE parameter)")
        check_choice(self.kl, "kl", KL_ESTIMATORS)
        check_choice(self.agg, "agg", AGGREGATIONS)
        check_choice(self.ratio_level, "ratio_level", RATIO_LEVELS)
        check_choice(self.advantages, "advantages", ADVANTAGE_MODES)
        check_choice(self.lr_schedule, "lr_schedule", LR_SCHEDULES)
        check_bool(self.dynamic_sampling, "dynamic_sampling")
        check_bool(self.mask_truncated, "mask_truncated")
        check_int(self.overlong_cache, "overlong_cache", 0)
        if self.loss_overrides is not None and not isinstance(self.loss_overrides, dict):
            raise ValueError(f"`loss_overrides` must be a dict of grpo_loss keywords or None; got {self.loss_overrides!r}.")
        if self.loss_preset is None:
            if self.loss_overrides:
                raise ValueError("`loss_overrides` needs a `loss_preset` (the fields set grpo_loss's keywords directly).")
        else:
            check_choice(self.loss_preset, "loss_preset", LOSS_PRESETS)
            preset_settings(self.loss_preset, **self.loss_settings(self.max_new_tokens or 1))
        if self.threads is not None:
            check_int(self.threads, "threads", 1, " (CPU threads torch may use; None leaves torch's setting)")
        self.make_task()
        if self.max_new_tokens is not None:
            check_int(self.max_new_tokens, "max_new_tokens", 1, " (the generation limit; None for the task's)")
        if self.device is not None:
            check_device(self.device)

    def loss_settings(self, max_len: int, beta: float | None = None) -> dict:
        """The keywords the trainer passes to its ``loss_fn`` (:func:`grpo_core.grpo_loss`) for this
        configuration: the clip range, ``beta`` (default ``self.beta``), the KL estimator, the
        aggregation with its constant ``max_len`` (the generation limit) and the ratio level.
        With a ``loss_preset`` (``loss_fn`` is then :func:`grpo_core.preset_loss` of it): only
        ``loss_overrides``, and ``beta`` and ``kl`` when beta > 0."""
        if self.loss_preset is not None:
            out = dict(self.loss_overrides or {})
            b = self.beta if beta is None else beta
            if b > 0:
                out.update(beta=b, kl=self.kl)
            return out
        return dict(eps_low=self.eps_low, eps_high=self.eps_high, beta=self.beta if beta is None else beta,
                    kl=self.kl, agg=self.agg, max_len=max_len, ratio_level=self.ratio_level)

    def make_task(self) -> Task:
        if self.task_size is None:
            return make_task(self.task)
        check_int(self.task_size, "task_size", 2)
        return make_task(self.task, n_digits=self.task_size)

    def model_config(self, task: Task) -> ModelConfig:
        return ModelConfig(
            vocab_size=TOKENIZER.vocab_size,
            max_len=task.prompt_len + max(task.max_new_tokens, self.max_new_tokens or 0),
            d_model=self.d_model,
            n_layers=self.n_layers,
            n_heads=self.n_heads,
        )


# --------------------------------------------------------------------------- base model


def cosine_factor(step: int, total: int) -> float:
    """Cosine annealing from 1 at ``step = 0`` to 0.1 at ``step = total`` (the warm-up's schedule,
    and the trainer's ``lr_schedule="cosine"``)."""
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / total))


def pretrain_base(cfg: GRPOConfig, *, use_cache: bool = True, log=None) -> TinyGPT:
    """The "base model": a :class:`TinyGPT` trained briefly on demonstrations with errors.

    Cross-entropy on the completion tokens of ``sft_steps`` batches of demonstrations, a fraction
    ``sft_error_rate`` of which have one wrong digit. The result is cached on disk (in
    ``$GRPO_CORE_CACHE``, default ``~/.cache/grpo_core``) under a hash of every setting that
    affects it, so the chapter and the CLI pay for it once. Trained on ``cfg.device`` (CPU unless
    a GPU is present), deterministically on the CPU; returned on the CPU.
    """
    task = cfg.make_task()
    mcfg = cfg.model_config(task)
    device = pick_device(cfg.device)
    seed = cfg.seed if cfg.base_seed is None else cfg.base_seed
    keys = dict(task=cfg.task, model=dataclasses.asdict(mcfg), steps=cfg.sft_steps, batch=cfg.sft_batch,
                lr=cfg.sft_lr, err=cfg.sft_error_rate, seed=seed, v=1)
    if cfg.task_size is not None:
        keys["size"] = cfg.task_size
    if device.type != "cpu":  # a GPU warm-up gives (slightly) different weights
        keys["device"] = device.type
    digest = hashlib.sha256(json.dumps(keys, sort_keys=True).encode()).hexdigest()[:16]
    path = cache_dir() / f"base-{cfg.task}-{digest}.pt"
    torch.manual_seed(seed)
    model = TinyGPT(mcfg)
    if use_cache and path.is_file():
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        return model
    with _threads(cfg.threads):
        _warm_up(cfg, task, model, device, log)
    model.cpu()
    if use_cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        torch.save(model.state_dict(), tmp)
        tmp.replace(path)
    return model


def _warm_up(cfg: GRPOConfig, task: Task, model: TinyGPT, device, log) -> None:
    model.to(device)
    gen = torch.Generator().manual_seed((cfg.seed if cfg.base_seed is None else cfg.base_seed) + 1)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.sft_lr, weight_decay=0.0)
    for it in range(cfg.sft_steps):
        ids = task.sample_ids(cfg.sft_batch, gen)
        prompts, demos = task.prompts(ids).to(device), task.demonstrations(ids, cfg.sft_error_rate, gen).to(device)
        length = task.demo_lengths(ids, demos)
        mask = (torch.arange(task.max_new_tokens)[None, :] < length[:, None]).to(device)
        logp = token_logprobs(model, prompts, demos)
        loss = -(logp * mask).sum() / mask.sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        for group in opt.param_groups:  # cosine decay to a tenth
            group["lr"] = cfg.sft_lr * cosine_factor(it, max(cfg.sft_steps, 1))
        opt.step()
        if log is not None and (it + 1) % 100 == 0:
            log(f"warm-up {it + 1}/{cfg.sft_steps}: loss {loss.item():.3f}")


@torch.no_grad()
def evaluate(model: TinyGPT, task: Task, ids: torch.Tensor, *, temperature: float = 1.0, seed: int = 0, device=None) -> float:
    """Share of the problems ``ids`` solved by one sampled completion each (pass@1 at ``temperature``)."""
    device = device or next(model.parameters()).device
    gen = torch.Generator(device=device).manual_seed(seed)
    prompts = task.prompts(ids).to(device)
    comp, _, _ = generate(model, prompts, task.max_new_tokens, TOKENIZER.eos_id, TOKENIZER.pad_id,
                          temperature=temperature, generator=gen)
    return float(task.reward(ids, comp).mean())


# --------------------------------------------------------------------------- trainer


class GRPOTrainer:
    """GRPO on a :class:`TinyGPT` policy for a verifiable task. ``train()`` runs ``cfg.steps`` steps.

    Attributes: ``policy`` (trained), ``ref`` (frozen copy of the base model), ``history``
    (one dict of logged metrics per step), ``task``, ``device``, ``samples`` (completions drawn).
    With ``cfg.algo = "rloo"`` the advantage is the leave-one-out one; for PPO use
    :class:`PPOTrainer` (or :func:`make_trainer`, which picks the class from ``cfg.algo``).
    """

    def __init__(self, cfg: GRPOConfig, base: TinyGPT | None = None, *, log=None):
        cfg.check()
        self.cfg = cfg
        self.task = cfg.make_task()
        self.device = pick_device(cfg.device)
        self.log = log
        base = base if base is not None else pretrain_base(cfg, log=log)
        self.policy = copy.deepcopy(base).to(self.device).train()
        self.ref = copy.deepcopy(base).to(self.device).eval()
        for p in self.ref.parameters():
            p.requires_grad_(False)
        self.opt = torch.optim.Adam(self.policy.parameters(), lr=cfg.lr, **_adam_kwargs(self.device))
        #: The policy loss, called as ``loss_fn(logp, old_logp, ref_logp, advantages, mask, **settings)``
        #: and returning ``(loss, metrics)`` like :func:`grpo_core.grpo_loss`, the default. Assign
        #: another function (e.g. one that records its inputs) to change or inspect the update.
        self.loss_fn = grpo_loss if cfg.loss_preset is None else functools.partial(preset_loss, cfg.loss_preset)
        self.gen = torch.Generator().manual_seed(cfg.seed + 7)
        self.sample_gen = torch.Generator(device=self.device).manual_seed(cfg.seed + 11)
        self.kl_ctl = (AdaptiveKLController(init_beta=max(cfg.beta, 1e-3), target=cfg.kl_target)
                       if cfg.kl_target is not None else None)
        self.max_new = cfg.max_new_tokens or self.task.max_new_tokens
        self.heldout = self.task.heldout_ids(cfg.eval_size)
        self.history: list[dict] = []
        self.samples = 0
        self.tokens = {"rollout": 0, "update": 0}
        self._t0 = time.perf_counter()

    # ------------------------------------------------------------------ rollout

    @torch.no_grad()
    def rollout(self, ids: torch.Tensor, repeat: int | None = None) -> dict:
        """Sample one completion for each prompt of ``ids`` repeated ``repeat`` (default G) times,
        all rows at once, from the current policy, and score it.

        Returns a dict of ``ids``, ``prompts`` ``[N, P]``, ``comp`` and ``mask`` ``[N, C]``,
        ``rewards`` ``[N]`` (the task's) and ``score`` (with DAPO's overlong penalty when
        ``cfg.overlong_cache`` is set; the advantages are computed from it)."""
        rows = ids.repeat_interleave(self.cfg.G if repeat is None else repeat)
        prompts = self.task.prompts(rows).to(self.device)
        self.policy.eval()
        comp, mask, _ = generate(self.policy, prompts, self.max_new, TOKENIZER.eos_id, TOKENIZER.pad_id,
                                 temperature=self.cfg.temperature, generator=self.sample_gen,
                                 kv_cache=SPEEDUPS["kv_cache"])
        self.policy.train()
        self.samples += rows.numel()
        self.tokens["rollout"] += int(mask.sum())
        rewards = self.task.reward(rows, comp)
        score = rewards
        if self.cfg.overlong_cache:
            score = rewards + overlong_penalty(mask.sum(1), self.max_new, min(self.cfg.overlong_cache, self.max_new),
                                               self.cfg.overlong_factor).to(rewards.device)
        return dict(ids=ids, prompts=prompts, comp=comp, mask=mask, rewards=rewards, score=score)

    def advantages(self, rewards: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """One advantage per completion from its group's rewards: ``cfg.advantages`` (a name of
        :data:`grpo_core.ADVANTAGE_ESTIMATORS`; ``algo="rloo"`` uses ``"rloo"``). An estimator
        that needs the completion ``mask`` (per-token advantages, ``[N, C]``) gets it."""
        mode = "rloo" if self.cfg.algo == "rloo" else self.cfg.advantages
        if "mask" in ADVANTAGE_ESTIMATORS[mode].required:
            if mask is None:
                raise ValueError(f"`mask` is needed: advantage estimator {mode!r} works on the completion tokens.")
            return compute_advantages(mode, rewards, self.cfg.G, mask=mask)
        return compute_advantages(mode, rewards, self.cfg.G)

    def _batch(self) -> tuple[dict, float]:
        """A batch of groups; with dynamic sampling, groups without spread are replaced."""
        cfg = self.cfg
        batch = self.rollout(self.task.sample_ids(cfg.prompts_per_step, self.gen))
        zero_std = 1.0 - float(dynamic_sampling_keep(batch["rewards"], cfg.G).float().mean())
        if not cfg.dynamic_sampling:
            return batch, zero_std
        for _ in range(cfg.max_resample):
            keep = dynamic_sampling_keep(batch["rewards"], cfg.G)
            if bool(keep.all()):
                break
            extra = self.rollout(self.task.sample_ids(cfg.prompts_per_step, self.gen))
            extra_keep = dynamic_sampling_keep(extra["rewards"], cfg.G)
            rows_keep = keep.repeat_interleave(cfg.G)
            rows_extra = extra_keep.repeat_interleave(cfg.G)
            merged = {k: torch.cat([batch[k][rows_keep] if k != "ids" else batch[k][keep],
                                    extra[k][rows_extra] if k != "ids" else extra[k][extra_keep]])
                      for k in batch}
            n = cfg.prompts_per_step
            batch = {k: (v[:n] if k == "ids" else v[: n * cfg.G]) for k, v in merged.items()}
            if batch["ids"].numel() < n:  # still short: top up with fresh groups, spread or not
                fill = self.rollout(self.task.sample_ids(n - batch["ids"].numel(), self.gen))
                batch = {k: torch.cat([batch[k], fill[k]]) for k in batch}
        return batch, zero_std

    # ------------------------------------------------------------------ update

    def _prepare(self, batch: dict, old_logp: torch.Tensor, ref_logp: torch.Tensor | None, beta: float) -> dict:
        """What the update needs besides the batch: here the advantages, one per completion."""
        mode = "rloo" if self.cfg.algo == "rloo" else self.cfg.advantages
        if "mask" in ADVANTAGE_ESTIMATORS[mode].required:
            return {"adv": self.advantages(batch["score"], batch["mask"].float()).to(self.device)}
        return {"adv": self.advantages(batch["score"]).to(self.device)}

    def _policy_beta(self, beta: float) -> float:
        """The KL coefficient inside the loss (GRPO: beta; PPO puts the KL in the reward instead)."""
        return beta

    def _extra_update(self, prep: dict, rows: torch.Tensor, batch: dict, metrics: dict) -> None:
        """Hook for a second model's update on the same minibatch (PPO's critic)."""

    def _logprobs(self, model, prompts, comp, length, entropy: bool = False):
        """log-probabilities of ``comp`` under ``model`` (and per-token entropies with ``entropy``)."""
        if SPEEDUPS["fast_logprobs"]:
            return completion_logprobs(model, prompts, comp, self.cfg.temperature, length=length, entropy=entropy)
        logp = token_logprobs(model, prompts, comp, self.cfg.temperature)
        if not entropy:
            return logp
        with torch.no_grad():
            logits = model(torch.cat([prompts, comp], 1)[:, :-1])[:, prompts.shape[1] - 1 :] / self.cfg.temperature
            logp_all = torch.log_softmax(logits.float(), -1)
            return logp, -(logp_all.exp() * logp_all).sum(-1)

    def lr_factor(self, step: int) -> float:
        """Multiplier of ``lr`` (and PPO's ``value_lr``) at step ``step`` (0-based) under ``cfg.lr_schedule``."""
        if self.cfg.lr_schedule == "constant":
            return 1.0
        last = max(self.cfg.steps - 1, 1)
        return cosine_factor(min(step, last), last)

    def step(self) -> dict:
        with _threads(self.cfg.threads):
            return self._step()

    def _step(self) -> dict:
        cfg = self.cfg
        t_start = time.perf_counter()
        batch, zero_std = self._batch()
        prompts, comp, mask = batch["prompts"], batch["comp"], batch["mask"].float()
        rewards = batch["rewards"]
        loss_mask = mask
        if cfg.mask_truncated:  # DAPO: answers cut at the limit teach nothing, either way
            loss_mask = mask * (~truncated(comp, batch["mask"], TOKENIZER.eos_id)).float()[:, None]
        beta = self.kl_ctl.beta if self.kl_ctl is not None else cfg.beta
        factor = self.lr_factor(len(self.history))
        lr = cfg.lr * factor
        for group in self.opt.param_groups:
            group["lr"] = lr
        if hasattr(self, "value_opt"):
            for group in self.value_opt.param_groups:
                group["lr"] = cfg.value_lr * factor
        length = int(batch["mask"].sum(1).max()) if SPEEDUPS["fast_logprobs"] else None
        reuse_old = SPEEDUPS["reuse_old"] and cfg.mu == 1 and cfg.minibatches == 1
        want_entropy = SPEEDUPS["entropy_from_update"]
        entropy_tok = None
        first_logp = None
        if reuse_old:  # the only minibatch of the only pass: pi_old is pi_theta before the step
            first_logp = self._logprobs(self.policy, prompts, comp, length, want_entropy)
            if want_entropy:
                first_logp, entropy_tok = first_logp
            old_logp = first_logp.detach()
        else:
            with torch.no_grad():
                old_logp = self._logprobs(self.policy, prompts, comp, length, want_entropy)
                if want_entropy:
                    old_logp, entropy_tok = old_logp
        with torch.no_grad():
            ref_logp = (self._logprobs(self.ref, prompts, comp, length)
                        if cfg.beta > 0 or self.kl_ctl else None)
        prep = self._prepare(batch, old_logp, ref_logp, beta)
        adv = prep["adv"]
        t_rollout = time.perf_counter() - t_start
        loss_beta = self._policy_beta(beta) if ref_logp is not None else 0.0
        n = comp.shape[0]
        size = n // cfg.minibatches
        sums: dict[str, float] = {}
        n_updates = 0
        for _ in range(cfg.mu):
            order = torch.randperm(n, generator=self.gen).to(self.device) if cfg.minibatches > 1 else torch.arange(n, device=self.device)
            for k in range(cfg.minibatches):
                rows = order[k * size : (k + 1) * size]
                if first_logp is not None:
                    logp, first_logp = first_logp, None
                else:
                    logp = self._logprobs(self.policy, prompts[rows], comp[rows], length)
                loss, metrics = self.loss_fn(
                    logp, old_logp[rows], None if loss_beta == 0 else ref_logp[rows], adv[rows], loss_mask[rows],
                    **cfg.loss_settings(self.max_new, loss_beta),
                )
                self.opt.zero_grad(set_to_none=True)
                loss.backward()
                grad_norm = torch.nn.utils.clip_grad_norm_(self.policy.parameters(), cfg.max_grad_norm, foreach=True)
                self.opt.step()
                metrics["grad_norm"], metrics["loss"] = torch.stack([grad_norm.float(), loss.detach().float()]).tolist()
                self._extra_update(prep, rows, batch, metrics)
                self.tokens["update"] += int(loss_mask[rows].sum())
                for key, v in metrics.items():
                    if not math.isnan(v):
                        sums[key] = sums.get(key, 0.0) + v
                n_updates += 1
        with torch.no_grad():
            if entropy_tok is None:  # entropy of the updated policy, one more forward pass
                logits = self.policy(torch.cat([prompts, comp], 1)[:, :-1])[:, prompts.shape[1] - 1 :] / cfg.temperature
                logp_all = torch.log_softmax(logits.float(), -1)
                entropy_tok = -(logp_all.exp() * logp_all).sum(-1)
            entropy = float((entropy_tok * mask).sum() / mask.sum())
            # KL(pi_old || pi_ref) per token, k3 on the sampled tokens: unbiased and never negative
            # (padding set to 0 first: kl_estimate refuses an overflowing gap, and padding is no answer's)
            if ref_logp is not None:
                real = mask > 0
                k3 = kl_estimate(torch.where(real, old_logp, 0.0), torch.where(real, ref_logp, 0.0), "k3")
                kl_now = float((k3 * mask).sum() / mask.sum())
            else:
                kl_now = float("nan")
        if self.kl_ctl is not None and not math.isnan(kl_now):
            self.kl_ctl.update(kl_now, 1)
        group = cfg.G if rewards.numel() % cfg.G == 0 and cfg.algo != "ppo" else 1
        record = {
            "step": len(self.history) + 1,
            "reward_mean": float(rewards.mean()),
            "reward_std_within": (float(rewards.view(-1, group).std(dim=1, correction=0).mean())
                                  if group > 1 else float("nan")),
            "zero_std_frac": zero_std,
            "kl": kl_now,
            "beta": beta,
            "lr": lr,
            "entropy": entropy,  # per token, of the sampling policy (the updated one without entropy_from_update)
            "completion_len": float(mask.sum(1).mean()),
            # mean length (tokens, <eos> included) of the right and of the wrong answers (NaN: none)
            "len_right": _mean_where(mask.sum(1), rewards > 0.5),
            "len_wrong": _mean_where(mask.sum(1), rewards <= 0.5),
            "truncated_frac": float(truncated(comp, batch["mask"], TOKENIZER.eos_id).float().mean()),
            "samples": self.samples,
            "rollout_s": t_rollout,
            "step_s": time.perf_counter() - t_start,
            "wall_s": time.perf_counter() - self._t0,
        }
        keys = ("clip_frac", "clip_frac_low", "clip_frac_high", "grad_norm", "loss", "ratio_mean", "value_loss")
        record.update({k: v / n_updates for k, v in sums.items() if k in keys})
        self.history.append(record)
        return record

    def evaluate(self, seed: int = 0) -> float:
        """Held-out success (pass@1, sampling at the training temperature)."""
        self.policy.eval()
        try:
            with _threads(self.cfg.threads):
                return evaluate(self.policy, self.task, self.heldout, temperature=self.cfg.temperature, seed=seed, device=self.device)
        finally:
            self.policy.train()

    def train(self, *, callback=None, eval_every: int = 0) -> list[dict]:
        """Run ``cfg.steps`` steps; ``callback(record)`` after each, e.g. for live curves."""
        for _ in range(self.cfg.steps):
            record = self.step()
            if eval_every and record["step"] % eval_every == 0:
                record["heldout"] = self.evaluate()
            if callback is not None:
                callback(record)
        return self.history

    def trainable_models(self) -> list[torch.nn.Module]:
        return [self.policy]

    def n_trainable(self) -> int:
        """Parameters that the optimisers update (PPO: policy and critic)."""
        return sum(p.numel() for m in self.trainable_models() for p in m.parameters())


class PPOTrainer(GRPOTrainer):
    """PPO with a learned critic on the same policy, task and sampling budget as GRPO.

    Each step draws ``prompts_per_step * G`` distinct prompts and one answer each, so it uses as
    many samples as a GRPO step. The critic (:class:`grpo_core.training.models.ValueHead`) starts from the
    base model's weights with a zero value layer and has its own Adam (``value_lr``). Advantages
    come from :func:`grpo_core.ppo.gae` on :func:`grpo_core.ppo.token_rewards` and are whitened over
    the batch's tokens; the policy loss is :func:`grpo_core.grpo_loss` with those per-token
    advantages and no KL term (with ``beta > 0`` the KL is a penalty in the reward); the critic
    minimises :func:`grpo_core.ppo.value_loss` on the same minibatches.
    """

    def __init__(self, cfg: GRPOConfig, base: TinyGPT | None = None, *, log=None):
        super().__init__(cfg, base, log=log)
        self.critic = ValueHead(self.policy.cfg)
        self.critic.body.load_state_dict(self.ref.state_dict())
        torch.nn.init.zeros_(self.critic.head.weight)
        torch.nn.init.zeros_(self.critic.head.bias)
        self.critic.to(self.device).train()
        self.value_opt = torch.optim.Adam(self.critic.parameters(), lr=cfg.value_lr, **_adam_kwargs(self.device))

    def _batch(self) -> tuple[dict, float]:
        cfg = self.cfg
        ids = self.task.sample_ids(cfg.prompts_per_step * cfg.G, self.gen)
        return self.rollout(ids, repeat=1), float("nan")

    def _values(self, prompts: torch.Tensor, comp: torch.Tensor) -> torch.Tensor:
        """The critic's value before each completion token: ``[N, C]``."""
        seq = torch.cat([prompts, comp], 1)[:, :-1]
        return self.critic(seq)[:, prompts.shape[1] - 1 :].float()

    def _prepare(self, batch, old_logp, ref_logp, beta):
        mask = batch["mask"].float()
        with torch.no_grad():
            values = self._values(batch["prompts"], batch["comp"]) * mask
        r_tok = token_rewards(batch["score"].to(self.device), mask, old_logp, ref_logp,
                              beta=beta if ref_logp is not None else 0.0)
        adv, returns = gae(r_tok, values, mask, self.cfg.gamma, self.cfg.gae_lambda)
        return {"adv": whiten(adv, mask), "values": values, "returns": returns}

    def _policy_beta(self, beta: float) -> float:
        return 0.0

    def _extra_update(self, prep, rows, batch, metrics):
        cfg = self.cfg
        mask = batch["mask"][rows].float()
        v = self._values(batch["prompts"][rows], batch["comp"][rows])
        loss = value_loss(v, prep["values"][rows], prep["returns"][rows], mask, cfg.value_clip)
        self.value_opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.critic.parameters(), cfg.max_grad_norm, foreach=True)
        self.value_opt.step()
        metrics["value_loss"] = float(loss.detach())

    def trainable_models(self) -> list[torch.nn.Module]:
        return [self.policy, self.critic]


def make_trainer(cfg: GRPOConfig, base: TinyGPT | None = None, *, log=None) -> GRPOTrainer:
    """:class:`PPOTrainer` when ``cfg.algo == "ppo"``, else :class:`GRPOTrainer`."""
    cls = PPOTrainer if cfg.algo == "ppo" else GRPOTrainer
    return cls(cfg, base, log=log)


def state_bytes(trainer: GRPOTrainer) -> dict[str, int]:
    """Bytes held by model state, counted from the tensors: ``weights`` (every model, frozen ones
    included), ``grads`` and ``optimizer`` (Adam's two moments). Activations are not included."""
    models = trainer.trainable_models() + [trainer.ref]
    weights = sum(p.numel() * p.element_size() for m in models for p in m.parameters())
    grads = sum(p.numel() * p.element_size() for m in trainer.trainable_models() for p in m.parameters())
    opts = [trainer.opt] + ([trainer.value_opt] if hasattr(trainer, "value_opt") else [])
    optim = sum(t.numel() * t.element_size() for o in opts for st in o.state.values()
                for t in st.values() if isinstance(t, torch.Tensor) and t.dim() > 0)
    return {"weights": weights, "grads": grads, "optimizer": optim, "total": weights + grads + optim}


def gpu_config(**overrides) -> GRPOConfig:
    """The larger configuration for a GPU (Colab): sort 8 digits, a 4-layer d=128 model, G = 16,
    64 prompts per step. ``overrides`` set any other field."""
    base = dict(task="sort", task_size=8, d_model=128, n_layers=4, n_heads=4, G=16, prompts_per_step=64,
                steps=150, sft_steps=1500, sft_batch=256, eval_size=1024)
    base.update(overrides)
    return GRPOConfig(**base)
