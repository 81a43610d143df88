"""LOSS_PRESETS and the frameworks' advantage estimators: what each preset stands for, the equalities
between the frameworks that the chapters state, hand-computed advantages, and bad input. (The
presets against TRL's and verl's own code: tests/conformance, `make conformance`.)"""

import math

import pytest
import torch

from grpo_core import (
    ADVANTAGE_ESTIMATORS,
    LOSS_PRESETS,
    compute_advantages,
    grpo_loss,
    preset_loss,
    preset_settings,
    trl_advantages,
    verl_gdpo_advantages,
    verl_grpo_advantages,
    verl_reinforce_pp_advantages,
)
from grpo_core.presets import TRL_SAPO_TAU_NEG
from grpo_core.training.variants import EXACT, VARIANTS

F64 = torch.float64
NAMES = ["trl-grpo", "trl-bnpo", "trl-dr_grpo", "trl-dapo", "trl-cispo", "trl-sapo",
         "verl-vanilla", "verl-gspo", "verl-cispo", "verl-geo_mean", "verl-sapo"]


def _batch(seed=0, far=1.0):
    g = torch.Generator().manual_seed(seed)
    b, t = 8, 6
    old = -torch.rand(b, t, generator=g, dtype=F64) * 2
    logp = old + far * torch.randn(b, t, generator=g, dtype=F64)
    lengths = torch.tensor([6, 2, 4, 0, 6, 3, 1, 5])
    mask = (torch.arange(t)[None, :] < lengths[:, None]).to(F64)
    adv = torch.tensor([1.0, -1.0, 0.5, -0.5, 1.5, -1.5, 0.0, 0.3], dtype=F64)
    return logp, old, adv, mask


def _loss_and_grad(name, logp, old, adv, mask, **ov):
    lp = logp.clone().requires_grad_(True)
    loss, metrics = preset_loss(name, lp, old, None, adv, mask, **ov)
    (g,) = torch.autograd.grad(loss, lp)
    return loss.detach(), g, metrics


def test_the_issue_names_every_preset_and_each_says_what_it_stands_for():
    assert set(NAMES) <= set(LOSS_PRESETS)
    for p in LOSS_PRESETS.values():
        assert p.framework in ("trl 1.16.0", "verl 0.9.1") and p.function and len(p.doc) > 200
        assert set(p.names) <= set(p.overridable)
        grpo_loss_keys = set(preset_settings(p.name))
        assert {"loss", "beta", "agg", "framework_metrics"} <= grpo_loss_keys


def test_the_defaults_of_the_releases():
    s = {n: preset_settings(n) for n in NAMES}
    assert all(v["beta"] == 0.0 for v in s.values())  # both frameworks default to no KL term
    assert s["verl-vanilla"]["dual_clip"] == 3.0 and s["verl-vanilla"]["log_ratio_clamp"] == 20.0
    assert s["verl-vanilla"]["agg"] == "token-mean" and s["trl-dapo"]["agg"] == "token-mean"
    assert s["trl-grpo"]["kl_bias_correction"] is True and s["trl-dr_grpo"]["max_len"] == 512
    assert s["trl-cispo"]["eps_high"] == pytest.approx(-0.8)  # epsilon_high=None -> 0.2: a cap at 0.2
    assert TRL_SAPO_TAU_NEG == pytest.approx(1.05, abs=1e-7) and TRL_SAPO_TAU_NEG != 1.05
    assert s["verl-gspo"]["log_ratio_clamp"] == (None, 10.0)
    # the rollout-IS defaults apply only when rollout_logp is given
    assert "is_mode" not in s["trl-grpo"]
    roll = torch.zeros(2, 2)
    assert preset_settings("trl-grpo", rollout_logp=roll)["is_mode"] == "mask"
    assert preset_settings("trl-grpo", rollout_logp=roll)["is_level"] == "sequence"
    assert preset_settings("verl-vanilla", rollout_logp=roll)["is_max"] == 2.0


def test_trl_grpo_with_delta_is_verl_vanilla_with_its_dual_clip():
    """TRL's two-sided clip delta = c and verl's clip_ratio_c = c give the same loss (below verl's clamp)."""
    logp, old, adv, mask = _batch(1, far=1.5)
    trl = _loss_and_grad("trl-grpo", logp, old, adv, mask, delta=3.0)
    verl = _loss_and_grad("verl-vanilla", logp, old, adv, mask, agg="seq-mean-token-mean")
    assert torch.allclose(trl[0], verl[0], rtol=1e-13) and torch.allclose(trl[1], verl[1], rtol=1e-12, atol=1e-16)
    # without delta (TRL's default) they differ as soon as a bad answer's ratio passes 3
    plain = _loss_and_grad("trl-grpo", logp, old, adv, mask)
    assert verl[2]["clip_frac_dual"] > 0 and not torch.allclose(plain[0], verl[0])


def test_bnpo_and_dapo_agree_on_one_micro_batch_and_differ_on_several():
    logp, old, adv, mask = _batch(2)
    bnpo = _loss_and_grad("trl-bnpo", logp, old, adv, mask)
    dapo = _loss_and_grad("trl-dapo", logp, old, adv, mask)
    assert torch.allclose(bnpo[0], dapo[0], rtol=1e-14)
    n = int(mask.sum())
    halves = [(slice(0, 3), ), (slice(3, 8), )]
    bnpo_sum = sum(_loss_and_grad("trl-bnpo", logp[s], old[s], adv[s], mask[s], grad_accum_steps=2)[0]
                   for (s,) in halves)
    dapo_sum = sum(_loss_and_grad("trl-dapo", logp[s], old[s], adv[s], mask[s], num_items_in_batch=n)[0]
                   for (s,) in halves)
    assert dapo_sum.item() == pytest.approx(dapo[0].item(), rel=1e-12)  # dapo: the batch's token mean
    assert bnpo_sum.item() != pytest.approx(dapo[0].item(), rel=1e-3)  # bnpo: the mean of micro-batch means


def test_trl_cispo_is_verl_cispo_without_a_lower_bound():
    logp, old, adv, mask = _batch(3, far=1.0)
    trl = _loss_and_grad("trl-cispo", logp, old, adv, mask, eps_high=4.0)  # TRL's epsilon_high=5.0
    verl = _loss_and_grad("verl-cispo", logp, old, adv, mask, eps_low=1.0, eps_high=4.0)
    assert torch.allclose(trl[0], verl[0], rtol=1e-13) and torch.allclose(trl[1], verl[1], rtol=1e-12, atol=1e-16)


def test_trl_sapo_and_verl_sapo_differ_only_by_the_float32_temperature():
    logp, old, adv, mask = _batch(4)
    trl = _loss_and_grad("trl-sapo", logp, old, adv, mask)
    verl = _loss_and_grad("verl-sapo", logp, old, adv, mask)
    assert 0 < abs(float(trl[0] - verl[0])) < 1e-7
    same = _loss_and_grad("verl-sapo", logp, old, adv, mask, sapo_tau_neg=TRL_SAPO_TAU_NEG)
    assert torch.allclose(trl[0], same[0], rtol=1e-14)
    # an override of TRL's temperature is rounded to float32, as TRL holds it
    assert preset_settings("trl-sapo", sapo_tau_neg=1.3)["sapo_tau_neg"] == torch.tensor(1.3).item()


def test_geo_mean_is_one_loss_per_answer():
    logp, old, adv, mask = _batch(5, far=0.3)
    loss, g, _ = _loss_and_grad("verl-geo_mean", logp, old, adv, mask)
    n = mask.sum(1).clamp(min=1)
    d = (logp - old) * mask
    sign = torch.sign(adv)[:, None]
    d_hat = sign * torch.minimum(sign * d, sign * d.clamp(-0.2, 0.2))
    adv_mean = (adv[:, None] * mask).sum(1) / n  # the answer's mean advantage: 0 for the empty answer
    expected = (-adv_mean * torch.exp((d_hat * mask).sum(1) / n)).mean()  # every answer counts, the empty one as 0
    assert loss.item() == pytest.approx(expected.item(), rel=1e-13)


def test_metrics_carry_the_frameworks_names():
    logp, old, adv, mask = _batch(6)
    assert {"clip_ratio/low_mean", "clip_ratio/high_max"} <= set(_loss_and_grad("trl-dapo", logp, old, adv, mask)[2])
    assert "cispo_clip_ratio" in _loss_and_grad("trl-cispo", logp, old, adv, mask)[2]
    for name in ("verl-vanilla", "verl-gspo", "verl-cispo", "verl-geo_mean", "verl-sapo"):
        assert {"actor/pg_clipfrac", "actor/ppo_kl", "actor/pg_clipfrac_lower"} <= set(
            _loss_and_grad(name, logp, old, adv, mask)[2])


@pytest.mark.parametrize(
    "name,kwargs,pattern",
    [
        ("trl-ppo", {}, r"`preset`='trl-ppo' is not known; choose one of \['trl-bnpo', 'trl-cispo'"),
        ("trl-grpo", dict(foo=1), r"`foo` is not a keyword of grpo_loss; preset 'trl-grpo' takes \['beta', 'delta'"),
        ("trl-grpo", dict(agg="token-mean"), r"TRL's loss_type is the aggregation"),
        ("trl-grpo", dict(dual_clip=3.0), r"TRL has no dual clip; its two-sided `delta`"),
        ("trl-bnpo", dict(num_items_in_batch=10), r"bnpo divides by the micro-batch's own tokens"),
        ("trl-dapo", dict(grad_accum_steps=2), r"dapo's normaliser is num_items_in_batch"),
        ("trl-cispo", dict(eps_low=0.1), r"TRL's cispo weight has no lower bound"),
        ("verl-vanilla", dict(delta=3.0), r"verl has no delta"),
        ("verl-vanilla", dict(log_ratio_clamp=10.0), r"fixed in the framework's code"),
        ("verl-vanilla", dict(grad_accum_steps=2), r"never by the number of micro-batches"),
        ("verl-sapo", dict(agg="token-mean"), r"verl's sapo always aggregates its policy term"),
        ("verl-geo_mean", dict(num_sequences=16), r"verl's geo_mean ignores global_batch_size"),
        ("verl-gspo", dict(ratio_level="sequence"), r"verl's gspo forms the sequence ratio itself"),
        ("verl-vanilla", dict(rollout_logp=torch.zeros(8, 6, dtype=F64), is_min=0.5),
         r"verl's truncated IS .* has no lower bound"),
        ("trl-grpo", dict(grad_accum_steps=0), r"`grad_accum_steps` must be an int >= 1"),
        # contradicting overrides: the error also lists the preset's keywords
        ("verl-vanilla", dict(agg="seq-mean-token-mean", num_items_in_batch=30),
         r"preset 'verl-vanilla': `num_items_in_batch` divides the 'token-mean' aggregation.*It takes \['agg', 'beta'"),
        ("trl-dapo", dict(is_max=2.0), r"preset 'trl-dapo': \['is_max'\] set, but `rollout_logp` is None.*It takes"),
    ],
)
def test_bad_presets_and_overrides(name, kwargs, pattern):
    logp, old, adv, mask = _batch(7)
    with pytest.raises(ValueError, match=pattern):
        preset_loss(name, logp, old, None, adv, mask, **kwargs)


# ---------------------------------------------------------------------------- advantages


def test_trl_advantages_by_hand():
    r = torch.tensor([1.0, 1.0, 0.0, 0.5, 0.5, 0.5], dtype=F64)
    s = math.sqrt(1 / 3)  # sample std of [1, 1, 0]
    group = trl_advantages(r, 3)
    assert torch.allclose(group, torch.tensor([(1 / 3) / (s + 1e-4)] * 2 + [(-2 / 3) / (s + 1e-4), 0, 0, 0], dtype=F64))
    assert torch.allclose(trl_advantages(r, 3, scale_rewards="none"), torch.tensor([1 / 3, 1 / 3, -2 / 3, 0, 0, 0],
                                                                                  dtype=F64))
    batch_std = float(r.std())
    assert torch.allclose(trl_advantages(r, 3, scale_rewards="batch"),
                          torch.tensor([1 / 3, 1 / 3, -2 / 3, 0, 0, 0], dtype=F64) / (batch_std + 1e-4))


def test_trl_normalize_then_sum_by_hand():
    r = torch.tensor([[1.0, 0.0], [0.0, 0.0], [1.0, 1.0], [0.0, 0.0]], dtype=F64)
    z = 1 / (math.sqrt(0.5) + 1e-4)  # each non-flat group of two: +-0.5 / (sample std sqrt(0.5) + 1e-4)
    per = torch.tensor([0.5 * z, -0.5 * z, z, -z], dtype=F64)
    expected = (per - per.mean()) / (per.std() + 1e-4)
    assert torch.allclose(trl_advantages(r, 2, multi_objective_aggregation="normalize_then_sum"), expected)
    # and the weighted sum first: the group of sums [1, 0] and [2, 0] look alike
    summed = trl_advantages(r, 2, reward_weights=[1.0, 1.0])
    assert torch.allclose(summed[:2], summed[2:], atol=1e-3)


def test_verl_estimators_by_hand():
    r = torch.tensor([1.0, 1.0, 0.0, 0.5, 0.5, 0.5], dtype=F64)
    s = math.sqrt(1 / 3)
    assert torch.allclose(verl_grpo_advantages(r, 3)[:3], torch.tensor([1 / 3, 1 / 3, -2 / 3], dtype=F64) / (s + 1e-6))
    assert torch.equal(verl_grpo_advantages(r, 3, norm_adv_by_std_in_grpo=False), r - r.view(2, 3).mean(1).repeat_interleave(3))
    assert torch.allclose(compute_advantages("verl-rloo", r, 3)[:3], torch.tensor([0.5, 0.5, -1.0], dtype=F64))
    # REINFORCE++: gamma = 1 gives every real token its answer's reward, then one whitening over all tokens
    mask = torch.tensor([[1, 1, 0]] * 3 + [[1, 0, 0]] * 3, dtype=F64)
    got = verl_reinforce_pp_advantages(r, mask)
    tok = torch.tensor([1.0, 1, 1, 1, 0, 0, 0.5, 0.5, 0.5], dtype=F64)  # the 9 real tokens' returns
    want = (tok - tok.mean()) / torch.sqrt(tok.var() + 1e-8)
    assert torch.allclose(got[mask > 0], want, rtol=1e-6) and got[mask == 0].abs().max() == 0
    discounted = verl_reinforce_pp_advantages(torch.ones(1, dtype=F64) * 2, torch.ones(1, 3, dtype=F64), gamma=0.5)
    raw = torch.tensor([0.5, 1.0, 2.0], dtype=F64)  # 2 * 0.5^(tokens after)
    assert torch.allclose(discounted[0], (raw - raw.mean()) / torch.sqrt(raw.var() + 1e-8), rtol=1e-6)
    # GDPO with one dimension: verl's grpo advantage, whitened over the tokens (a longer answer weighs more)
    g1 = verl_gdpo_advantages(r, 3, mask)
    a = verl_grpo_advantages(r, 3)[:, None].expand(6, 3)[mask > 0]
    assert torch.allclose(g1[mask > 0], (a - a.mean()) / torch.sqrt(a.var() + 1e-8), rtol=1e-6)


def test_the_framework_estimators_are_registered():
    for name in ("trl-grpo", "verl-grpo", "verl-rloo", "verl-reinforce_plus_plus", "verl-gdpo"):
        assert name in ADVANTAGE_ESTIMATORS
    assert ADVANTAGE_ESTIMATORS["verl-gdpo"].required == ("mask",)
    with pytest.raises(ValueError, match=r"advantage estimator 'verl-reinforce_plus_plus' needs the option\(s\) \['mask'\]"):
        compute_advantages("verl-reinforce_plus_plus", [1.0, 0.0], 2)
    with pytest.raises(ValueError, match=r"`scale_rewards`='global' is not known"):
        trl_advantages([1.0, 0.0], 2, scale_rewards="global")
    with pytest.raises(ValueError, match=r"`multi_objective_aggregation`='mean' is not known"):
        trl_advantages([1.0, 0.0], 2, multi_objective_aggregation="mean")
    with pytest.raises(ValueError, match=r"`reward_weights` has shape \(3,\)"):
        trl_advantages(torch.zeros(4, 2), 2, reward_weights=[1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match=r"`gamma` must be in \[0, 1\]"):
        verl_reinforce_pp_advantages([1.0, 0.0], torch.ones(2, 2), gamma=1.5)
    with pytest.raises(ValueError, match=r"`mask` must be \[N, T\] with N = 2"):
        verl_reinforce_pp_advantages([1.0, 0.0], torch.ones(3, 2))
    with pytest.raises(ValueError, match=r"`norm_adv_by_std_in_grpo` must be True or False"):
        verl_grpo_advantages([1.0, 0.0], 2, norm_adv_by_std_in_grpo="yes")


# ---------------------------------------------------------------------------- VARIANTS


def test_every_variant_marks_each_framework_exact_or_partial():
    for v in VARIANTS.values():
        for fw in (v.trl, v.verl):
            assert fw.status == EXACT or fw.status.startswith("partial: ")
            assert fw.loss and fw.advantages and fw.settings
    assert VARIANTS["dr-grpo"].trl.status == EXACT
    assert str(VARIANTS["gspo"].trl).startswith('GRPOConfig(importance_sampling_level="sequence", loss_type="grpo"')
    assert all(k.startswith(("actor_rollout_ref.", "algorithm.", "data.", "reward.", "+reward."))
               for v in VARIANTS.values() for k in v.verl.settings)
