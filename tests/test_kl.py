"""Claims about the KL estimators k1, k2, k3 (book chapter 'The KL penalty')."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from grpo_core import kl_estimate, kl_k1, kl_k2, kl_k3


def _k3_exact(x: float) -> float:
    """exp(x) - 1 - x to full double precision (series near 0, expm1 elsewhere)."""
    if abs(x) < 1e-3:
        return sum(x**n / math.factorial(n) for n in range(2, 10))
    return math.expm1(x) - x


def test_hand_values():
    logp = torch.tensor([-1.0, -2.0, -0.5], dtype=torch.float64)
    ref = torch.tensor([-2.0, -1.0, -0.5], dtype=torch.float64)
    # log_r = ref - logp = [-1, 1, 0]
    assert torch.allclose(kl_k1(logp, ref), torch.tensor([1.0, -1.0, 0.0], dtype=torch.float64))
    assert torch.allclose(kl_k2(logp, ref), torch.tensor([0.5, 0.5, 0.0], dtype=torch.float64))
    expected_k3 = torch.tensor([math.exp(-1) - 1 + 1, math.e - 1 - 1, 0.0], dtype=torch.float64)
    assert torch.allclose(kl_k3(logp, ref), expected_k3)


@pytest.mark.parametrize("kind,fn", [("k1", kl_k1), ("k2", kl_k2), ("k3", kl_k3)])
def test_kl_estimate_dispatches(kind, fn):
    logp = torch.randn(4, 5)
    ref = torch.randn(4, 5)
    assert torch.equal(kl_estimate(logp, ref, kind), fn(logp, ref))


def test_default_estimator_is_k3():
    logp, ref = torch.randn(7), torch.randn(7)
    assert torch.equal(kl_estimate(logp, ref), kl_k3(logp, ref))


@pytest.mark.parametrize("gap", [30.0, -30.0, 50.0, -50.0, 80.0, -200.0])
def test_k3_finite_and_accurate_for_large_gaps_float32(gap):
    logp = torch.zeros(1, dtype=torch.float32)
    ref = torch.full((1,), gap, dtype=torch.float32)
    value = kl_k3(logp, ref).item()
    assert math.isfinite(value)
    assert value == pytest.approx(_k3_exact(gap), rel=1e-6)


@pytest.mark.parametrize("gap", [1e-8, -1e-8, 1e-5, -3e-4, 0.05, -0.099, 0.1, 0.5, -2.0])
@pytest.mark.parametrize("dtype,rel", [(torch.float32, 2e-6), (torch.float64, 1e-13)])
def test_k3_accurate_for_small_gaps(gap, dtype, rel):
    logp = torch.zeros(1, dtype=dtype)
    ref = torch.tensor([gap], dtype=torch.float64).to(dtype)
    x = float(ref.item())  # the gap as actually represented in this dtype
    assert kl_k3(logp, ref).item() == pytest.approx(_k3_exact(x), rel=rel)


def test_naive_formula_loses_what_k3_keeps():
    # The textbook form via probabilities underflows for a gap of -110 in float32 (e^-110 < 1e-45):
    # ratio 0 -> log(0) = -inf. The log-ratio form stays exact.
    logp = torch.tensor([0.0])
    ref = torch.tensor([-110.0])
    ratio = torch.exp(ref) / torch.exp(logp)
    naive = ratio - torch.log(ratio) - 1
    assert not torch.isfinite(naive).all()
    assert kl_k3(logp, ref).item() == pytest.approx(109.0, rel=1e-7)


def test_k3_gradient_is_finite_and_correct_across_branches():
    x = torch.tensor([-30.0, -1.0, -0.05, 0.0, 1e-6, 0.05, 0.2, 5.0, 30.0], dtype=torch.float64)
    logp = torch.zeros_like(x, requires_grad=True)
    kl_k3(logp, x).sum().backward()
    # d/dlogp [exp(ref - logp) - 1 - (ref - logp)] = 1 - exp(ref - logp)
    assert torch.allclose(logp.grad, 1 - torch.exp(x), rtol=1e-12, atol=1e-15)


@settings(max_examples=300, deadline=None)
@given(st.floats(-60, 60, allow_nan=False), st.floats(-60, 60, allow_nan=False))
def test_property_k3_and_k2_nonnegative(a, b):
    logp = torch.tensor([a], dtype=torch.float32)
    ref = torch.tensor([b], dtype=torch.float32)
    try:
        k3 = kl_k3(logp, ref).item()
    except ValueError as err:  # exp(b - a) beyond float32's range (b - a > 88.7): named, not inf
        assert b - a > 88.0 and "`ref_logp`" in str(err)
    else:
        assert k3 >= 0.0
    assert kl_k2(logp, ref).item() >= 0.0


# --------------------------------------------------------- unbiasedness on a known categorical pair

P = torch.tensor([0.5, 0.2, 0.15, 0.1, 0.05], dtype=torch.float64)  # pi_theta: samples come from it
Q = torch.tensor([0.3, 0.3, 0.2, 0.1, 0.1], dtype=torch.float64)  # pi_ref
KL_PQ = float((P * (P / Q).log()).sum())


def test_exact_expectations_k1_k3_unbiased_k2_biased():
    logp, logq = P.log(), Q.log()
    expect = {k: float((P * kl_estimate(logp, logq, k)).sum()) for k in ("k1", "k2", "k3")}
    assert expect["k1"] == pytest.approx(KL_PQ, rel=1e-12)
    assert expect["k3"] == pytest.approx(KL_PQ, rel=1e-12)
    assert abs(expect["k2"] - KL_PQ) > 1e-3  # k2 is biased for this pair


def test_monte_carlo_means_match_and_k1_goes_negative():
    gen = torch.Generator().manual_seed(0)
    idx = torch.multinomial(P, 200_000, replacement=True, generator=gen)
    logp, logq = P.log()[idx], Q.log()[idx]
    k1, k3 = kl_k1(logp, logq), kl_k3(logp, logq)
    for est in (k1, k3):
        se = est.std().item() / math.sqrt(est.numel())
        assert abs(est.mean().item() - KL_PQ) < 4 * se
    assert (k1 < 0).any()  # single samples of k1 can be negative
    assert (k3 >= 0).all()
    assert k3.var() < k1.var()  # the point of k3: lower variance


def test_shape_mismatch_and_nonfinite_are_rejected():
    with pytest.raises(ValueError, match="ref_logp"):
        kl_k3(torch.zeros(3), torch.zeros(4))
    with pytest.raises(ValueError, match="logp"):
        kl_k1(torch.tensor([float("nan")]), torch.zeros(1))
    with pytest.raises(ValueError, match="ref_logp"):
        kl_k2(torch.zeros(1), torch.tensor([float("-inf")]))
    with pytest.raises(ValueError, match="kind"):
        kl_estimate(torch.zeros(1), torch.zeros(1), kind="k4")
