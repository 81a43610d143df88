"""Claims of the chapter 'Deriving the GRPO objective' about where the clip acts, the weight each
aggregation mode gives a token, and the per-answer (sequence-level) ratios."""

import math

import pytest
import torch

from grpo_core import AGGREGATIONS, aggregate, clipped_surrogate, grpo_loss, kl_k3
from grpo_core.objective import SEQUENCE_RATIOS, aggregation_weights, clip_active, sequence_log_ratio


def _batch(seed=0, b=6, t=9):
    gen = torch.Generator().manual_seed(seed)
    old = -torch.rand(b, t, generator=gen, dtype=torch.float64) * 3
    logp = old + 0.4 * torch.randn(b, t, generator=gen, dtype=torch.float64)
    ref = -torch.rand(b, t, generator=gen, dtype=torch.float64) * 3
    lengths = torch.tensor([9, 4, 1, 7, 2, 5])[:b]
    mask = (torch.arange(t)[None, :] < lengths[:, None]).double()
    adv = torch.tensor([1.2, -0.7, 0.4, -1.5, 0.0, 0.9], dtype=torch.float64)[:b]
    return logp, old, ref, mask, adv, lengths


# ----------------------------------------------------------------------------- clip_active


@pytest.mark.parametrize(
    "ratio,adv,expected",
    [
        (1.5, 1.0, True),  # above 1 + eps with A > 0
        (0.5, 1.0, False),  # below 1 - eps with A > 0: min keeps r A
        (0.5, -1.0, True),  # below 1 - eps with A < 0
        (1.5, -1.0, False),  # above 1 + eps with A < 0: min keeps r A
        (1.1, 1.0, False),  # inside the range
        (1.5, 0.0, False),  # no advantage, nothing to clip
        (1.2, 1.0, False),  # on the bound itself: still passes the gradient
    ],
)
def test_clip_active_hand_cases(ratio, adv, expected):
    r = torch.tensor([ratio], dtype=torch.float64)
    assert clip_active(r.log(), torch.zeros(1, dtype=torch.float64), torch.tensor([adv], dtype=torch.float64)).item() is expected


def test_clip_active_uses_the_separate_upper_range():
    r = torch.tensor([1.25, 1.25, 0.75], dtype=torch.float64)
    adv = torch.tensor([1.0, 1.0, -1.0], dtype=torch.float64)
    assert clip_active(r.log(), torch.zeros(3, dtype=torch.float64), adv, 0.2, 0.28).tolist() == [False, False, True]
    assert clip_active(r.log(), torch.zeros(3, dtype=torch.float64), adv, 0.2, 0.2).tolist() == [True, True, True]


def test_clip_active_is_exactly_where_the_surrogate_gradient_is_zero():
    ratios = torch.linspace(0.05, 2.0, 400, dtype=torch.float64)
    for a in (1.0, -0.5):
        adv = torch.full_like(ratios, a)
        logp = ratios.log().requires_grad_(True)
        clipped_surrogate(logp, torch.zeros_like(ratios), adv, 0.2, 0.28).sum().backward()
        zero = logp.grad == 0
        assert torch.equal(zero, clip_active(ratios.log(), torch.zeros_like(ratios), adv, 0.2, 0.28))


def test_grpo_loss_gradient_zero_on_clipped_tokens_and_unclipped_elsewhere():
    logp, old, _, mask, adv, _ = _batch()
    lp = logp.clone().requires_grad_(True)
    loss, metrics = grpo_loss(lp, old, None, adv, mask, beta=0.0)
    (g,) = torch.autograd.grad(loss, lp)
    lp2 = logp.clone().requires_grad_(True)
    unclipped = aggregate(-torch.exp(lp2 - old) * adv[:, None], mask, "seq-mean-token-mean")
    (g_raw,) = torch.autograd.grad(unclipped, lp2)
    active = clip_active(logp, old, adv) & mask.bool()
    assert active.any() and (~active & mask.bool()).any()
    assert torch.equal(g[active], torch.zeros(int(active.sum()), dtype=torch.float64))
    assert torch.allclose(g[~active], g_raw[~active], rtol=1e-12, atol=0)
    assert metrics["clip_frac"] == pytest.approx(float(active.sum() / mask.sum()))


def test_clipped_tokens_keep_exactly_the_kl_gradient():
    logp, old, ref, mask, adv, _ = _batch(seed=3)
    lp = logp.clone().requires_grad_(True)
    loss, _ = grpo_loss(lp, old, ref, adv, mask, beta=0.1)
    (g,) = torch.autograd.grad(loss, lp)
    lp2 = logp.clone().requires_grad_(True)
    (g_kl,) = torch.autograd.grad(0.1 * aggregate(kl_k3(lp2, ref), mask, "seq-mean-token-mean"), lp2)
    active = clip_active(logp, old, adv) & mask.bool()
    assert active.any()
    assert torch.allclose(g[active], g_kl[active], rtol=1e-12, atol=1e-15)


def test_clip_active_checks_its_input():
    z = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="`eps_low` must be <= 1"):
        clip_active(z, z, torch.zeros(2), eps_low=1.5)
    with pytest.raises(ValueError, match="`advantages` has shape"):
        clip_active(z, z, torch.zeros(3))
    with pytest.raises(ValueError, match="`old_logp` has shape"):
        clip_active(z, torch.zeros(3, 2), torch.zeros(2))


# ----------------------------------------------------------------------------- aggregation_weights


@pytest.mark.parametrize("mode", list(AGGREGATIONS))
def test_weights_equal_the_gradient_of_aggregate(mode):
    _, _, _, mask, _, _ = _batch()
    mask[4] = 0  # an empty answer
    v = torch.zeros_like(mask, requires_grad=True)
    aggregate(v, mask, mode, max_len=16).backward()
    assert torch.allclose(aggregation_weights(mask, mode, max_len=16), v.grad, rtol=1e-15, atol=0)


@pytest.mark.parametrize("mode", list(AGGREGATIONS))
def test_weighted_sum_reproduces_aggregate(mode):
    logp, _, _, mask, _, _ = _batch(seed=4)
    w = aggregation_weights(mask, mode)
    assert (w * logp).sum().item() == pytest.approx(aggregate(logp, mask, mode).item(), rel=1e-12)


def test_weights_hand_values_for_lengths_2_and_8():
    mask = torch.zeros(2, 8, dtype=torch.float64)
    mask[0, :2] = 1
    mask[1, :] = 1
    w = {mode: aggregation_weights(mask, mode, max_len=10) for mode in AGGREGATIONS}
    assert w["seq-mean-token-mean"][:, 0].tolist() == pytest.approx([1 / 4, 1 / 16])
    assert w["token-mean"][:, 0].tolist() == pytest.approx([1 / 10, 1 / 10])
    assert w["seq-mean-token-sum"][:, 0].tolist() == pytest.approx([1 / 2, 1 / 2])
    assert w["seq-mean-token-sum-norm"][:, 0].tolist() == pytest.approx([1 / 20, 1 / 20])
    # every answer gets total weight 1/B under the DeepSeekMath mode, whatever its length
    assert w["seq-mean-token-mean"].sum(dim=1).tolist() == pytest.approx([0.5, 0.5])
    # padding weighs nothing
    assert w["seq-mean-token-mean"][0, 2:].abs().sum().item() == 0.0


def test_weights_accept_a_bool_mask_and_check_input():
    mask = torch.tensor([[True, False], [True, True]])
    assert aggregation_weights(mask, "token-mean").flatten().tolist() == pytest.approx([1 / 3, 0, 1 / 3, 1 / 3])
    with pytest.raises(ValueError, match="`mode`='mean' is not known"):
        aggregation_weights(mask, "mean")
    with pytest.raises(ValueError, match="`mask` must be"):
        aggregation_weights(torch.ones(3), "token-mean")
    with pytest.raises(ValueError, match="`mask` must hold only 0 and 1"):
        aggregation_weights(torch.full((2, 2), 0.5), "token-mean")
    with pytest.raises(ValueError, match="`max_len` must be an int >= 1"):
        aggregation_weights(mask, "seq-mean-token-sum-norm", max_len=0)


# ----------------------------------------------------------------------------- sequence_log_ratio


def test_sequence_log_ratio_hand_values():
    logp = torch.tensor([[0.1, 0.2, 9.0], [0.3, 0.0, 0.0]], dtype=torch.float64)
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    old = torch.zeros_like(logp)
    assert sequence_log_ratio(logp, old, mask, "sum").tolist() == pytest.approx([0.3, 0.3])
    assert sequence_log_ratio(logp, old, mask, "mean").tolist() == pytest.approx([0.15, 0.3])


def test_sum_mode_is_the_likelihood_ratio_of_the_answer():
    logp, old, _, mask, _, _ = _batch(seed=5)
    rho = sequence_log_ratio(logp, old, mask, "sum").exp()
    per_token = torch.where(mask.bool(), torch.exp(logp - old), torch.ones_like(logp))
    assert torch.allclose(rho, per_token.prod(dim=1), rtol=1e-12)


def test_mean_mode_is_the_geometric_mean_of_the_token_ratios():
    logp, old, _, mask, _, lengths = _batch(seed=6)
    s = sequence_log_ratio(logp, old, mask, "mean").exp()
    per_token = torch.where(mask.bool(), torch.exp(logp - old), torch.ones_like(logp))
    assert torch.allclose(s, per_token.prod(dim=1) ** (1.0 / lengths.double()), rtol=1e-12)


def test_empty_answer_has_ratio_one_and_old_logp_gets_no_gradient():
    logp = torch.zeros(2, 3, dtype=torch.float64, requires_grad=True)
    old = torch.full((2, 3), -0.2, dtype=torch.float64, requires_grad=True)
    mask = torch.tensor([[1, 1, 1], [0, 0, 0]])
    out = sequence_log_ratio(logp, old, mask, "mean")
    assert out[1].item() == 0.0
    out.sum().backward()
    assert old.grad is None
    assert logp.grad.flatten().tolist() == pytest.approx([1 / 3] * 3 + [0.0] * 3)


def test_at_theta_old_gspo_gradient_equals_deepseekmath_token_mean_gradient():
    # d s_i / d logp_it = s_i / L_i = 1 / L_i at logp = old: GSPO's per-answer ratio and
    # DeepSeekMath's per-token ratio with 1/|o_i| give the same first step.
    _, old, _, mask, adv, _ = _batch(seed=7)
    lp = old.clone().requires_grad_(True)
    log_s = sequence_log_ratio(lp, old, mask, "mean")
    gspo = -clipped_surrogate(log_s, torch.zeros_like(log_s), adv, 3e-4, 4e-4).mean()
    (g_gspo,) = torch.autograd.grad(gspo, lp)
    lp2 = old.clone().requires_grad_(True)
    loss, _ = grpo_loss(lp2, old, None, adv, mask, beta=0.0, agg="seq-mean-token-mean")
    (g_dsm,) = torch.autograd.grad(loss, lp2)
    assert torch.allclose(g_gspo, g_dsm, rtol=1e-12, atol=1e-15)


def test_at_theta_old_whole_answer_ratio_gives_token_sum_weights():
    # the seed notes' sequence-level ratio: every token weighs 1/G, as in seq-mean-token-sum
    _, old, _, mask, adv, _ = _batch(seed=8)
    lp = old.clone().requires_grad_(True)
    log_rho = sequence_log_ratio(lp, old, mask, "sum")
    seed = -clipped_surrogate(log_rho, torch.zeros_like(log_rho), adv, 0.2).mean()
    (g_seed,) = torch.autograd.grad(seed, lp)
    lp2 = old.clone().requires_grad_(True)
    loss, _ = grpo_loss(lp2, old, None, adv, mask, beta=0.0, agg="seq-mean-token-sum")
    (g_sum,) = torch.autograd.grad(loss, lp2)
    assert torch.allclose(g_seed, g_sum, rtol=1e-12, atol=1e-15)


def test_sequence_log_ratio_checks_input():
    z = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="`mode`='max' is not known"):
        sequence_log_ratio(z, z, torch.ones(2, 3), "max")
    with pytest.raises(ValueError, match="`logp` must be \\[B, T\\]"):
        sequence_log_ratio(torch.zeros(3), torch.zeros(3), torch.ones(3))
    with pytest.raises(ValueError, match="`mask` has shape"):
        sequence_log_ratio(z, z, torch.ones(2, 2))
    assert set(SEQUENCE_RATIOS) == {"sum", "mean"}
    assert math.isfinite(sequence_log_ratio(z, z, torch.ones(2, 3)).sum().item())
