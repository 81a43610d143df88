"""grpo_core's verl presets against verl 0.9.1's ``core_algos`` policy losses, ``agg_loss`` and
``kl_penalty``, called directly, on the same tensors.

Every preset on 24 random batches whose log-ratios reach 25 (past the +-20 clamp) and whose bad
answers' ratios pass the dual clip; then the aggregation modes, the KL term of every kind, the
rollout importance weights (``rollout_corr_helper``), one batch in micro-batches with verl's
global normalisers, and two data-parallel ranks. Loss, gradient and verl's metrics, to 1e-6.
"""

from __future__ import annotations

import pytest
import torch

from conformance_harness import RECORDER, both, check, random_batch, verl_config, verl_is_weights, verl_loss
from grpo_core import preset_loss

PRESET_MODE = {
    "verl-vanilla": ("vanilla", {}),
    "verl-gspo": ("gspo", dict(clip_ratio_low=3e-4, clip_ratio_high=4e-4, loss_agg_mode="seq-mean-token-mean")),
    "verl-cispo": ("cispo", {}),
    "verl-geo_mean": ("geo_mean", {}),
    "verl-sapo": ("sapo", {}),
}
SEEDS = range(24)


def _fn(name):
    mode = PRESET_MODE[name][0]
    return f"verl core_algos.compute_policy_loss_{mode}"


def _run(name, batch, ours_ov=None, cfg=None, label=None, **call):
    mode, base = PRESET_MODE[name]
    c = verl_config(mode, **{**base, **(cfg or {})})
    ours, theirs = both(
        lambda leaf: preset_loss(name, leaf, batch.old, batch.ref, batch.adv, batch.mask, **(ours_ov or {})),
        lambda leaf: verl_loss(c, batch, leaf, **call), batch)
    check(label or name, _fn(name) + (" + kl_penalty, agg_loss" if call.get("kl_coef") else ""), ours, theirs,
          batch)
    return ours, theirs


def _far_batch(seed, **kw):
    """Log-ratios up to 25 (verl clamps at 20); gspo and geo_mean get at most 8 (their clamps differ)."""
    return random_batch(seed, far=25.0, **kw)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", sorted(PRESET_MODE))
def test_preset_with_release_defaults(name, seed):
    far = 8.0 if name in ("verl-geo_mean",) else 25.0
    batch = random_batch(seed, far=far)
    if name == "verl-gspo" and seed % 3 == 0:  # a whole answer far off-policy: the clamp at log-ratio 10 acts
        i = int(batch.lengths.argmax())
        batch.logp[i] = batch.old[i] + 11.0 + torch.rand(batch.T, dtype=torch.float64)
    _run(name, batch)


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("agg", ["token-mean", "seq-mean-token-mean", "seq-mean-token-sum", "seq-mean-token-sum-norm"])
@pytest.mark.parametrize("name", ["verl-vanilla", "verl-cispo", "verl-gspo"])
def test_aggregation_modes(name, agg, seed):
    batch = _far_batch(600 + seed) if name != "verl-gspo" else random_batch(600 + seed)
    _run(name, batch, dict(agg=agg), dict(loss_agg_mode=agg), label=f"{name}, {agg}")
    if agg == "seq-mean-token-sum-norm":  # loss_scale_factor: Dr. GRPO's constant
        _run(name, batch, dict(agg=agg, max_len=512), dict(loss_agg_mode=agg), label=f"{name}, {agg}, 512",
             loss_scale_factor=512)


OPTIONS = [
    ("clip range", ["verl-vanilla", "verl-cispo", "verl-geo_mean"], dict(eps_low=0.4, eps_high=0.28),
     dict(clip_ratio_low=0.4, clip_ratio_high=0.28)),
    ("clip_ratio_c 1.5", ["verl-vanilla"], dict(dual_clip=1.5), dict(clip_ratio_c=1.5)),
    ("sapo temperatures", ["verl-sapo"], dict(sapo_tau_pos=0.8, sapo_tau_neg=1.6), dict(tau_pos=0.8, tau_neg=1.6)),
]


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("label,presets,ours,cfg", OPTIONS, ids=[o[0] for o in OPTIONS])
def test_options(label, presets, ours, cfg, seed):
    for name in presets:
        batch = random_batch(700 + seed, far=8.0 if name == "verl-geo_mean" else 25.0)
        _run(name, batch, ours, cfg, label=f"{name}, {label}")


KL_KINDS = [("k1", "kl"), ("k2", "mse"), ("k3", "low_var_kl"), ("k1+", "k1+"), ("k3+", "k3+"), ("k2+", "k2+")]


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("ours_kind,verl_kind", KL_KINDS, ids=[k[1] for k in KL_KINDS])
@pytest.mark.parametrize("name", sorted(PRESET_MODE))
def test_kl_loss_term(name, ours_kind, verl_kind, seed):
    """use_kl_loss=True: kl_loss_coef x agg_loss(kl_penalty(...), loss_agg_mode), as ppo_loss adds it.
    The reference is up to 25 nats away on some tokens: verl's k3 clamps (+-20, +-10) act."""
    batch = random_batch(800 + seed, far=8.0, ref_far=25.0)
    ov = dict(beta=0.01, kl=ours_kind)
    # verl's sapo and geo_mean fix their policy term's aggregation; the KL term uses loss_agg_mode
    _run(name, batch, ov, dict(use_kl_loss=True, kl_loss_coef=0.01, kl_loss_type=verl_kind),
         label=f"{name}, KL {verl_kind}", kl_coef=0.01, kl_type=verl_kind)


IS_CASES = [("token", 2.0), ("sequence", 2.0), ("token", "0.5_1.5"), ("sequence", "0.5_2.0"), ("token", 1.2)]


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("level,threshold", IS_CASES, ids=[f"{a}-{b}" for a, b in IS_CASES])
@pytest.mark.parametrize("name", sorted(PRESET_MODE))
def test_rollout_importance_sampling(name, level, threshold, seed):
    """rollout_is weights from rollout_corr_helper, multiplied in by each policy loss (geo_mean: their
    geometric mean per answer)."""
    batch = random_batch(900 + seed, far=8.0)
    try:
        w = verl_is_weights(batch, level, threshold)
    except ZeroDivisionError:
        # verl 0.9.1 divides by zero in its own IS metrics (effective sample size) when IcePop masks
        # every token; nothing to compare with, so check that grpo_core masks them all too
        from grpo_core import rollout_importance_weights

        lo, hi = (float(x) for x in threshold.split("_"))
        ours = rollout_importance_weights(batch.old, batch.roll, batch.mask, level, "mask", lo, hi)
        assert float(ours[batch.mask > 0].abs().max()) == 0.0
        RECORDER.event("verl rollout_corr_helper ZeroDivisionError: IcePop masked every token")
        return
    if isinstance(threshold, str):
        lo, hi = (float(x) for x in threshold.split("_"))
        ov = dict(rollout_logp=batch.roll, is_level=level, is_mode="mask", is_min=lo, is_max=hi)
    else:
        ov = dict(rollout_logp=batch.roll, is_level=level, is_max=threshold)
    _run(name, batch, ov, label=f"{name}, rollout_is {level} {threshold}", is_weights=w)
    if (level, threshold) == ("sequence", 2.0):  # the dataclass default: the preset's default
        _run(name, batch, dict(rollout_logp=batch.roll), label=f"{name}, rollout_is defaults", is_weights=w)


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("agg", ["token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm"])
@pytest.mark.parametrize("name", ["verl-vanilla", "verl-cispo", "verl-gspo", "verl-sapo"])
def test_micro_batches_with_global_normalisers(name, agg, seed):
    """The trainer passes the mini-batch's token and answer counts to every micro-batch's loss, so the
    micro-batch losses sum to the mini-batch's."""
    if name == "verl-sapo" and agg != "seq-mean-token-mean":
        return _run_sapo_kl_agg(agg, seed)
    batch = random_batch(1000 + seed, groups=3, G=4, far=25.0 if name != "verl-gspo" else 8.0)
    n_tok, n_seq = int(batch.mask.sum()), batch.B
    ov = dict(num_items_in_batch=n_tok) if agg == "token-mean" else dict(num_sequences=n_seq)
    if name != "verl-sapo":
        ov["agg"] = agg
    cfg = {} if name == "verl-sapo" else dict(loss_agg_mode=agg)
    total_ours, total_theirs = 0.0, 0.0
    for a, b in ((0, 5), (5, 8), (8, batch.B)):
        micro = batch.rows(slice(a, b))
        ours, theirs = _run(name, micro, ov, cfg, label=f"{name}, micro-batches, {agg}",
                            batch_num_tokens=n_tok, global_batch_size=n_seq)
        total_ours += float(ours[0])
        total_theirs += float(theirs[0])
    full_ov = {"agg": agg} if name != "verl-sapo" else {}
    full = float(preset_loss(name, batch.logp, batch.old, None, batch.adv, batch.mask, **full_ov)[0])
    assert abs(total_ours - full) <= 1e-12 * max(1.0, abs(full)) and abs(total_theirs - full) <= 1e-9 * max(1.0, abs(full))


def _run_sapo_kl_agg(agg, seed):
    """verl-sapo's KL term follows loss_agg_mode while its policy term stays seq-mean-token-mean."""
    batch = random_batch(1050 + seed, far=8.0)
    _run("verl-sapo", batch, dict(beta=0.01, kl_agg=agg), dict(use_kl_loss=True, kl_loss_coef=0.01, loss_agg_mode=agg),
         label=f"verl-sapo, KL with loss_agg_mode {agg}", kl_coef=0.01, kl_agg=agg)


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("agg", ["token-mean", "seq-mean-token-mean"])
@pytest.mark.parametrize("name", ["verl-vanilla", "verl-cispo", "verl-sapo"])
def test_two_data_parallel_ranks(name, agg, seed):
    """dp_size=2: each rank's loss is multiplied by 2 and DDP averages the gradients: the average
    is the full batch's gradient."""
    batch = random_batch(1100 + seed, groups=2, G=4, far=8.0)
    n_tok, n_seq = int(batch.mask.sum()), batch.B
    # verl's sapo aggregates with seq-mean-token-mean whatever loss_agg_mode: its count is the answers'
    by_tokens = agg == "token-mean" and name != "verl-sapo"
    ov = dict(num_items_in_batch=n_tok) if by_tokens else dict(num_sequences=n_seq)
    ov["num_processes"] = 2
    if name != "verl-sapo":
        ov["agg"] = agg
    cfg = {} if name == "verl-sapo" else dict(loss_agg_mode=agg)
    grads = []
    for part in (batch.rows(slice(0, batch.B // 2)), batch.rows(slice(batch.B // 2, batch.B))):
        ours, _ = _run(name, part, ov, cfg, label=f"{name}, 2 ranks, {agg}", dp_size=2, batch_num_tokens=n_tok,
                       global_batch_size=n_seq)
        grads.append(ours[1])
    leaf = batch.leaf()
    full_ov = {"agg": agg} if name != "verl-sapo" else {}
    loss, _ = preset_loss(name, leaf, batch.old, None, batch.adv, batch.mask, **full_ov)
    (g,) = torch.autograd.grad(loss, leaf)
    assert torch.allclose(torch.cat(grads) / 2, g, rtol=1e-10, atol=1e-14)


def test_ppo_loss_combination_is_what_the_suite_composes():
    """verl's own ppo_loss (workers/utils/losses.py: pg + kl_loss_coef * agg_loss(kl_penalty)) equals the
    composition the KL tests use, on a batch in verl's no-padding layout."""
    from tensordict import TensorDict
    from verl.utils import tensordict_utils as tu
    from verl.workers.utils.losses import ppo_loss

    for seed in range(4):
        batch = random_batch(1200 + seed, far=8.0, ref_far=5.0, empty=False, min_len=1)
        cfg = verl_config("vanilla", use_kl_loss=True, kl_loss_coef=0.01, kl_loss_type="low_var_kl")
        leaf = batch.leaf()
        P = 2
        pieces = []
        for i in range(batch.B):  # row i's response log-probs sit at [P - 1, P - 1 + R_i) of its P + R_i slots
            pieces += [torch.zeros(P - 1, dtype=torch.float64), leaf[i, : int(batch.lengths[i])],
                       torch.zeros(1, dtype=torch.float64)]
        td = TensorDict(dict(prompts=torch.ones(batch.B, P, dtype=torch.long),
                             responses=torch.ones(batch.B, batch.T, dtype=torch.long),
                             attention_mask=torch.cat([torch.ones(batch.B, P, dtype=torch.long), batch.mask.long()], 1),
                             response_mask=batch.mask.long(), old_log_probs=batch.old,
                             advantages=batch.adv[:, None] * batch.mask, ref_log_prob=batch.ref), batch_size=[batch.B])
        tu.assign_non_tensor(td, dp_size=1, batch_num_tokens=int(batch.mask.sum()), global_batch_size=batch.B)
        total, _ = ppo_loss(cfg, {"log_probs": torch.cat(pieces)}, td)
        (g_verl,) = torch.autograd.grad(total, leaf)
        mine = batch.leaf()
        loss, _ = preset_loss("verl-vanilla", mine, batch.old, batch.ref, batch.adv, batch.mask, beta=0.01)
        (g_ours,) = torch.autograd.grad(loss, mine)
        real = batch.mask > 0
        dl = abs(float(loss) - float(total))
        dg = float((g_ours[real] - g_verl[real]).abs().max())
        RECORDER.add("verl-vanilla, beta=0.01", "verl workers.utils.losses.ppo_loss", loss=dl, grad=dg)
        assert dl <= 1e-6 and dg <= 1e-6
