"""grpo_core's TRL presets against TRL 1.16.0's ``GRPOTrainer._compute_loss`` on the same tensors.

Every preset on 24 random batches with its release defaults, then each option that changes the
arithmetic (delta, the KL term with and without the bias correction, sequence-level ratios, the
entropy mask, the rollout importance weights of all four modes, temperatures, clip ranges), and the
normaliser's scope: one batch split into micro-batches with gradient accumulation, and two
simulated processes. Loss, gradient with respect to log pi_theta and TRL's metrics, to 1e-6.
"""

from __future__ import annotations

import pytest
import torch

from conformance_harness import TrlHarness, both, check, random_batch
from grpo_core import preset_loss, rollout_importance_weights

PRESET_CONFIG = {
    "trl-grpo": dict(loss_type="grpo"),
    "trl-bnpo": dict(loss_type="bnpo"),
    "trl-dr_grpo": dict(loss_type="dr_grpo"),
    "trl-dapo": dict(loss_type="dapo"),
    "trl-cispo": dict(loss_type="cispo"),
    "trl-sapo": dict(loss_type="sapo"),
}
FUNCTION = "trl GRPOTrainer._compute_loss"
SEEDS = range(24)


def _ours(name, batch, **ov):
    return lambda leaf: preset_loss(name, leaf, batch.old, batch.ref, batch.adv, batch.mask,
                                    entropy=batch.entropy, **ov)


def _run(trl_harness, name, batch, ours_ov=None, cfg=None, label=None, **call):
    tr = trl_harness.trainer(**{**PRESET_CONFIG[name], **(cfg or {})})
    with_ref = tr.beta != 0.0
    ours, theirs = both(_ours(name, batch, **(ours_ov or {})),
                        lambda leaf: TrlHarness.loss(tr, batch, leaf, with_ref=with_ref, **call), batch)
    check(label or name, FUNCTION + f' (loss_type="{PRESET_CONFIG[name]["loss_type"]}")', ours, theirs, batch)
    return ours, theirs


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", sorted(PRESET_CONFIG))
def test_preset_with_release_defaults(trl_harness, name, seed):
    _run(trl_harness, name, random_batch(seed))


OPTIONS = [
    # (label, presets, grpo_core overrides, GRPOConfig fields)
    ("delta (two-sided)", ["trl-grpo", "trl-dapo"], dict(delta=3.0, eps_high=0.28), dict(delta=3.0, epsilon_high=0.28)),
    ("clip range", ["trl-grpo", "trl-bnpo"], dict(eps_low=0.1, eps_high=0.3), dict(epsilon=0.1, epsilon_high=0.3)),
    ("beta, bias-corrected k3", ["trl-grpo", "trl-dapo", "trl-dr_grpo", "trl-cispo", "trl-sapo"], dict(beta=0.04),
     dict(beta=0.04)),
    ("beta, plain k3", ["trl-grpo", "trl-bnpo"], dict(beta=0.04, kl_bias_correction=False),
     dict(beta=0.04, use_bias_correction_kl=False)),
    ("sequence level (GSPO)", ["trl-grpo"], dict(ratio_level="sequence", eps_low=3e-4, eps_high=4e-4),
     dict(importance_sampling_level="sequence", epsilon=3e-4, epsilon_high=4e-4)),
    ("sequence level, beta", ["trl-grpo", "trl-dapo"], dict(ratio_level="sequence", beta=0.04),
     dict(importance_sampling_level="sequence", beta=0.04)),
    ("sequence level, cispo and sapo", ["trl-cispo", "trl-sapo"], dict(ratio_level="sequence"),
     dict(importance_sampling_level="sequence")),
    ("top_entropy_quantile 0.5", ["trl-grpo", "trl-dapo", "trl-sapo"], dict(top_entropy_quantile=0.5),
     dict(top_entropy_quantile=0.5)),
    ("top_entropy_quantile 0.2", ["trl-grpo"], dict(top_entropy_quantile=0.2), dict(top_entropy_quantile=0.2)),
    ("cispo epsilon_high=5", ["trl-cispo"], dict(eps_high=4.0), dict(epsilon_high=5.0)),
    ("sapo temperatures", ["trl-sapo"], dict(sapo_tau_pos=0.9, sapo_tau_neg=1.3),
     dict(sapo_temperature_pos=0.9, sapo_temperature_neg=1.3)),
    ("max_completion_length 64", ["trl-dr_grpo"], dict(max_len=64), dict(max_completion_length=64)),
]


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("label,presets,ours,cfg", OPTIONS, ids=[o[0] for o in OPTIONS])
def test_options(trl_harness, label, presets, ours, cfg, seed):
    for name in presets:
        _run(trl_harness, name, random_batch(100 + seed), ours, cfg, label=f"{name}, {label}")


IS_MODES = [("token", "truncate"), ("token", "mask"), ("sequence", "truncate"), ("sequence", "mask")]


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("bounds", [(None, 3.0), (0.8, 1.2)], ids=["default bounds", "0.8-1.2"])
@pytest.mark.parametrize("level,mode", IS_MODES, ids=[f"{a}_{b}" for a, b in IS_MODES])
def test_rollout_importance_sampling(trl_harness, level, mode, bounds, seed):
    """TRL computes the ratio in _generate_and_score_completions (with vLLM); the loss multiplies it in."""
    lo, hi = bounds
    batch = random_batch(200 + seed, empty=False, min_len=1)
    gen = trl_harness.trainer(rollout=True, vllm_importance_sampling_mode=f"{level}_{mode}",
                              vllm_importance_sampling_clip_max=hi, vllm_importance_sampling_clip_min=lo)
    out, _ = TrlHarness.generate(gen, batch, batch.rewards, vllm=True)
    ratio = out["importance_sampling_ratio"]
    ours_w = rollout_importance_weights(batch.old, batch.roll, batch.mask, level, mode, lo, hi)
    real = batch.mask > 0
    theirs_w = ratio.expand_as(batch.old) if ratio.shape[1] == 1 else ratio
    assert torch.allclose(ours_w[real], theirs_w[real].to(ours_w.dtype), rtol=1e-12, atol=0)
    ov = dict(rollout_logp=batch.roll, is_level=level, is_mode=mode, is_max=hi)
    if lo is not None:
        ov["is_min"] = lo
    for name in ("trl-grpo", "trl-dapo"):
        _run(trl_harness, name, batch, ov, label=f"{name}, rollout IS {level}_{mode}", is_ratio=ratio)
    if (level, mode, bounds) == ("sequence", "mask", (None, 3.0)):  # TRL's default mode: the preset's default
        _run(trl_harness, "trl-grpo", batch, dict(rollout_logp=batch.roll), label="trl-grpo, rollout IS defaults",
             is_ratio=ratio)


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("ga", [2, 3])
@pytest.mark.parametrize("name", ["trl-grpo", "trl-bnpo", "trl-dr_grpo", "trl-sapo"])
def test_gradient_accumulation_local_normalisers(trl_harness, name, ga, seed):
    """grpo/bnpo/dr_grpo/sapo divide each micro-batch's own mean by the accumulation steps."""
    batch = random_batch(300 + seed, groups=3, G=4)
    cuts = torch.linspace(0, batch.B, ga + 1).round().long().tolist()
    for a, b in zip(cuts[:-1], cuts[1:]):
        micro = batch.rows(slice(a, b))
        _run(trl_harness, name, micro, dict(grad_accum_steps=ga), label=f"{name}, {ga} micro-batches",
             ga=ga)


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("ga", [2, 3])
@pytest.mark.parametrize("name", ["trl-dapo", "trl-cispo"])
def test_gradient_accumulation_global_normaliser(trl_harness, name, ga, seed):
    """dapo/cispo divide by the whole batch's tokens: the micro-batch losses sum to the full batch's."""
    batch = random_batch(400 + seed, groups=3, G=4)
    n = int(batch.mask.sum())
    cuts = torch.linspace(0, batch.B, ga + 1).round().long().tolist()
    total_ours, total_theirs = 0.0, 0.0
    for a, b in zip(cuts[:-1], cuts[1:]):
        micro = batch.rows(slice(a, b))
        ours, theirs = _run(trl_harness, name, micro, dict(num_items_in_batch=n),
                            cfg=dict(gradient_accumulation_steps=ga), label=f"{name}, {ga} micro-batches",
                            num_items=n, ga=ga)
        total_ours += float(ours[0])
        total_theirs += float(theirs[0])
    full = float(preset_loss(name, batch.logp, batch.old, None, batch.adv, batch.mask)[0])
    assert abs(total_ours - full) <= 1e-12 and abs(total_theirs - full) <= 1e-9


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("name", ["trl-dapo", "trl-cispo"])
def test_two_processes(trl_harness, name, seed):
    """Each process sees half the answers; num_items_in_batch counts both; DDP averages the gradients."""
    batch = random_batch(500 + seed, groups=2, G=4)
    n = int(batch.mask.sum())
    halves = [batch.rows(slice(0, batch.B // 2)), batch.rows(slice(batch.B // 2, batch.B))]
    grads = []
    for part in halves:
        ours, _ = _run(trl_harness, name, part, dict(num_items_in_batch=n, num_processes=2),
                       label=f"{name}, 2 processes", num_items=n, processes=2)
        grads.append(ours[1])
    leaf = batch.leaf()
    loss, _ = preset_loss(name, leaf, batch.old, None, batch.adv, batch.mask)
    (g,) = torch.autograd.grad(loss, leaf)
    ddp = torch.cat(grads) / 2  # the average of the two processes' gradients
    assert torch.allclose(ddp, g, rtol=1e-10, atol=1e-14)
