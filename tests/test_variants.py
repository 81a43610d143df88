"""The variants of the extensions chapter: multi-reward advantages, DAPO's length handling,
GSPO's sequence ratio, and the variant table as trainer settings."""


import pytest
import torch

from grpo_core import group_advantages, grpo_loss
from grpo_core.training.variants import VARIANTS, variant_config
from grpo_core import combine_rewards, overlong_penalty, truncated


pytestmark = pytest.mark.usefixtures("isolated_cache")


def test_sum_then_normalize_is_group_advantages_of_the_weighted_sum():
    r = torch.tensor([[1.0, 0.2], [0.0, 0.9], [1.0, 0.1], [0.0, 0.0]])
    w = torch.tensor([2.0, 0.5])
    assert torch.allclose(combine_rewards(r, 4, w), group_advantages(r @ w, 4))


def test_gdpo_by_hand_and_the_collapse_it_avoids():
    # two groups of two answers, rewards (format, correct): group A (1,0) vs (0,0); group B (1,1) vs (0,0)
    r = torch.tensor([[1.0, 0.0], [0.0, 0.0], [1.0, 1.0], [0.0, 0.0]])
    grpo = combine_rewards(r, 2, mode="sum-then-normalize")
    # sums [1, 0] and [2, 0] normalise to the same [1, -1]: the second group's extra reward is lost
    assert torch.allclose(grpo, torch.tensor([1.0, -1.0, 1.0, -1.0]), atol=1e-5)
    gdpo = combine_rewards(r, 2, mode="normalize-then-sum", eps=0.0)
    # per reward: format [1,-1,1,-1], correct [0,0,1,-1]; sum [1,-1,2,-2]; batch mean 0, std sqrt(2.5)
    expected = torch.tensor([1.0, -1.0, 2.0, -2.0]) / 2.5 ** 0.5
    assert torch.allclose(gdpo, expected, atol=1e-6)
    assert gdpo[2] > gdpo[0]


def test_a_weak_reward_is_drowned_by_the_sum_but_kept_by_gdpo():
    g = torch.Generator().manual_seed(0)
    strong = torch.randint(0, 2, (4000,), generator=g).float() * 10.0
    weak = torch.randint(0, 2, (4000,), generator=g).float() * 0.1
    r = torch.stack([strong, weak], 1)

    def corr(a, b):
        return torch.corrcoef(torch.stack([a, b]))[0, 1].item()

    summed = combine_rewards(r, 8, mode="sum-then-normalize")
    gdpo = combine_rewards(r, 8, mode="normalize-then-sum")
    assert corr(summed, weak) < 0.05 and corr(gdpo, weak) > 0.4


@pytest.mark.parametrize(
    "call,pattern",
    [(lambda: combine_rewards(torch.zeros(4), 2), "`rewards` must be \\[N, K\\]"),
     (lambda: combine_rewards(torch.zeros(4, 2), 2, weights=[1.0]), "`weights` has shape"),
     (lambda: combine_rewards(torch.zeros(4, 2), 2, weights=[1.0, -1.0]), "`weights` must be >= 0"),
     (lambda: combine_rewards(torch.zeros(4, 2), 2, mode="product"), "`mode`='product'"),
     (lambda: combine_rewards(torch.full((4, 2), float("nan")), 2), "`rewards` contains nan"),
     (lambda: combine_rewards(torch.zeros(5, 2), 2), "multiple"),
     (lambda: overlong_penalty([3], 4, 5), "`cache_len`=5 must be <= max_len=4"),
     (lambda: truncated(torch.zeros(2, 3), torch.ones(2, 2), 1), "same \\[N, T\\] shape"),
     (lambda: variant_config("ppo2"), "`name`='ppo2'")],
)
def test_errors_name_the_argument(call, pattern):
    with pytest.raises(ValueError, match=pattern):
        call()


def test_overlong_penalty_by_hand():
    got = overlong_penalty(torch.tensor([5, 6, 7, 8, 10, 11]), max_len=10, cache_len=4)
    assert torch.allclose(got, torch.tensor([0.0, 0.0, -0.25, -0.5, -1.0, -1.0]))
    assert torch.allclose(overlong_penalty(torch.tensor([8]), 10, 4, factor=0.5), torch.tensor([-0.25]))


def test_truncated_means_no_end_token_among_the_real_tokens():
    comp = torch.tensor([[5, 1, 0], [5, 5, 5], [5, 5, 1]])
    mask = torch.tensor([[1, 1, 0], [1, 1, 1], [1, 1, 1]])
    assert truncated(comp, mask, eos_id=1).tolist() == [False, True, False]


def test_gspo_sequence_ratio_by_hand_and_equal_to_grpo_on_policy():
    g = torch.Generator().manual_seed(3)
    old = -torch.rand(3, 4, generator=g, dtype=torch.float64) * 2
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0], [1, 1, 1, 0]], dtype=torch.float64)
    adv = torch.tensor([1.0, -0.5, 2.0], dtype=torch.float64)
    # on-policy (ratio 1): same loss and same gradient as GRPO's seq-mean-token-mean
    lp1 = old.clone().requires_grad_(True)
    lp2 = old.clone().requires_grad_(True)
    l_seq, _ = grpo_loss(lp1, old, None, adv, mask, beta=0.0, ratio_level="sequence")
    l_tok, _ = grpo_loss(lp2, old, None, adv, mask, beta=0.0)
    l_seq.backward()
    l_tok.backward()
    assert torch.allclose(l_seq, l_tok) and torch.allclose(lp1.grad, lp2.grad)
    # off-policy: -mean_i min(s_i A_i, clip(s_i) A_i) with s_i the geometric mean of token ratios
    shift = torch.tensor([[0.3, 0.1, -0.2, 0.0], [0.05, 0.05, 9.0, 9.0], [-0.4, -0.4, -0.4, 5.0]], dtype=torch.float64)
    logp = old + shift
    loss, metrics = grpo_loss(logp, old, None, adv, mask, eps_low=0.1, eps_high=0.1, beta=0.0, ratio_level="sequence")
    s = torch.exp(torch.tensor([0.2 / 4, 0.1 / 2, -1.2 / 3], dtype=torch.float64))
    expected = -torch.minimum(s * adv, s.clamp(0.9, 1.1) * adv).mean()
    assert torch.allclose(loss, expected)
    # answer 0 (s = e^0.05 < 1.1) is not clipped; answer 2 (s = e^-0.4 < 0.9, A > 0) is not clipped either
    assert metrics["clip_frac"] == 0.0
    with pytest.raises(ValueError, match="`ratio_level`='answer'"):
        grpo_loss(logp, old, None, adv, mask, beta=0.0, ratio_level="answer")


def test_every_variant_is_a_valid_config_and_names_real_fields():
    for name, v in VARIANTS.items():
        cfg = variant_config(name, steps=1)
        cfg.check()
        for key, value in v.overrides.items():
            assert getattr(cfg, key) == value, (name, key)
        assert v.trl and v.verl and v.changes and v.paper
    assert variant_config("dr-grpo").advantages == "dr-grpo"


def _tiny_variant(name, **kw):
    base = dict(task="sort", d_model=32, n_layers=1, n_heads=2, sft_steps=40, sft_batch=64,
                prompts_per_step=4, G=4, steps=1, eval_size=16, device="cpu")
    base.update(kw)
    return variant_config(name, **base)


def test_dapo_settings_reach_the_loss(monkeypatch):
    import grpo_core.training.trainer as trainer_mod

    seen = []
    real = trainer_mod.grpo_loss

    def spy(logp, old_logp, ref_logp, adv, mask, **kw):
        seen.append(dict(mask=mask.clone(), adv=adv.clone(), **kw))
        return real(logp, old_logp, ref_logp, adv, mask, **kw)

    monkeypatch.setattr(trainer_mod, "grpo_loss", spy)
    tr = trainer_mod.GRPOTrainer(_tiny_variant("dapo", dynamic_sampling=False))
    batch = {}
    real_rollout = tr.rollout

    def keep(ids, repeat=None):
        out = real_rollout(ids, repeat)
        batch.update(out)
        return out

    tr.rollout = keep
    tr.step()
    call = seen[0]
    assert call["agg"] == "token-mean" and call["eps_high"] == 0.28
    cut = truncated(batch["comp"], batch["mask"], 1)
    assert (call["mask"][cut] == 0).all()  # truncated answers are out of the loss
    assert torch.equal(call["mask"][~cut], batch["mask"][~cut].float())
    lengths = batch["mask"].sum(1)
    assert torch.allclose(batch["score"], batch["rewards"] + overlong_penalty(lengths, tr.max_new, 1))
    assert torch.allclose(call["adv"], group_advantages(batch["score"], 4))


def test_gspo_setting_reaches_the_loss(monkeypatch):
    import grpo_core.training.trainer as trainer_mod

    seen = []
    real = trainer_mod.grpo_loss
    monkeypatch.setattr(trainer_mod, "grpo_loss", lambda *a, **kw: (seen.append(kw), real(*a, **kw))[1])
    tr = trainer_mod.GRPOTrainer(_tiny_variant("gspo"))
    tr.step()
    assert len(seen) == 4 and all(kw["ratio_level"] == "sequence" and kw["eps_low"] == 3e-4 for kw in seen)


def test_multi_reward_curves_match_combine_rewards():
    from grpo_core import COMBINE_MODES
    from grpo_core.analysis import multi_reward as ex

    correct, style = ex.reward_batch()
    for scale in (0.01, 10.0):
        curves = ex.style_correlation_curves(scale)
        r = torch.stack([correct, style * scale], 1)
        for i in (0, 7, 40):
            for mode in COMBINE_MODES:
                direct = ex.correlation(combine_rewards(r, ex.G, [1.0, ex.WEIGHTS[i]], mode), style)
                assert abs(curves[mode][i] - direct) < 1e-3, (scale, i, mode)
    # the lessons of the explorer: under the sum, a small style reward's weight hardly matters (it
    # counts only in groups whose correctness has no spread, where normalisation blows it up);
    # under GDPO its influence is set by the weight alone, whatever its scale
    small, large = ex.style_correlation_curves(0.01), ex.style_correlation_curves(10.0)
    s = small["sum-then-normalize"]
    assert s[0] < 0.05 and 0.1 < s[5] and s[40] - s[5] < 0.05
    assert small["normalize-then-sum"] == large["normalize-then-sum"]
    assert small["normalize-then-sum"][40] - small["normalize-then-sum"][5] > 0.3


def test_preset_variants_run_through_the_conformance_presets():
    from grpo_core import ADVANTAGE_ESTIMATORS, LOSS_PRESETS
    from grpo_core.training.variants import PRESET_VARIANTS, comparison_configs
    assert {"cispo", "sapo", "gmpo", "dual-clip", "batch-std", "reinforce++"} <= set(PRESET_VARIANTS)
    for name, v in PRESET_VARIANTS.items():
        cfg = variant_config(name, steps=1)
        cfg.check()
        if cfg.loss_preset is not None:
            assert cfg.loss_preset == v.preset and v.preset in LOSS_PRESETS
            assert cfg.minibatches == 4                 # off-policy: otherwise the loss is GRPO's gradient
        elif name != "grpo-4mb":
            assert cfg.advantages == v.preset and v.preset in ADVANTAGE_ESTIMATORS
    configs = comparison_configs(steps=40, lr_schedule="constant")
    assert list(configs)[:5] == list(VARIANTS) and all(c.steps == 40 for c in configs.values())
    assert configs["grpo"] == variant_config("grpo", steps=40, lr_schedule="constant")


def test_preset_variants_take_one_trainer_step():
    from grpo_core.training.trainer import GRPOTrainer
    from grpo_core.training.variants import PRESET_VARIANTS
    for name in PRESET_VARIANTS:
        rec = GRPOTrainer(_tiny_variant(name, steps=1)).step()
        assert rec["loss"] == rec["loss"], name              # a number, not NaN
