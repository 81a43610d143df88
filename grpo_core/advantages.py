"""Group-relative advantages: how GRPO turns the rewards of G answers to one prompt into advantages.

For the rewards ``r_1..r_G`` of one group (the book's Eq. ``adv-group``, DeepSeekMath section 4.1.2)::

    A_i = (r_i - mean(r)) / (std(r) + eps)

and every token of answer ``i`` gets ``A_i``. The variants the book compares are options here,
not copies: which std (population or Bessel's sample std), whose std (the group's, the whole
batch's, or none at all as in Dr. GRPO), the epsilon, and what happens to a group whose rewards
are all equal. :data:`PRESETS` names the combinations used by the source notes, DeepSeekMath,
Hugging Face TRL and verl, and :func:`preset_advantages` applies one.

Also here: the leave-one-out baseline (:func:`loo_advantages`), the closed form for 0/1 rewards
(:func:`bernoulli_advantages`), the signal-collapse mitigations that change the advantage
(:func:`threshold_advantages`, :func:`global_baseline_advantages` with a :class:`RunningBaseline`),
several rewards per answer (:func:`combine_rewards`, incl. GDPO), the estimators of TRL 1.16.0
and verl 0.9.1 with their own option names (:func:`trl_advantages`, :func:`verl_grpo_advantages`,
:func:`verl_reinforce_pp_advantages`, :func:`verl_gdpo_advantages`), and
:data:`ADVANTAGE_ESTIMATORS`, the one registry of estimators by name (:func:`compute_advantages`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from ._checks import (
    as_float_tensor,
    as_grouped,
    check_choice,
    check_finite,
    check_group_size,
    check_bool,
    check_instance,
    check_nonneg_number,
    check_real,
    ArgumentTypeError,
)

__all__ = [
    "group_advantages",
    "loo_advantages",
    "preset_advantages",
    "bernoulli_advantages",
    "PRESETS",
    "threshold_advantages",
    "RunningBaseline",
    "global_baseline_advantages",
    "combine_rewards",
    "COMBINE_MODES",
    "AdvantageEstimator",
    "ADVANTAGE_ESTIMATORS",
    "register_advantage",
    "compute_advantages",
    "trl_advantages",
    "verl_grpo_advantages",
    "verl_reinforce_pp_advantages",
    "verl_gdpo_advantages",
    "TRL_SCALE_REWARDS",
    "TRL_MULTI_OBJECTIVE",
]

_SCALES = ("group", "batch", "none")
_STDS = ("population", "sample")


def group_advantages(
    rewards,
    group_size: int,
    *,
    scale: str = "group",
    std: str = "population",
    eps: float = 1e-8,
    zero_equal_groups: bool = True,
    zero_if_std_below: float = 0.0,
    std_floor: float = 0.0,
) -> torch.Tensor:
    """Group-normalised advantages (book Eq. ``adv-group``; DeepSeekMath Sec. 4.1.2).

    Args:
        rewards: ``[B*G]`` (the G answers of each prompt contiguous) or ``[B, G]``; any real
            dtype, on any device. Lists and NumPy arrays are accepted too.
        group_size: G, the number of answers sampled per prompt; at least 2.
        scale: what the centred reward is divided by.
            ``"group"``: the group's own std (GRPO, DeepSeekMath);
            ``"batch"``: the std of all B*G rewards (TRL ``scale_rewards="batch"``);
            ``"none"``: nothing, ``A_i = r_i - mean(r)`` (Dr. GRPO; verl ``norm_adv_by_std_in_grpo=False``).
        std: ``"population"`` (divide by G) or ``"sample"`` (Bessel, divide by G - 1).
        eps: added to the std before dividing: ``(r - mean) / (std + eps)``.
        zero_equal_groups: if True (default), a group whose rewards are all identical gets
            exactly 0, also when float rounding leaves a tiny nonzero std (eight rewards of 0.1
            in float32 give a std near 1e-9, and ``(r - mean)/(std + eps)`` would be O(0.1)).
            Such a group carries no learning signal; set False to reproduce an implementation's
            raw arithmetic.
        zero_if_std_below: a group whose std is below this gets exactly 0 (the source notes' guard
            ``if std < 1e-8``). 0 disables it.
        std_floor: divide by ``max(std, std_floor) + eps``: a minimum std, so that rewards that
            differ only by noise keep small advantages (a signal-collapse mitigation). 0 disables it.

    Returns:
        Advantages with the shape, dtype and device of ``rewards``.

    Raises:
        ValueError: non-finite rewards, a size that is not a multiple of ``group_size``,
            ``group_size < 2``, an unknown ``scale`` or ``std``, a negative ``eps``.
    """
    grouped, shape = as_grouped(rewards, group_size)
    check_choice(scale, "scale", _SCALES)
    check_choice(std, "std", _STDS)
    eps = check_nonneg_number(eps, "eps")
    zero_if_std_below = check_nonneg_number(zero_if_std_below, "zero_if_std_below")
    std_floor = check_nonneg_number(std_floor, "std_floor")
    check_bool(zero_equal_groups, "zero_equal_groups")
    correction = 0 if std == "population" else 1

    mean = grouped.mean(dim=1, keepdim=True)
    centred = grouped - mean
    group_std = grouped.std(dim=1, correction=correction, keepdim=True)

    if scale == "group":
        adv = centred / (group_std.clamp(min=std_floor) + eps)
    elif scale == "batch":
        adv = centred / (grouped.std(correction=correction).clamp(min=std_floor) + eps)
    else:  # "none"
        adv = centred

    degenerate = torch.zeros_like(group_std, dtype=torch.bool)
    if zero_equal_groups:
        degenerate |= grouped.amax(dim=1, keepdim=True) == grouped.amin(dim=1, keepdim=True)
    if zero_if_std_below > 0.0:
        degenerate |= group_std < zero_if_std_below
    adv = torch.where(degenerate, torch.zeros_like(adv), adv)
    return adv.reshape(shape)


def loo_advantages(rewards, group_size: int) -> torch.Tensor:
    """Leave-one-out advantages (RLOO, Ahmadian et al. 2024; book Eq. ``mean-vs-loo``)::

        A_i = r_i - (1 / (G - 1)) sum_{j != i} r_j  =  G / (G - 1) * (r_i - mean(r))

    The baseline of answer i does not depend on answer i, so the policy-gradient estimate is
    unbiased; it is the mean-only (Dr. GRPO) advantage scaled by ``G / (G - 1)``. Same shape and
    input checks as :func:`group_advantages`.
    """
    grouped, shape = as_grouped(rewards, group_size)
    g = grouped.shape[1]
    loo_mean = (grouped.sum(dim=1, keepdim=True) - grouped) / (g - 1)
    return (grouped - loo_mean).reshape(shape)


#: Conventions of the implementations the book compares, as keyword arguments of
#: :func:`group_advantages`. Each reproduces that implementation's arithmetic on groups of G >= 2,
#: on purpose including its float residue: a group of equal rewards gets exactly 0 only in the
#: presets with ``zero_equal_groups=True`` ("deepseekmath", "dr-grpo"). In "seed-notes", "trl",
#: "trl-batch" and "verl" it gets ``(r - mean) / (std + eps)`` of the rounding, exactly 0 when the
#: group's mean is computed exactly (binary fractions such as 0, 0.5, 1; float64 for the usual
#: rewards) and a small nonzero advantage otherwise: eight rewards of 0.1 in float32 give about
#: 7e-3 with "verl" and 7e-5 with "trl", and eight of 0.3 give about 0.75 with "seed-notes" (its
#: guard ``std < 1e-8`` misses a float32 std near 3e-8). ``tests/test_hardening.py`` pins these.
PRESETS: dict[str, dict] = {
    # The source notes' `safe_normalize_rewards`: population std, zeros if std < 1e-8, else
    # (r - mean) / (std + 1e-8).
    "seed-notes": dict(scale="group", std="population", eps=1e-8, zero_equal_groups=False, zero_if_std_below=1e-8),
    # DeepSeekMath Eq. for outcome supervision, (r - mean(r)) / std(r). The paper names neither the
    # std convention nor an epsilon; this preset reads the formula literally (population std, no
    # epsilon) and gives all-equal groups 0 instead of 0/0.
    "deepseekmath": dict(scale="group", std="population", eps=0.0, zero_equal_groups=True, zero_if_std_below=0.0),
    # Hugging Face TRL GRPOTrainer (scale_rewards="group"): sample std, (r - mean) / (std + 1e-4).
    "trl": dict(scale="group", std="sample", eps=1e-4, zero_equal_groups=False, zero_if_std_below=0.0),
    # TRL with scale_rewards="batch": group mean, std of the whole batch.
    "trl-batch": dict(scale="batch", std="sample", eps=1e-4, zero_equal_groups=False, zero_if_std_below=0.0),
    # verl compute_grpo_outcome_advantage: torch.std (sample), (r - mean) / (std + 1e-6).
    "verl": dict(scale="group", std="sample", eps=1e-6, zero_equal_groups=False, zero_if_std_below=0.0),
    # Dr. GRPO (TRL scale_rewards="none", verl norm_adv_by_std_in_grpo=False): mean only.
    "dr-grpo": dict(scale="none", std="population", eps=0.0, zero_equal_groups=True, zero_if_std_below=0.0),
}


def preset_advantages(rewards, group_size: int, preset: str) -> torch.Tensor:
    """:func:`group_advantages` with the conventions of a named implementation (see :data:`PRESETS`)."""
    check_choice(preset, "preset", PRESETS)
    return group_advantages(rewards, group_size, **PRESETS[preset])


def bernoulli_advantages(k, group_size: int, *, std: str = "population") -> tuple[torch.Tensor, torch.Tensor]:
    """Closed form of the group advantages of 0/1 rewards (book Eq. ``adv-bernoulli``).

    With ``k`` accepted answers out of ``G`` and ``p = k / G`` the group mean is ``p`` and the
    population std ``sqrt(p (1 - p))``, so (eps = 0)::

        A_right = (1 - p) / sqrt(p (1 - p)) = sqrt((1 - p) / p)
        A_wrong =     - p / sqrt(p (1 - p)) = -sqrt(p / (1 - p))

    The sample std is ``sqrt(G / (G - 1))`` times the population std, so with ``std="sample"``
    both are multiplied by ``sqrt((G - 1) / G)``. A group with ``k = 0`` or ``k = G`` has no
    spread: its answers get 0.

    Args:
        k: number of accepted answers, an int or an integer tensor with values in ``0..G``.
        group_size: G >= 2.
        std: ``"population"`` or ``"sample"``.

    Returns:
        ``(A_right, A_wrong)`` as float64 tensors shaped like ``k``; NaN where the group has no
        such answer (``A_right`` at ``k = 0``, ``A_wrong`` at ``k = G``).
    """
    g = check_group_size(group_size)
    check_choice(std, "std", _STDS)
    if k is None or isinstance(k, (str, bytes)):
        raise ArgumentTypeError(f"`k` must be an int or an integer tensor (a count of accepted answers); got {k!r}.")
    kt = torch.as_tensor(k)
    if kt.is_floating_point() or kt.is_complex() or kt.dtype == torch.bool:
        raise ValueError(f"`k` must be an int or an integer tensor (a count of accepted answers); got dtype {kt.dtype}.")
    if bool(((kt < 0) | (kt > g)).any()):
        raise ValueError(f"`k` must lie in 0..group_size={g}; got {kt.tolist()}.")
    p = kt.double() / g
    inner = (kt > 0) & (kt < g)
    safe = torch.where(inner, p, torch.full_like(p, 0.5))
    scale = math.sqrt((g - 1) / g) if std == "sample" else 1.0
    right = torch.where(inner, ((1 - safe) / safe).sqrt() * scale, torch.zeros_like(p))
    wrong = torch.where(inner, -(safe / (1 - safe)).sqrt() * scale, torch.zeros_like(p))
    right = torch.where(kt == 0, torch.full_like(p, math.nan), right)
    wrong = torch.where(kt == g, torch.full_like(p, math.nan), wrong)
    return right, wrong


# ------------------------------------------------------------------ collapse mitigations


def threshold_advantages(rewards, group_size: int, threshold: float, **advantage_kwargs) -> torch.Tensor:
    """Group advantages, except that a group whose *best* reward is below ``threshold`` gets 0.

    The notes' "absolute reward threshold" (seed 7.1, mitigation 3): inside a group of uniformly
    poor answers the least poor one would still get a positive advantage; with the threshold, such
    a group teaches nothing instead of reinforcing a bad answer. ``advantage_kwargs`` go to
    :func:`grpo_core.group_advantages`. Same shape as ``rewards``.
    """
    grouped, shape = as_grouped(rewards, group_size)
    threshold = check_real(threshold, "threshold", " (a reward level)")
    adv = group_advantages(grouped, group_size, **advantage_kwargs)
    below = grouped.amax(dim=1, keepdim=True) < threshold
    return torch.where(below, torch.zeros_like(adv), adv).reshape(shape)


class RunningBaseline:
    """A running mean and std of all rewards seen so far (exponential moving average).

    ``momentum`` is the weight of the past: after each :meth:`update` with a batch mean ``m``,
    ``mean <- momentum * mean + (1 - momentum) * m`` (the first batch sets it directly), and the
    same for the second moment. The notes' "light global baseline" (seed 7.1, mitigation 4).
    """

    def __init__(self, momentum: float = 0.9):
        m = check_nonneg_number(momentum, "momentum")
        if m >= 1.0:
            raise ValueError(f"`momentum` must be in [0, 1); got {momentum!r}.")
        self.momentum = m
        self.mean: float | None = None
        self._second: float | None = None

    @property
    def std(self) -> float:
        if self.mean is None:
            return float("nan")
        return math.sqrt(max(self._second - self.mean**2, 0.0))

    def update(self, rewards) -> None:
        r = as_float_tensor(rewards, "rewards").double()
        check_finite(r, "rewards")
        if r.numel() == 0:
            raise ValueError("`rewards` is empty; update the baseline with at least one reward.")
        m, s = float(r.mean()), float((r * r).mean())
        if self.mean is None:
            self.mean, self._second = m, s
        else:
            a = self.momentum
            self.mean = a * self.mean + (1 - a) * m
            self._second = a * self._second + (1 - a) * s


def global_baseline_advantages(rewards, group_size: int, baseline: RunningBaseline, *, eps: float = 1e-6, **advantage_kwargs) -> torch.Tensor:
    """Group advantages where they exist; ``(r - b) / (s + eps)`` for groups without spread.

    ``b`` and ``s`` are the running mean and std of ``baseline`` *before* this batch (call
    ``baseline.update(rewards)`` afterwards), so a group whose answers all succeeded still gets a
    positive advantage when the policy usually fails, and an all-failed group a negative one.
    Before the baseline has seen any reward it behaves like :func:`grpo_core.group_advantages`.
    """
    grouped, shape = as_grouped(rewards, group_size)
    check_instance(baseline, RunningBaseline, "baseline", " (grpo_core.RunningBaseline(momentum))")
    eps = check_nonneg_number(eps, "eps")
    adv = group_advantages(grouped, group_size, **advantage_kwargs)
    if baseline.mean is None:
        return adv.reshape(shape)
    flat = grouped.amax(dim=1, keepdim=True) == grouped.amin(dim=1, keepdim=True)
    fallback = (grouped - baseline.mean) / (baseline.std + eps)
    return torch.where(flat, fallback.to(adv.dtype), adv).reshape(shape)


# ----------------------------------------------------------------------- several rewards


#: How :func:`combine_rewards` turns K rewards per answer into one advantage.
COMBINE_MODES = {
    "sum-then-normalize": "weighted sum of the K rewards, then group normalisation (GRPO; TRL's default)",
    "normalize-then-sum": "group normalisation of each reward, weighted sum, then batch normalisation (GDPO)",
}


def combine_rewards(rewards, group_size: int, weights=None, mode: str = "sum-then-normalize", *, eps: float = 1e-6) -> torch.Tensor:
    """One advantage per answer from ``K`` rewards per answer (book Eq. ``multi-reward``).

    Args:
        rewards: ``[N, K]``, answer n's K rewards; N a multiple of ``group_size``, groups contiguous.
        group_size: G.
        weights: ``[K]`` non-negative weights (default all 1).
        mode: ``"sum-then-normalize"``: ``A = group_advantages(sum_k w_k r_k)``;
            ``"normalize-then-sum"`` (GDPO): ``a = sum_k w_k group_advantages(r_k)``, then
            ``A = (a - mean(a)) / (std(a) + eps)`` over the whole batch.
        eps: added to the batch std of GDPO's last step.

    Returns:
        ``[N]`` advantages.
    """
    r = as_float_tensor(rewards, "rewards")
    if r.dim() != 2:
        raise ValueError(f"`rewards` must be [N, K] (answers x rewards); got shape {tuple(r.shape)}.")
    check_finite(r, "rewards")
    check_group_size(group_size)
    k = r.shape[1]
    w = torch.ones(k, dtype=r.dtype) if weights is None else as_float_tensor(weights, "weights").to(r.dtype)
    if w.shape != (k,):
        raise ValueError(f"`weights` has shape {tuple(w.shape)}; it must be [K] = ({k},), one weight per reward.")
    check_finite(w, "weights")
    if bool((w < 0).any()):
        raise ValueError("`weights` must be >= 0; flip the sign of a reward instead of giving it a negative weight.")
    w = w.to(r.device)
    if mode == "sum-then-normalize":
        return group_advantages(r @ w, group_size)
    if mode == "normalize-then-sum":
        per_reward = torch.stack([group_advantages(r[:, j], group_size) for j in range(k)], dim=1)
        a = per_reward @ w
        return (a - a.mean()) / (a.std(correction=0) + check_nonneg_number(eps, "eps"))
    raise ValueError(f"`mode`={mode!r} is not known; choose one of {sorted(COMBINE_MODES)}.")


# ------------------------------------------------------------------------------------ registry


@dataclass(frozen=True)
class AdvantageEstimator:
    """A named advantage estimator: ``fn(rewards, group_size, **options) -> advantages`` (shape of
    ``rewards``), a one-line ``description``, the names of the keyword ``options`` it takes and
    those of them it cannot do without (``required``)."""

    name: str
    fn: Callable
    description: str
    options: tuple = ()
    required: tuple = ()


#: Every advantage estimator of the book, by name: one registry that the trainer
#: (``GRPOConfig.advantages``), the toy policies and the variance chapter's estimators look up,
#: in the spirit of verl's ``register_adv_est``.
ADVANTAGE_ESTIMATORS: dict[str, AdvantageEstimator] = {}


def register_advantage(name: str, description: str, options=(), required=()):
    """Decorator: add ``fn(rewards, group_size, **options)`` to :data:`ADVANTAGE_ESTIMATORS`."""
    if not isinstance(name, str) or not name:
        raise ArgumentTypeError(f"`name` must be a non-empty str (the estimator's name); got {name!r}.")

    def deco(fn):
        if name in ADVANTAGE_ESTIMATORS:
            raise ValueError(f"`name`={name!r}: an advantage estimator of that name is already registered; pick another.")
        ADVANTAGE_ESTIMATORS[name] = AdvantageEstimator(name, fn, description, tuple(options), tuple(required))
        return fn

    return deco


def compute_advantages(name: str, rewards, group_size: int, **options) -> torch.Tensor:
    """The advantages of estimator ``name`` (a key of :data:`ADVANTAGE_ESTIMATORS`).

    ``options`` go to the estimator (e.g. ``eps`` or ``std_floor`` for ``"grpo"``, ``threshold``
    for ``"threshold"``, ``baseline`` for ``"global-baseline"``); an option the estimator does not
    take is an error that lists the ones it does.
    """
    check_choice(name, "advantages", ADVANTAGE_ESTIMATORS)
    est = ADVANTAGE_ESTIMATORS[name]
    unknown = sorted(set(options) - set(est.options))
    if unknown:
        raise ValueError(f"advantage estimator {name!r} takes no option(s) {unknown}; its options are {list(est.options)}.")
    missing = sorted(set(est.required) - set(options))
    if missing:
        raise ValueError(f"advantage estimator {name!r} needs the option(s) {missing}.")
    return est.fn(rewards, group_size, **options)


#: The options of :func:`group_advantages`, which every group-normalising estimator accepts.
GROUP_OPTIONS = ("scale", "std", "eps", "zero_equal_groups", "zero_if_std_below", "std_floor")

register_advantage(
    "grpo", "(r - group mean) / (population std + 1e-8); all-equal groups get 0 (the book's GRPO)", GROUP_OPTIONS
)(group_advantages)
register_advantage("rloo", "r - mean of the other G - 1 rewards (leave-one-out, RLOO)")(loo_advantages)


def _preset_estimator(preset: str) -> Callable:
    def fn(rewards, group_size, **options):
        return group_advantages(rewards, group_size, **{**PRESETS[preset], **options})

    return fn


for _name, _settings in PRESETS.items():
    register_advantage(_name, f"group_advantages with the {_name!r} conventions {_settings}", GROUP_OPTIONS)(
        _preset_estimator(_name)
    )

register_advantage(
    "threshold", "group advantages, but 0 for a group whose best reward is below `threshold`",
    ("threshold",) + GROUP_OPTIONS, required=("threshold",),
)(lambda rewards, group_size, *, threshold, **options: threshold_advantages(rewards, group_size, threshold, **options))
register_advantage(
    "global-baseline", "group advantages; a group without spread is scored against a running baseline",
    ("baseline", "eps") + GROUP_OPTIONS[:2] + GROUP_OPTIONS[3:], required=("baseline",),
)(lambda rewards, group_size, *, baseline, **options: global_baseline_advantages(rewards, group_size, baseline, **options))


# ------------------------------------------------------------- the frameworks' estimators
#
# TRL 1.16.0 and verl 0.9.1 by name, with their own option names, reproducing their arithmetic
# (tests/conformance compares each with the framework's code). Groups are G contiguous answers.

#: TRL's ``scale_rewards``: what the centred reward is divided by.
TRL_SCALE_REWARDS = ("group", "batch", "none")
#: TRL's ``multi_objective_aggregation``: how several reward functions become one advantage.
TRL_MULTI_OBJECTIVE = ("sum_then_normalize", "normalize_then_sum")


def _rewards_per_func(rewards, group_size, weights, name="reward_weights"):
    """``[N]`` or ``[N, K]`` rewards (one column per reward function) and ``[K]`` weights."""
    r = as_float_tensor(rewards, "rewards")
    if r.dim() == 1:
        r = r[:, None]
    if r.dim() != 2:
        raise ValueError(f"`rewards` must be [N] or [N, K] (one column per reward function); got shape {tuple(r.shape)}.")
    as_grouped(r[:, 0], group_size)  # N a positive multiple of G
    check_finite(r, "rewards")
    k = r.shape[1]
    w = torch.ones(k, dtype=torch.float32) if weights is None else as_float_tensor(weights, name)
    if w.shape != (k,):
        raise ValueError(f"`{name}` has shape {tuple(w.shape)}; it must be [K] = ({k},), one weight per reward.")
    check_finite(w, name)
    return r, w.to(device=r.device)


def _bessel_std(x: torch.Tensor, dim=None, keepdim: bool = False) -> torch.Tensor:
    """TRL's sample std: the mean squared deviation times n / (n - 1), square-rooted."""
    mean = torch.nanmean(x, dim=dim, keepdim=True)
    var = torch.nanmean((x - mean) ** 2, dim=dim, keepdim=True)
    count = torch.sum(~torch.isnan(x), dim=dim, keepdim=True)
    std = torch.sqrt(var * (count / (count - 1)))
    if keepdim:
        return std
    return std.squeeze() if dim is None else std.squeeze(dim)


def trl_advantages(rewards, group_size: int, *, scale_rewards: str = "group",
                   multi_objective_aggregation: str = "sum_then_normalize", reward_weights=None) -> torch.Tensor:
    """The advantages of TRL 1.16.0's ``GRPOTrainer`` (``_generate_and_score_completions``).

    With ``R_n = sum_k w_k r_nk`` (``reward_weights``, default all 1) and groups of G::

        "sum_then_normalize" (default):  A = (R - group mean) / (s + 1e-4)
            s = the group's sample std (scale_rewards="group"), the whole batch's ("batch"),
            or no division at all ("none")
        "normalize_then_sum" (GDPO):     z_k = (r_k - group mean) / (group sample std + 1e-4) per reward,
            S = sum_k w_k z_k,  A = (S - batch mean) / (batch sample std + 1e-4); scale_rewards is ignored

    A group of equal rewards gets 0 (0 / (0 + 1e-4)) when its mean is computed exactly; otherwise
    the rounding's residue divided by ``std + 1e-4``, as in TRL (eight rewards of 0.1 in float32:
    about 7e-5, not 0). TRL computes in float32; this function in the
    dtype of ``rewards`` (pass float32 to reproduce TRL to the last bit).

    Args:
        rewards: ``[N]`` (one reward function) or ``[N, K]`` (one column per reward function);
            N a multiple of ``group_size``, each prompt's G answers contiguous.
        group_size: G (TRL's ``num_generations``), at least 2.
        scale_rewards: ``"group"``, ``"batch"`` or ``"none"``.
        multi_objective_aggregation: ``"sum_then_normalize"`` or ``"normalize_then_sum"``.
        reward_weights: ``[K]`` weights (TRL's ``reward_weights``).

    Returns:
        ``[N]`` advantages.
    """
    check_choice(scale_rewards, "scale_rewards", TRL_SCALE_REWARDS)
    check_choice(multi_objective_aggregation, "multi_objective_aggregation", TRL_MULTI_OBJECTIVE)
    g = check_group_size(group_size)
    r, w = _rewards_per_func(rewards, g, reward_weights)
    w = w.to(r.dtype)
    if multi_objective_aggregation == "sum_then_normalize":
        total = (r * w[None, :]).nansum(dim=1)
        mean = torch.nanmean(total.view(-1, g), dim=1).repeat_interleave(g)
        adv = total - mean
        if scale_rewards == "group":
            adv = adv / (_bessel_std(total.view(-1, g), dim=1).repeat_interleave(g) + 1e-4)
        elif scale_rewards == "batch":
            adv = adv / (_bessel_std(total) + 1e-4)
        return adv
    grouped = r.view(-1, g, r.shape[1])
    z = (grouped - torch.nanmean(grouped, dim=1, keepdim=True)) / (_bessel_std(grouped, dim=1, keepdim=True) + 1e-4)
    total = (z.reshape(-1, r.shape[1]) * w[None, :]).nansum(dim=1)
    return (total - torch.nanmean(total)) / (_bessel_std(total) + 1e-4)


def verl_grpo_advantages(rewards, group_size: int, *, norm_adv_by_std_in_grpo: bool = True,
                         epsilon: float = 1e-6) -> torch.Tensor:
    """verl 0.9.1's ``grpo`` estimator (``compute_grpo_outcome_advantage``), one value per answer.

    ``(s - group mean) / (group std + epsilon)`` with ``torch.std`` (Bessel) and epsilon 1e-6, or
    ``s - group mean`` with ``norm_adv_by_std_in_grpo=False`` (Dr. GRPO; the flag
    ``algorithm.norm_adv_by_std_in_grpo``). No special case for equal rewards: their advantage is
    whatever rounding leaves, as in verl: exactly 0 when the group's mean is computed exactly
    (binary fractions such as 0, 0.5, 1), the residue over ``std + 1e-6`` otherwise (eight
    rewards of 0.1 in float32: about 7e-3, not 0). verl broadcasts it over the
    answer's tokens and multiplies by the mask; verl's singleton groups (mean 0, std 1) do not occur
    here, G >= 2.
    """
    if not isinstance(norm_adv_by_std_in_grpo, bool):
        raise ValueError(f"`norm_adv_by_std_in_grpo` must be True or False; got {norm_adv_by_std_in_grpo!r}.")
    epsilon = check_nonneg_number(epsilon, "epsilon")
    return group_advantages(rewards, group_size, scale="group" if norm_adv_by_std_in_grpo else "none", std="sample",
                            eps=epsilon, zero_equal_groups=False)


def _as_token_mask(mask, n: int, rewards: torch.Tensor) -> torch.Tensor:
    m = mask if isinstance(mask, torch.Tensor) else as_float_tensor(mask, "mask")
    if m.dim() != 2 or m.shape[0] != n:
        raise ValueError(f"`mask` must be [N, T] with N = {n} (one row per answer); got shape {tuple(m.shape)}.")
    if m.dtype != torch.bool and not bool(((m == 0) | (m == 1)).all()):
        raise ValueError("`mask` must hold only 0 and 1 (or True/False); use a bool tensor.")
    return m.to(device=rewards.device, dtype=rewards.dtype)


def _masked_whiten(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """verl's ``masked_whiten``: token-weighted mean, Bessel variance, ``(x - mean) / sqrt(var + 1e-8)``."""
    n = m.sum()
    if float(n) < 2:
        raise ValueError("`mask` must have at least 2 real tokens to whiten over (verl's masked_var needs them).")
    mean = (x * m).sum() / n
    var = ((x - mean) ** 2 * m).sum() / n * (n / (n - 1)).to(torch.float32)
    return (x - mean) * torch.rsqrt(var + 1e-8)


def verl_reinforce_pp_advantages(rewards, mask, *, gamma: float = 1.0) -> torch.Tensor:
    """verl 0.9.1's ``reinforce_plus_plus`` estimator: discounted returns, whitened over the batch's tokens.

    The outcome reward of answer n sits on its last real token; the return of a real token is the
    reward times ``gamma ** k``, k the number of real tokens after it (``algorithm.gamma``,
    default 1.0: every token gets the reward). The returns are then whitened over *all real tokens
    of the batch* (mean and Bessel std, ``+ 1e-8`` under the square root): no group baseline at all,
    and an answer weighs by its length. Zero at padding.

    Args:
        rewards: ``[N]`` outcome rewards.
        mask: ``[N, T]`` 0/1, at least two real tokens in all.
        gamma: discount in [0, 1].

    Returns:
        ``[N, T]`` token advantages.
    """
    r = as_float_tensor(rewards, "rewards")
    if r.dim() != 1 or r.numel() == 0:
        raise ValueError(f"`rewards` must be [N], one outcome reward per answer; got shape {tuple(r.shape)}.")
    check_finite(r, "rewards")
    gamma = check_nonneg_number(gamma, "gamma")
    if gamma > 1.0:
        raise ValueError(f"`gamma` must be in [0, 1]; got {gamma!r}.")
    m = _as_token_mask(mask, r.shape[0], r)
    after = m.flip(1).cumsum(1).flip(1) - m  # real tokens after each position
    returns = r[:, None] * torch.pow(torch.full_like(m, gamma), after) * m
    return _masked_whiten(returns, m) * m


def verl_gdpo_advantages(rewards, group_size: int, mask, *, gdpo_reward_weights=None,
                         epsilon: float = 1e-6) -> torch.Tensor:
    """verl 0.9.1's ``gdpo`` estimator (``compute_gdpo_outcome_advantage``).

    Per reward dimension k (``algorithm.gdpo_reward_keys``), verl's ``grpo`` advantage with the std
    (the algorithm's ``norm_adv_by_std_in_grpo`` is not passed on); the weighted sum over k
    (``algorithm.gdpo_reward_weights``, default 1), broadcast over each answer's tokens; then
    whitened over *all real tokens of the batch* (token-weighted, unlike TRL's row-weighted
    ``normalize_then_sum``). verl reads the per-dimension rewards as float32.

    Args:
        rewards: ``[N]`` or ``[N, K]`` (one column per reward dimension).
        group_size: G.
        mask: ``[N, T]`` 0/1.
        gdpo_reward_weights: ``[K]`` weights.
        epsilon: added to each group's std (1e-6).

    Returns:
        ``[N, T]`` token advantages (constant over an answer's tokens, 0 at padding).
    """
    g = check_group_size(group_size)
    r, w = _rewards_per_func(rewards, g, gdpo_reward_weights, "gdpo_reward_weights")
    m = _as_token_mask(mask, r.shape[0], r)
    total = None
    for k in range(r.shape[1]):  # K reward dimensions, a handful
        a = verl_grpo_advantages(r[:, k], g, epsilon=epsilon)[:, None] * m
        total = w[k].to(r.dtype) * a if total is None else total + w[k].to(r.dtype) * a
    return _masked_whiten(total, m) * m


register_advantage(
    "trl-grpo", "TRL 1.16.0 GRPOTrainer: scale_rewards group/batch/none, both multi_objective_aggregation modes",
    ("scale_rewards", "multi_objective_aggregation", "reward_weights"),
)(trl_advantages)
register_advantage(
    "verl-grpo", "verl 0.9.1 grpo: (s - mean) / (torch.std + 1e-6), or s - mean with norm_adv_by_std_in_grpo=False",
    ("norm_adv_by_std_in_grpo", "epsilon"),
)(verl_grpo_advantages)
register_advantage("verl-rloo", "verl 0.9.1 rloo: s - mean of the other G - 1 rewards")(loo_advantages)
register_advantage(
    "verl-reinforce_plus_plus", "verl 0.9.1 reinforce_plus_plus: discounted returns whitened over the batch's tokens",
    ("mask", "gamma"), required=("mask",),
)(lambda rewards, group_size, *, mask, gamma=1.0: (as_grouped(rewards, group_size),
                                                   verl_reinforce_pp_advantages(rewards, mask, gamma=gamma))[1])
register_advantage(
    "verl-gdpo", "verl 0.9.1 gdpo: grpo per reward dimension, weighted sum, whitened over the batch's tokens",
    ("mask", "gdpo_reward_weights", "epsilon"), required=("mask",),
)(lambda rewards, group_size, *, mask, **options: verl_gdpo_advantages(rewards, group_size, mask, **options))
