"""Claims about the clipped surrogate, loss aggregation and the GRPO loss (chapter 'The objective')."""

import math

import pytest
import torch

from grpo_core import AGGREGATIONS, aggregate, clipped_surrogate, group_advantages, grpo_loss, kl_k3

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _logp_for_ratio(ratios, dtype=torch.float64):
    r = torch.as_tensor(ratios, dtype=dtype)
    return r.log(), torch.zeros_like(r)


# ----------------------------------------------------------------------------- clipped surrogate


@pytest.mark.parametrize(
    "ratio,adv,expected",
    [
        (1.5, 1.0, 1.2),  # A > 0, ratio above 1 + eps: clipped
        (0.5, 1.0, 0.5),  # A > 0, ratio below 1 - eps: min picks the unclipped r * A
        (0.5, -1.0, -0.8),  # A < 0, ratio below 1 - eps: clipped
        (1.5, -1.0, -1.5),  # A < 0, ratio above 1 + eps: unclipped (pessimistic bound)
        (1.1, 2.0, 2.2),  # inside the trust region: r * A
        (1.0, 0.0, 0.0),
    ],
)
def test_surrogate_hand_values(ratio, adv, expected):
    logp, old = _logp_for_ratio([ratio])
    value = clipped_surrogate(logp, old, torch.tensor([adv], dtype=torch.float64), eps_low=0.2)
    assert value.item() == pytest.approx(expected)


def test_clip_higher_uses_separate_upper_range():
    logp, old = _logp_for_ratio([1.5, 0.5])
    adv = torch.tensor([1.0, -1.0], dtype=torch.float64)
    value = clipped_surrogate(logp, old, adv, eps_low=0.2, eps_high=0.28)
    assert torch.allclose(value, torch.tensor([1.28, -0.8], dtype=torch.float64))


def test_advantages_broadcast_over_tokens():
    gen = torch.Generator().manual_seed(1)
    logp, old = torch.randn(3, 5, generator=gen), torch.randn(3, 5, generator=gen)
    adv = torch.tensor([1.0, -2.0, 0.5])
    per_answer = clipped_surrogate(logp, old, adv)
    per_token = clipped_surrogate(logp, old, adv[:, None].expand(3, 5))
    assert torch.equal(per_answer, per_token)


def test_gradient_is_zero_exactly_where_the_clip_is_active():
    ratios = torch.tensor([0.5, 0.9, 1.1, 1.5, 0.5, 0.9, 1.1, 1.5], dtype=torch.float64)
    adv = torch.tensor([1.0, 1.0, 1.0, 1.0, -1.0, -1.0, -1.0, -1.0], dtype=torch.float64)
    logp = ratios.log().requires_grad_(True)
    clipped_surrogate(logp, torch.zeros(8, dtype=torch.float64), adv, eps_low=0.2).sum().backward()
    active = torch.tensor([False, False, False, True, True, False, False, False])
    assert torch.equal(logp.grad[active], torch.zeros(2, dtype=torch.float64))
    # elsewhere d(r A)/d log pi = r A
    assert torch.allclose(logp.grad[~active], (ratios * adv)[~active])


def test_old_logp_gets_no_gradient():
    logp = torch.zeros(2, 3, requires_grad=True)
    old = torch.full((2, 3), -0.1, requires_grad=True)
    clipped_surrogate(logp, old, torch.ones(2)).sum().backward()
    assert old.grad is None


# ----------------------------------------------------------------------------- aggregation

VALUES = torch.tensor([[1.0, 2.0, 3.0, 4.0], [10.0, 20.0, 30.0, 40.0]], dtype=torch.float64)
MASK = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0]])


@pytest.mark.parametrize(
    "mode,expected",
    [
        ("seq-mean-token-mean", ((1 + 2 + 3) / 3 + 10 / 1) / 2),  # 6.0
        ("token-mean", (1 + 2 + 3 + 10) / 4),  # 4.0
        ("seq-mean-token-sum", ((1 + 2 + 3) + 10) / 2),  # 8.0
        ("seq-mean-token-sum-norm", (1 + 2 + 3 + 10) / (2 * 4)),  # 2.0, max_len = T = 4
    ],
)
def test_aggregation_modes_hand_values(mode, expected):
    assert aggregate(VALUES, MASK, mode).item() == pytest.approx(expected)


def test_sum_norm_uses_given_max_len():
    assert aggregate(VALUES, MASK, "seq-mean-token-sum-norm", max_len=8).item() == pytest.approx(16 / 16)


def test_padding_values_never_leak():
    poisoned = VALUES.clone()
    poisoned[MASK == 0] = 1e6
    for mode in AGGREGATIONS:
        assert aggregate(poisoned, MASK, mode).item() == pytest.approx(aggregate(VALUES, MASK, mode).item())


def test_all_zero_mask_row_contributes_zero_but_counts():
    mask = torch.tensor([[1, 1, 1, 0], [0, 0, 0, 0]])
    assert aggregate(VALUES, mask, "seq-mean-token-mean").item() == pytest.approx(2.0 / 2)
    assert aggregate(VALUES, mask, "token-mean").item() == pytest.approx(2.0)
    assert aggregate(VALUES, torch.zeros(2, 4), "token-mean").item() == 0.0
    assert aggregate(VALUES, torch.zeros(2, 4), "seq-mean-token-mean").item() == 0.0


def test_length_bias_of_seq_mean_token_mean():
    # Two answers, lengths 2 and 8: per-token weight 1/(B L_i) under the DeepSeekMath mode,
    # 1/sum(L) under token-mean. Read the weights off the gradient.
    mask = torch.zeros(2, 8)
    mask[0, :2] = 1
    mask[1, :] = 1
    weights = {}
    for mode in ("seq-mean-token-mean", "token-mean"):
        v = torch.zeros(2, 8, requires_grad=True)
        aggregate(v, mask, mode).backward()
        weights[mode] = v.grad
    assert weights["seq-mean-token-mean"][0, 0].item() == pytest.approx(1 / (2 * 2))
    assert weights["seq-mean-token-mean"][1, 0].item() == pytest.approx(1 / (2 * 8))
    assert weights["token-mean"][0, 0].item() == pytest.approx(1 / 10)
    assert weights["token-mean"][1, 0].item() == pytest.approx(1 / 10)


# ----------------------------------------------------------------------------- grpo_loss


def _batch(seed=0, b=4, t=6, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    logp = -torch.rand(b, t, generator=gen, dtype=dtype) * 3
    ref = -torch.rand(b, t, generator=gen, dtype=dtype) * 3
    lengths = torch.tensor([6, 3, 1, 4])[:b]
    mask = (torch.arange(t)[None, :] < lengths[:, None]).to(dtype)
    adv = group_advantages(torch.tensor([1.0, 0.0, 0.0, 1.0], dtype=dtype)[:b], 2)
    return logp, ref, mask, adv, lengths


def _aggregation_weight(mode, mask, lengths, max_len):
    b = mask.shape[0]
    if mode == "seq-mean-token-mean":
        return mask / (b * lengths[:, None].to(mask.dtype))
    if mode == "token-mean":
        return mask / mask.sum()
    if mode == "seq-mean-token-sum":
        return mask / b
    return mask / (b * max_len)


@pytest.mark.parametrize("mode", list(AGGREGATIONS))
@pytest.mark.parametrize("beta", [0.0, 0.04, 0.5])
def test_gradient_matches_deepseekmath_eq21(mode, beta):
    """At old_logp == logp, d loss / d logp_it = -w_it (A_i + beta (pi_ref / pi_theta - 1))."""
    logp, ref, mask, adv, lengths = _batch()
    lp = logp.clone().requires_grad_(True)
    loss, _ = grpo_loss(lp, logp, ref, adv, mask, beta=beta, kl="k3", agg=mode, max_len=10)
    loss.backward()
    coeff = adv[:, None] + beta * (torch.exp(ref - logp) - 1)
    expected = -_aggregation_weight(mode, mask, lengths, 10) * coeff
    assert torch.allclose(lp.grad, expected, rtol=1e-10, atol=1e-12)


def test_loss_value_decomposes_into_surrogate_and_kl():
    logp, ref, mask, adv, _ = _batch(seed=2)
    old = logp + 0.3 * torch.randn(logp.shape, generator=torch.Generator().manual_seed(5), dtype=logp.dtype)
    loss, metrics = grpo_loss(logp, old, ref, adv, mask, beta=0.1, eps_low=0.2, eps_high=0.28)
    surr = clipped_surrogate(logp, old, adv, 0.2, 0.28)
    expected = aggregate(-surr + 0.1 * kl_k3(logp, ref), mask, "seq-mean-token-mean")
    assert loss.item() == pytest.approx(expected.item(), rel=1e-12)
    assert metrics["policy_loss"] + metrics["kl_loss"] == pytest.approx(loss.item(), rel=1e-12)
    assert metrics["kl"] == pytest.approx(float((kl_k3(logp, ref) * mask).sum() / mask.sum()))


def test_loss_is_zero_at_the_first_step_without_kl():
    # ratio 1, advantages centred per group, every answer the same length: -mean(A) = 0.
    logp, ref, _, _, _ = _batch()
    mask = torch.ones_like(logp)
    adv = group_advantages(torch.tensor([3.0, 1.0, 0.5, 2.5], dtype=logp.dtype), 2)
    loss, metrics = grpo_loss(logp, logp, ref, adv, mask, beta=0.0)
    assert loss.item() == pytest.approx(0.0, abs=1e-12)
    assert metrics["clip_frac"] == 0.0 and metrics["ratio_mean"] == pytest.approx(1.0)


def test_clip_fraction_metrics():
    ratios = torch.tensor([[0.5, 1.5, 1.0, 0.7], [0.5, 1.5, 1.0, 1.3]], dtype=torch.float64)
    logp = ratios.log()
    adv = torch.tensor([1.0, -1.0], dtype=torch.float64)
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]])
    _, m = grpo_loss(logp, torch.zeros_like(logp), None, adv, mask, beta=0.0, eps_low=0.2)
    # A > 0 row: 1.5 is clipped high. A < 0 row: 0.5 is clipped low; 1.3 is masked out.
    assert m["clip_frac_high"] == pytest.approx(1 / 7)
    assert m["clip_frac_low"] == pytest.approx(1 / 7)
    assert m["clip_frac"] == pytest.approx(2 / 7)
    assert math.isnan(m["kl"])


def test_ref_logp_none_needs_beta_zero():
    logp, _, mask, adv, _ = _batch()
    with pytest.raises(ValueError, match="ref_logp"):
        grpo_loss(logp, logp, None, adv, mask, beta=0.04)


@pytest.mark.parametrize("device", DEVICES)
def test_runs_on_device_and_float32(device):
    logp, ref, mask, adv, _ = _batch(dtype=torch.float32)
    logp, ref, mask, adv = (x.to(device) for x in (logp, ref, mask, adv))
    lp = logp.clone().requires_grad_(True)
    loss, metrics = grpo_loss(lp, logp, ref, adv, mask)
    loss.backward()
    assert loss.device.type == device and torch.isfinite(lp.grad).all()
    assert all(isinstance(v, float) for v in metrics.values())
