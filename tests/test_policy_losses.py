"""The keywords grpo_loss gained for TRL and verl: hand-computed values, limits, and gradients by
autograd against their closed forms. (The comparison with the frameworks themselves is
tests/conformance, `make conformance`.)"""

import math

import pytest
import torch

from grpo_core import (
    KL_KINDS,
    POLICY_LOSSES,
    aggregate,
    aggregation_weights,
    clipped_surrogate,
    grpo_loss,
    high_entropy_mask,
    kl_estimate,
    kl_k2,
    kl_k3,
    rollout_importance_weights,
)

F64 = torch.float64


def _one(ratios, adv):
    """Single-token answers with the given ratios and advantages: logp = log r, old = 0."""
    r = torch.as_tensor(ratios, dtype=F64)
    return r.log()[:, None], torch.zeros(len(r), 1, dtype=F64), torch.as_tensor(adv, dtype=F64), torch.ones(len(r), 1)


def _grad(loss_fn, logp):
    lp = logp.clone().requires_grad_(True)
    loss, metrics = loss_fn(lp)
    (g,) = torch.autograd.grad(loss, lp)
    return loss.detach(), g, metrics


def _batch(seed=0, b=6, t=5):
    g = torch.Generator().manual_seed(seed)
    old = -torch.rand(b, t, generator=g, dtype=F64) * 2
    logp = old + 0.4 * torch.randn(b, t, generator=g, dtype=F64)
    ref = old + 0.3 * torch.randn(b, t, generator=g, dtype=F64)
    lengths = torch.tensor([5, 3, 0, 2, 5, 1])[:b]
    mask = (torch.arange(t)[None, :] < lengths[:, None]).to(F64)
    adv = torch.tensor([1.0, -0.5, 0.7, -1.2, 0.3, 0.0], dtype=F64)[:b]
    return logp, old, ref, adv, mask


# ---------------------------------------------------------------------------- dual clip and delta


def test_dual_clip_caps_a_bad_answers_loss_at_c_times_abs_a():
    logp, old, adv, m = _one([5.0, 2.0, 0.5, 5.0], [-1.0, -1.0, -1.0, 1.0])
    loss, g, metrics = _grad(lambda lp: grpo_loss(lp, old, None, adv, m, beta=0.0, agg="token-mean", dual_clip=3.0), logp)
    # per token: min(c|A|, max(-A r, -A clip(r))) for A < 0: 3, 2, 0.8 (clipped below); A > 0, r = 5: -1.2
    assert loss.item() == pytest.approx((3.0 + 2.0 + 0.8 - 1.2) / 4)
    # gradient d/dlog r of -A r = -A r where unclipped (r = 2), 0 where the dual clip or the clip acts
    assert torch.allclose(g[:, 0], torch.tensor([0.0, 2.0, 0.0, 0.0], dtype=F64) / 4)
    assert metrics["clip_frac_dual"] == pytest.approx(0.25)


def test_delta_equals_the_dual_clip_for_every_ratio_and_sign():
    r = torch.exp(torch.linspace(-4, 4, 801, dtype=F64))
    for a in (-2.0, -0.3, 0.0, 0.5, 1.5):
        adv = torch.full_like(r, a)
        with_delta = clipped_surrogate(r.log(), torch.zeros_like(r), adv, 0.2, 0.28, delta=3.0)
        with_dual = clipped_surrogate(r.log(), torch.zeros_like(r), adv, 0.2, 0.28, dual_clip=3.0)
        assert torch.equal(with_delta, with_dual)
    # and it only ever changes bad answers: for A > 0 nothing moves
    plain = clipped_surrogate(r.log(), torch.zeros_like(r), torch.ones_like(r), 0.2, 0.28)
    assert torch.equal(plain, clipped_surrogate(r.log(), torch.zeros_like(r), torch.ones_like(r), 0.2, 0.28, delta=3.0))


def test_log_ratio_clamp_holds_the_ratio_and_zeroes_the_gradient_beyond():
    logp, old, adv, m = _one([math.exp(25.0), math.exp(15.0)], [-1.0, -1.0])
    loss, g, _ = _grad(lambda lp: grpo_loss(lp, old, None, adv, m, beta=0.0, agg="token-mean", log_ratio_clamp=20.0),
                       logp)
    assert loss.item() == pytest.approx((math.exp(20.0) + math.exp(15.0)) / 2, rel=1e-12)
    assert g[0, 0] == 0 and g[1, 0].item() == pytest.approx(math.exp(15.0) / 2, rel=1e-12)
    one_sided = clipped_surrogate(torch.tensor([-30.0, 30.0], dtype=F64), torch.zeros(2, dtype=F64),
                                  torch.tensor([-1.0, -1.0], dtype=F64), log_ratio_clamp=(None, 10.0))
    assert one_sided[0].item() == pytest.approx(-0.8) and one_sided[1].item() == pytest.approx(-math.exp(10.0))


# ---------------------------------------------------------------------------- the other kinds


def test_every_kind_is_registered_with_a_description():
    assert set(POLICY_LOSSES) == {"clip", "cispo", "sapo", "gmpo", "gspo"}
    assert all(k.description for k in POLICY_LOSSES.values())


def test_cispo_gradient_is_the_clipped_weight_times_minus_a():
    logp, old, adv, m = _one([0.5, 1.1, 3.0, 3.0], [1.0, -2.0, 1.0, -1.0])
    loss, g, metrics = _grad(lambda lp: grpo_loss(lp, old, None, adv, m, beta=0.0, agg="seq-mean-token-sum",
                                                  loss="cispo"), logp)
    w = torch.tensor([0.8, 1.1, 1.2, 1.2], dtype=F64)  # clip(r, 0.8, 1.2), no gradient of its own
    assert torch.allclose(g[:, 0], -w * adv / 4)
    assert loss.item() == pytest.approx(float((-w * adv * logp[:, 0]).mean()))
    assert metrics["clip_frac_high"] == pytest.approx(0.5) and metrics["clip_frac_low"] == pytest.approx(0.25)
    # TRL's cispo: a cap at epsilon_high itself, no lower bound (eps_low = 1, eps_high = cap - 1)
    _, g_trl, _ = _grad(lambda lp: grpo_loss(lp, old, None, adv, m, beta=0.0, agg="seq-mean-token-sum", loss="cispo",
                                             eps_low=1.0, eps_high=-0.8), logp)
    assert torch.allclose(g_trl[:, 0], -torch.tensor([0.2, 0.2, 0.2, 0.2], dtype=F64) * adv / 4)


def test_sapo_gradient_is_four_sigma_one_minus_sigma_times_r():
    ratios = torch.tensor([0.6, 1.0, 1.7, 1.0], dtype=F64)
    logp, old, adv, m = _one(ratios, [1.0, 1.0, -1.0, -1.0])
    loss, g, metrics = _grad(lambda lp: grpo_loss(lp, old, None, adv, m, beta=0.0, agg="seq-mean-token-sum",
                                                  loss="sapo"), logp)
    tau = torch.tensor([1.0, 1.0, 1.05, 1.05], dtype=F64)
    s = torch.sigmoid(tau * (ratios - 1))
    assert loss.item() == pytest.approx(float((-(4 / tau) * s * adv).mean()))
    assert torch.allclose(g[:, 0], -4 * s * (1 - s) * ratios * adv / 4)
    assert g[1, 0].item() == pytest.approx(-0.25)  # at r = 1 the gate's slope is that of r A
    assert metrics["clip_frac"] == 0.0


def test_gmpo_clips_in_log_space_and_averages_geometrically():
    d = torch.tensor([[0.1, 0.6, -0.1], [0.3, -0.5, 0.0]], dtype=F64)
    old = torch.zeros(2, 3, dtype=F64)
    adv = torch.tensor([1.0, -2.0], dtype=F64)
    m = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    loss, g, metrics = _grad(lambda lp: grpo_loss(lp, old, None, adv, m, beta=0.0, loss="gmpo", eps_low=0.4,
                                                  eps_high=0.4), d)
    # A > 0: the log-ratio is capped at +0.4 (0.6 -> 0.4, flat); A < 0: floored at -0.4 (-0.5 -> -0.4, flat)
    rho0, rho1 = math.exp((0.1 + 0.4 - 0.1) / 3), math.exp((0.3 - 0.4) / 2)
    assert loss.item() == pytest.approx((-1.0 * rho0 + 2.0 * rho1) / 2)
    assert torch.allclose(g, torch.tensor([[-rho0 / 3 / 2, 0.0, -rho0 / 3 / 2], [2 * rho1 / 2 / 2, 0.0, 0.0]],
                                          dtype=F64))
    assert metrics["clip_frac_high"] == pytest.approx(1 / 5) and metrics["clip_frac_low"] == pytest.approx(1 / 5)


@pytest.mark.parametrize("agg", ["seq-mean-token-mean", "token-mean", "seq-mean-token-sum", "seq-mean-token-sum-norm"])
def test_verl_gspo_form_equals_trl_sequence_ratio_until_its_clamp(agg):
    logp, old, _, adv, mask = _batch(3)
    trl_form = lambda lp: grpo_loss(lp, old, None, adv, mask, beta=0.0, agg=agg, ratio_level="sequence")  # noqa: E731
    verl_form = lambda lp: grpo_loss(lp, old, None, adv, mask, beta=0.0, agg=agg, loss="gspo",  # noqa: E731
                                     log_ratio_clamp=(None, 10.0))
    (l1, g1, _), (l2, g2, _) = _grad(trl_form, logp), _grad(verl_form, logp)
    assert torch.allclose(l1, l2, rtol=1e-12) and torch.allclose(g1, g2, rtol=1e-10, atol=1e-15)
    far = logp.clone()
    far[1] = old[1] + 12.0  # answer 1 (A < 0, unclipped above): its mean log-ratio passes 10, where verl holds it
    (l1, _, _), (l2, g2, _) = _grad(trl_form, far), _grad(verl_form, far)
    assert not torch.allclose(l1, l2)


# ---------------------------------------------------------------------------- KL


def test_k3_plus_has_k3s_value_and_k2s_gradient():
    logp, _, ref, _, _ = _batch(1)
    a, b = logp.clone().requires_grad_(True), logp.clone().requires_grad_(True)
    plus = kl_estimate(a, ref, "k3+")
    assert torch.equal(plus.detach(), kl_k3(logp, ref))
    plus.sum().backward()
    kl_k2(b, ref).sum().backward()
    assert torch.allclose(a.grad, logp - ref) and torch.allclose(a.grad, b.grad)
    assert set(KL_KINDS) == {"k1", "k2", "k3", "k1+", "k2+", "k3+"}


def test_verl_clamps_of_low_var_kl():
    logp = torch.tensor([0.0, 0.0, 0.0, 0.0], dtype=F64, requires_grad=True)
    ref = torch.tensor([25.0, 2.0, -15.0, -30.0], dtype=F64)
    v = kl_estimate(logp, ref, "k3", clamp="verl")
    # log_r = 25 -> 20, k3 = e^20 - 21 -> clamped to 10; log_r = 2: e^2 - 3; -15: 14 -> 10; -30 -> -20 -> 19 -> 10
    assert torch.allclose(v.detach(), torch.tensor([10.0, math.exp(2) - 3, 10.0, 10.0], dtype=F64))
    (g,) = torch.autograd.grad(v.sum(), logp)
    assert g[0] == 0 and g[2] == 0 and g[3] == 0 and g[1].item() == pytest.approx(1 - math.exp(2))
    assert torch.equal(kl_estimate(logp, ref, "k1", clamp="verl"), kl_estimate(logp, ref, "k1"))


def test_bias_corrected_k3_gradient_closed_form():
    """k3 x r with r = pi_theta/pi_old, both with gradient: d/dlogp = r (1 - rho) + r k3 (rho = pi_ref/pi_theta)."""
    logp, old, ref, adv, mask = _batch(2)
    full = torch.ones_like(mask)
    _, g, metrics = _grad(lambda lp: grpo_loss(lp, old, ref, torch.zeros_like(adv), full, beta=1.0, agg="token-mean",
                                               kl_bias_correction=True), logp)
    r, rho = (logp - old).exp(), (ref - logp).exp()
    k3 = kl_k3(logp, ref)
    assert torch.allclose(g, (r * (1 - rho) + r * k3) / full.sum(), rtol=1e-10)
    assert metrics["kl"] == pytest.approx(float((k3 * r).mean()))
    # on-policy (r = 1) the value is plain k3 and the gradient gains exactly k3: the score-function term
    _, g_on, _ = _grad(lambda lp: grpo_loss(lp, lp.detach(), ref, torch.zeros_like(adv), full, beta=1.0,
                                            agg="token-mean", kl_bias_correction=True), logp)
    assert torch.allclose(g_on, ((1 - rho) + k3) / full.sum(), rtol=1e-10)


# ---------------------------------------------------------------------------- rollout IS, entropy mask


def test_rollout_weights_by_hand():
    old = torch.zeros(2, 3, dtype=F64)
    roll = torch.tensor([[-0.5, 0.2, 0.0], [0.3, 0.3, 9.0]], dtype=F64)  # position (1, 2) is padding
    m = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]], dtype=F64)
    w = rollout_importance_weights(old, roll, m, "token", "truncate", None, 1.2)
    assert torch.allclose(w, torch.tensor([[1.2, math.exp(-0.2), 1.0], [math.exp(-0.3), math.exp(-0.3), 1.0]],
                                          dtype=F64))
    seq = rollout_importance_weights(old, roll, m, "sequence", "mask", 0.5, 2.0)
    # products exp(0.5 - 0.2) = 1.35 (kept) and exp(-0.6) = 0.549 (kept); with is_min 0.6 the second is masked
    assert torch.allclose(seq[:, 0], torch.tensor([math.exp(0.3), math.exp(-0.6)], dtype=F64))
    assert rollout_importance_weights(old, roll, m, "sequence", "mask", 0.6, 2.0)[1].abs().max() == 0


def test_rollout_weight_multiplies_the_policy_term_without_gradient():
    logp, old, ref, adv, mask = _batch(4)
    roll = old + 0.2
    w = rollout_importance_weights(old, roll, mask)
    _, g_plain, _ = _grad(lambda lp: grpo_loss(lp, old, None, adv, mask, beta=0.0), logp)
    _, g_w, metrics = _grad(lambda lp: grpo_loss(lp, old, None, adv, mask, beta=0.0, rollout_logp=roll), logp)
    assert torch.allclose(g_w, g_plain * w)
    assert metrics["is_weight_mean"] == pytest.approx(math.exp(-0.2))


def test_entropy_mask_keeps_the_top_quantile_of_the_policy_term_only():
    ent = torch.tensor([[0.1, 0.5, 0.9, 2.0]], dtype=F64)
    m = torch.ones(1, 4)
    keep = high_entropy_mask(ent, m, 0.5)  # threshold: median of [0.1, 0.5, 0.9, 2.0] = 0.7
    assert keep.tolist() == [[False, False, True, True]]
    logp, old, ref = torch.zeros(1, 4, dtype=F64), torch.zeros(1, 4, dtype=F64), torch.full((1, 4), -0.5, dtype=F64)
    _, g, metrics = _grad(lambda lp: grpo_loss(lp, old, ref, torch.ones(1, dtype=F64), m, beta=0.1, agg="token-mean",
                                               entropy=ent, top_entropy_quantile=0.5), logp)
    k3_grad = 0.1 * (1 - math.exp(-0.5)) / 4
    assert torch.allclose(g[0], torch.tensor([k3_grad, k3_grad, k3_grad - 0.25, k3_grad - 0.25], dtype=F64))
    assert metrics["entropy_kept_frac"] == 0.5 and metrics["entropy"] == pytest.approx(0.875)


# ---------------------------------------------------------------------------- the normaliser's scope


@pytest.mark.parametrize("mode", ["token-mean", "seq-mean-token-mean", "seq-mean-token-sum", "seq-mean-token-sum-norm"])
def test_micro_batches_with_whole_batch_counts_sum_to_the_batch(mode):
    logp, old, _, adv, mask = _batch(5)
    full = aggregate(logp, mask, mode, max_len=9)
    scope = dict(num_items_in_batch=int(mask.sum())) if mode == "token-mean" else dict(num_sequences=6)
    parts = sum(aggregate(logp[a:b], mask[a:b], mode, max_len=9, **scope) for a, b in ((0, 2), (2, 5), (5, 6)))
    assert parts.item() == pytest.approx(full.item(), rel=1e-12)
    w = aggregation_weights(mask[:2], mode, max_len=9, **scope)
    assert torch.allclose(w, aggregation_weights(mask, mode, max_len=9)[:2])
    # without them each micro-batch normalises itself: the sum is not the batch's
    local = sum(aggregate(logp[a:b], mask[a:b], mode, max_len=9) for a, b in ((0, 2), (2, 5), (5, 6)))
    assert local.item() != pytest.approx(full.item(), rel=1e-6)


def test_processes_multiply_and_accumulation_divides():
    logp, old, _, adv, mask = _batch(6)
    base, _ = grpo_loss(logp, old, None, adv, mask, beta=0.0)
    assert grpo_loss(logp, old, None, adv, mask, beta=0.0, grad_accum_steps=4)[0].item() == pytest.approx(base.item() / 4)
    two, m2 = grpo_loss(logp, old, None, adv, mask, beta=0.0, agg="token-mean", num_processes=2,
                        num_items_in_batch=2 * int(mask.sum()))
    one, _ = grpo_loss(logp, old, None, adv, mask, beta=0.0, agg="token-mean")
    assert two.item() == pytest.approx(one.item()) and m2["policy_loss"] == pytest.approx(one.item())


# ---------------------------------------------------------------------------- metrics, padding


def test_tensor_metrics_and_framework_names():
    logp, old, ref, adv, mask = _batch(7)
    _, floats = grpo_loss(logp, old, ref, adv, mask, beta=0.04, framework_metrics="trl")
    _, tensors = grpo_loss(logp, old, ref, adv, mask, beta=0.04, framework_metrics="trl", tensor_metrics=True)
    assert floats.keys() == tensors.keys() and all(isinstance(v, torch.Tensor) and v.dim() == 0 for v in tensors.values())
    assert all(float(tensors[k]) == pytest.approx(v, nan_ok=True) for k, v in floats.items())
    assert {"clip_ratio/low_mean", "clip_ratio/high_mean", "clip_ratio/region_mean", "clip_ratio/low_min",
            "clip_ratio/high_max"} <= set(floats)
    assert floats["clip_ratio/region_mean"] == pytest.approx(floats["clip_frac"], abs=1e-7)
    _, verl = grpo_loss(logp, old, None, adv, mask, beta=0.0, framework_metrics="verl", dual_clip=3.0)
    assert verl["actor/ppo_kl"] == pytest.approx(float(-((logp - old) * mask).sum() / mask.sum()))
    assert verl["actor/pg_clipfrac"] == pytest.approx(verl["clip_frac"])


OPTIONS = [dict(), dict(loss="cispo"), dict(loss="sapo"), dict(loss="gmpo"), dict(loss="gspo"),
           dict(ratio_level="sequence"), dict(dual_clip=3.0, log_ratio_clamp=20.0), dict(kl="k3+"),
           dict(kl_bias_correction=True), dict(kl_clamp="verl")]


@pytest.mark.parametrize("options", OPTIONS, ids=[str(o) for o in OPTIONS])
def test_padding_cannot_change_loss_or_gradient(options):
    logp, old, ref, adv, mask = _batch(8)
    roll = old - 0.1
    ent = torch.rand(6, 5, dtype=F64, generator=torch.Generator().manual_seed(0))
    kw = dict(beta=0.05, rollout_logp=roll, entropy=ent, top_entropy_quantile=0.7, **options)
    clean = _grad(lambda lp: grpo_loss(lp, old, ref, adv, mask, **kw), logp)
    pad = mask == 0
    wild = [t.masked_fill(pad, v) for t, v in ((logp, 700.0), (old, -700.0), (ref, 650.0), (roll, -650.0), (ent, 1e3))]
    kw.update(rollout_logp=wild[3], entropy=wild[4])
    dirty = _grad(lambda lp: grpo_loss(lp, wild[1], wild[2], adv, mask, **kw), wild[0])
    assert torch.equal(clean[0], dirty[0]) and torch.equal(clean[1], dirty[1])
    assert dirty[1][pad].abs().max() == 0


# ---------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "kwargs,pattern",
    [
        (dict(loss="ppo2"), r"`loss`='ppo2' is not known; choose one of \['cispo', 'clip', 'gmpo', 'gspo', 'sapo'\]"),
        (dict(dual_clip=1.0), r"`dual_clip` must be > 1"),
        (dict(delta=0.9), r"`delta` must be > 1"),
        (dict(loss="sapo", delta=2.0), r"`delta` applies to loss='clip' only"),
        (dict(loss="clip", sapo_tau_neg=1.1), r"`sapo_tau_neg` applies to loss='sapo' only"),
        (dict(loss="gmpo", ratio_level="sequence"), r"`ratio_level`='sequence' does not apply to loss='gmpo'"),
        (dict(loss="cispo", eps_high=-1.5), r"`eps_high`=-1.5 puts CISPO's upper bound"),
        (dict(log_ratio_clamp=(5.0, 1.0)), r"must have low < high"),
        (dict(log_ratio_clamp="big"), r"`log_ratio_clamp` must be None, a number"),
        (dict(kl="k4+"), r"`kl`='k4\+' is not known"),
        (dict(kl_clamp="trl"), r"`kl_clamp`='trl' is not known; choose one of \['verl'\]"),
        (dict(num_items_in_batch=100), r"`num_items_in_batch` divides the 'token-mean' aggregation"),
        (dict(agg="token-mean", num_sequences=10), r"`num_sequences` is the answer count"),
        (dict(agg="token-mean", num_items_in_batch=3), r"`num_items_in_batch`=3 is below this batch's own"),
        (dict(num_sequences=8, grad_accum_steps=2), r"`grad_accum_steps` > 1 divides"),
        (dict(is_max=2.0), r"\['is_max'\] set, but `rollout_logp` is None"),
        (dict(top_entropy_quantile=0.5), r"`top_entropy_quantile` needs `entropy`"),
        (dict(framework_metrics="trl", loss="gmpo"), r"`framework_metrics`='trl' has no metrics for loss='gmpo'"),
        (dict(framework_metrics="openrlhf"), r"`framework_metrics`='openrlhf' is not known"),
        (dict(num_processes=0), r"`num_processes` must be an int >= 1"),
        (dict(tensor_metrics="yes"), r"`tensor_metrics` must be True or False"),
    ],
)
def test_bad_keywords_name_the_argument(kwargs, pattern):
    logp, old, ref, adv, mask = _batch(9)
    with pytest.raises(ValueError, match=pattern):
        grpo_loss(logp, old, ref, adv, mask, **kwargs)


def test_bad_tensors_are_rejected():
    logp, old, ref, adv, mask = _batch(9)
    with pytest.raises(ValueError, match="`rollout_logp` has shape"):
        grpo_loss(logp, old, ref, adv, mask, rollout_logp=old[:, :2])
    with pytest.raises(ValueError, match="`rollout_logp` contains nan"):
        grpo_loss(logp, old, ref, adv, mask, rollout_logp=torch.full_like(old, float("nan")))
    with pytest.raises(ValueError, match="`entropy` contains inf"):
        grpo_loss(logp, old, ref, adv, mask, entropy=torch.full_like(old, float("inf")))
    with pytest.raises(ValueError, match="`is_min`=3.0 must be <= `is_max`=2.0"):
        grpo_loss(logp, old, ref, adv, mask, rollout_logp=old, is_min=3.0, is_max=2.0, is_mode="mask")
    with pytest.raises(ValueError, match="`is_mode`='clip' is not known"):
        grpo_loss(logp, old, ref, adv, mask, rollout_logp=old, is_mode="clip")
    with pytest.raises(ValueError, match="`top_entropy_quantile` must be > 0"):
        grpo_loss(logp, old, ref, adv, mask, entropy=old.exp(), top_entropy_quantile=0.0)
