"""Exact KL, the estimators' moments and Monte Carlo behaviour, and what a KL penalty optimises."""

from __future__ import annotations

import math

import pytest
import torch

from grpo_core.kl import kl_k1, kl_k3
from grpo_core.analysis.kl_analysis import (categorical_estimator_moments, categorical_kl, expected_estimator_gradient, gaussian_estimator_moments, gaussian_kl, k3_loss_fixed_point, beta_for_kl, kl_regularised_optimum, monte_carlo_kl, sample_categorical_pair, sample_gaussian_pair)

D = torch.float64


def _random_pair(K=5, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(K, generator=gen, dtype=D), torch.randn(K, generator=gen, dtype=D)


# ----------------------------------------------------------------------------- exact KL


def test_categorical_kl_by_hand_and_asymmetric():
    p, q = [0.5, 0.5], [0.25, 0.75]
    forward = 0.5 * math.log(2.0) + 0.5 * math.log(2 / 3)
    assert categorical_kl(p, q) == pytest.approx(forward)
    backward = 0.25 * math.log(0.5) + 0.75 * math.log(1.5)
    assert categorical_kl(q, p) == pytest.approx(backward)
    assert categorical_kl(p, q) != pytest.approx(categorical_kl(q, p))
    assert categorical_kl(p, p) == 0.0


def test_categorical_kl_support():
    assert categorical_kl([0.0, 1.0], [0.5, 0.5]) == pytest.approx(math.log(2.0))  # 0 log 0 = 0
    assert categorical_kl([0.5, 0.5], [0.0, 1.0]) == math.inf  # mass where the reference has none


def test_gaussian_kl_by_hand():
    assert gaussian_kl(0.0, 1.0, 1.0, 1.0) == pytest.approx(0.5)
    assert gaussian_kl(0.0, 1.0, 0.0, 2.0) == pytest.approx(math.log(2.0) + 1 / 8 - 0.5)
    assert gaussian_kl(0.3, 0.7, 0.3, 0.7) == 0.0


# ----------------------------------------------------------------------------- exact moments


def test_k1_and_k3_are_unbiased_k2_is_not_categorical():
    p, q = torch.tensor([0.5, 0.3, 0.2], dtype=D), torch.tensor([0.2, 0.3, 0.5], dtype=D)
    kl = categorical_kl(p, q)
    m = categorical_estimator_moments(p, q)
    assert m["k1"].mean == pytest.approx(kl, abs=1e-15)
    assert m["k3"].mean == pytest.approx(kl, abs=1e-15)
    assert abs(m["k2"].mean - kl) > 0.01
    # by hand: k1 per answer is log(p/q), so its variance is E[log^2] - KL^2
    lr = (p / q).log()
    assert m["k1"].std == pytest.approx(math.sqrt(float((p * lr**2).sum()) - kl**2))


def test_k1_negative_per_sample_k3_never():
    p, q = torch.tensor([0.5, 0.3, 0.2], dtype=D), torch.tensor([0.2, 0.3, 0.5], dtype=D)
    assert bool((kl_k1(p.log(), q.log()) < 0).any())  # answer 3: pi_ref > pi_theta
    assert bool((kl_k3(p.log(), q.log()) >= 0).all())


def test_gaussian_moments_closed_form_by_hand():
    # pi_ref = N(1, 1): log_r = -z - 1/2, so k1 = z + 1/2 has std 1 and k2 mean (1 + 1/4) / 2
    m = gaussian_estimator_moments(0.0, 1.0, 1.0, 1.0)
    assert m["k1"] == pytest.approx((0.5, 1.0))
    assert m["k2"].mean == pytest.approx(0.625)
    # E[k2^2] = E[(z + 1/2)^4] / 4 = (3 + 6/4 + 1/16) / 4
    assert m["k2"].std == pytest.approx(math.sqrt((3 + 1.5 + 1 / 16) / 4 - 0.625**2))
    assert m["k3"].mean == pytest.approx(0.5)


@pytest.mark.parametrize("ref", [(0.5, 1.0), (1.0, 1.0), (0.3, 0.7), (0.5, 1.2), (0.0, 0.5)])
def test_gaussian_moments_match_monte_carlo(ref):
    m = gaussian_estimator_moments(0.0, 1.0, *ref)
    logp, ref_logp = sample_gaussian_pair(1, 400_000, *ref, seed=3)
    stats = monte_carlo_kl(logp, ref_logp, gaussian_kl(0.0, 1.0, *ref))
    for kind in ("k1", "k2", "k3"):
        est = stats[kind].estimates
        se = m[kind].std / math.sqrt(est.numel())
        assert float(est.mean()) == pytest.approx(m[kind].mean, abs=6 * se)
        if kind != "k3" or ref[1] < 1.1:  # k3 is heavy-tailed for a wide reference: sample std unreliable
            assert float(est.std()) == pytest.approx(m[kind].std, rel=0.03)


def test_gaussian_mean_shift_is_general():
    # the closed form must not assume pi_theta = N(0, 1): shift and scale both distributions
    a = gaussian_estimator_moments(0.0, 1.0, 0.5, 1.2)
    b = gaussian_estimator_moments(3.0, 2.0, 4.0, 2.4)
    for kind in a:
        assert b[kind] == pytest.approx(a[kind])


def test_k3_variance_is_infinite_for_a_reference_sqrt2_wider():
    assert math.isinf(gaussian_estimator_moments(0.0, 1.0, 0.0, math.sqrt(2.0))["k3"].std)
    assert math.isinf(gaussian_estimator_moments(0.0, 1.0, 0.5, 2.0)["k3"].std)
    assert math.isfinite(gaussian_estimator_moments(0.0, 1.0, 0.5, 1.4)["k3"].std)
    assert math.isfinite(gaussian_estimator_moments(0.0, 1.0, 0.5, 2.0)["k1"].std)


def test_which_estimator_has_the_lowest_variance_depends_on_the_pair():
    close = gaussian_estimator_moments(0.0, 1.0, 0.1, 1.0)
    assert close["k3"].std < close["k1"].std / 10  # near pi_ref, k3 is ~20x less noisy
    wide = gaussian_estimator_moments(0.0, 1.0, 0.5, 1.3)
    assert wide["k1"].std < wide["k3"].std  # a wider reference: k1 wins


# ----------------------------------------------------------------------------- Monte Carlo


def test_sample_shapes_and_categorical_monte_carlo():
    p, q = [0.5, 0.3, 0.2], [0.2, 0.3, 0.5]
    logp, ref_logp = sample_categorical_pair(p, q, n=8, reps=20000, seed=1)
    assert logp.shape == ref_logp.shape == (20000, 8)
    stats = monte_carlo_kl(logp, ref_logp, categorical_kl(p, q))
    m = categorical_estimator_moments(p, q)
    for kind in ("k1", "k3"):
        assert abs(stats[kind].bias) < 4 * m[kind].std / math.sqrt(8 * 20000)
        assert stats[kind].std == pytest.approx(m[kind].std / math.sqrt(8), rel=0.03)
    assert stats["k2"].bias == pytest.approx(m["k2"].mean - m["k1"].mean, abs=0.003)
    assert stats["k1"].negative_share == pytest.approx(0.2, abs=0.01)  # answer 3 has pi_ref > pi_theta
    assert stats["k3"].negative_share == 0.0 and stats["k3"].negative_estimate_share == 0.0
    assert stats["k1"].negative_estimate_share > 0.0


def test_sampling_is_seeded():
    a = sample_gaussian_pair(4, 10, 0.5, 1.0, seed=7)
    b = sample_gaussian_pair(4, 10, 0.5, 1.0, seed=7)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


# ----------------------------------------------------------------------------- optimum and fixed point


def _objective(pi, ref, r, beta, direction="reverse"):
    kl = (pi * (pi / ref).log()).sum() if direction == "reverse" else (ref * (ref / pi).log()).sum()
    return (pi * r).sum() - beta * kl


def test_optimum_by_hand_two_answers():
    pi = kl_regularised_optimum([0.5, 0.5], [1.0, 0.0], 1.0)
    e = math.e
    assert pi.tolist() == pytest.approx([e / (1 + e), 1 / (1 + e)])


def test_optimum_maximises_the_penalised_reward():
    ref = torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=D)
    r = torch.tensor([1.0, 0.5, 0.2, 0.0], dtype=D)
    beta = 0.3
    pi = kl_regularised_optimum(ref, r, beta)
    best = _objective(pi, ref, r, beta)
    assert float(best) == pytest.approx(beta * math.log(float((ref * (r / beta).exp()).sum())))  # beta log Z
    gen = torch.Generator().manual_seed(0)
    for _ in range(50):
        other = torch.softmax(pi.log() + 0.3 * torch.randn(4, generator=gen, dtype=D), 0)
        assert float(_objective(other, ref, r, beta)) < float(best)
    # at the optimum the PPO-style shaped reward r - beta log(pi / pi_ref) is the same for every answer
    shaped = r - beta * (pi / ref).log()
    assert float(shaped.max() - shaped.min()) < 1e-12


def test_optimum_limits():
    ref, r = [0.1, 0.2, 0.3, 0.4], [1.0, 1.0, 0.0, 0.5]
    assert kl_regularised_optimum(ref, r, 0.0).tolist() == pytest.approx([1 / 3, 2 / 3, 0.0, 0.0])
    assert kl_regularised_optimum(ref, r, 1e6).tolist() == pytest.approx(ref, abs=1e-6)
    assert k3_loss_fixed_point(ref, r, 0.0).tolist() == pytest.approx([1 / 3, 2 / 3, 0.0, 0.0])
    assert k3_loss_fixed_point(ref, r, 1e6).tolist() == pytest.approx(ref, abs=1e-6)


def test_k3_fixed_point_zeroes_the_expected_k3_loss_update():
    ref = torch.tensor([0.05, 0.1, 0.15, 0.2, 0.25, 0.25], dtype=D)
    r = torch.tensor([1.0, 0.8, 0.6, 0.4, 0.2, 0.0], dtype=D)
    for beta in (0.03, 0.3, 3.0):
        pi = k3_loss_fixed_point(ref, r, beta)
        assert float(pi.sum()) == pytest.approx(1.0)
        reward_grad = pi * (r - (pi * r).sum())  # d E_pi[r] / d logits
        k3_grad = expected_estimator_gradient(pi.log(), ref.log(), "k3")
        assert float((reward_grad - beta * k3_grad).abs().max()) < 1e-10
        # the closed form: pi = beta pi_ref / (c - r) with c = E_pi r + beta
        c = float((pi * r).sum()) + beta
        assert (beta * ref / (c - r)).tolist() == pytest.approx(pi.tolist(), rel=1e-8)


def test_k3_fixed_point_maximises_reward_minus_the_other_kl():
    ref = torch.tensor([0.05, 0.1, 0.15, 0.2, 0.25, 0.25], dtype=D)
    r = torch.tensor([1.0, 0.8, 0.6, 0.4, 0.2, 0.0], dtype=D)
    beta = 0.3
    pi = k3_loss_fixed_point(ref, r, beta)
    best = float(_objective(pi, ref, r, beta, "forward"))
    gen = torch.Generator().manual_seed(1)
    for _ in range(50):
        other = torch.softmax(pi.log() + 0.3 * torch.randn(6, generator=gen, dtype=D), 0)
        assert float(_objective(other, ref, r, beta, "forward")) < best


def test_loss_and_reward_forms_differ_and_k3_falls_below_the_frontier():
    ref = torch.tensor([0.05, 0.1, 0.15, 0.2, 0.25, 0.25], dtype=D)
    r = torch.tensor([1.0, 0.8, 0.6, 0.4, 0.2, 0.0], dtype=D)
    pk = k3_loss_fixed_point(ref, r, 0.3)
    assert float((pk - kl_regularised_optimum(ref, r, 0.3)).abs().max()) > 0.05
    kl_k3pt = categorical_kl(pk, ref)
    # the optimum with the same KL earns more reward
    same_kl = kl_regularised_optimum(ref, r, beta_for_kl(ref, r, kl_k3pt))
    assert categorical_kl(same_kl, ref) == pytest.approx(kl_k3pt, rel=1e-6)
    assert float(same_kl @ r) > float(pk @ r) + 0.01


def test_beta_for_kl_inverts_the_optimum_kl():
    ref, r = [0.1, 0.2, 0.3, 0.4], [1.0, 0.5, 0.2, 0.0]
    for beta in (0.05, 0.3, 2.0):
        kl = categorical_kl(kl_regularised_optimum(ref, r, beta), ref)
        assert beta_for_kl(ref, r, kl) == pytest.approx(beta, rel=1e-8)
    with pytest.raises(ValueError, match="`kl` must be in \\(0, 2.302"):  # limit: log(1 / 0.1)
        beta_for_kl(ref, r, 5.0)


def test_with_two_reward_levels_the_k3_point_is_an_optimum_for_another_beta():
    ref = torch.tensor([0.1, 0.1, 0.3, 0.5], dtype=D)
    r = torch.tensor([1.0, 1.0, 0.0, 0.0], dtype=D)
    pk = k3_loss_fixed_point(ref, r, 0.2)
    tilt = (pk / ref).log()  # constant within each reward level
    assert float(tilt[:2].max() - tilt[:2].min()) < 1e-12 and float(tilt[2:].max() - tilt[2:].min()) < 1e-12
    beta_eq = 1.0 / float(tilt[0] - tilt[2])
    assert kl_regularised_optimum(ref, r, beta_eq).tolist() == pytest.approx(pk.tolist())


# ----------------------------------------------------------------------------- gradients


def _kl_grads(logits, ref_logits):
    lg = logits.clone().requires_grad_(True)
    logp, logq = torch.log_softmax(lg, 0), torch.log_softmax(ref_logits, 0)
    (reverse,) = torch.autograd.grad((logp.exp() * (logp - logq)).sum(), lg)
    lg = logits.clone().requires_grad_(True)
    logp = torch.log_softmax(lg, 0)
    (forward,) = torch.autograd.grad((logq.exp() * (logq - logp)).sum(), lg)
    return reverse, forward


def test_expected_gradients_of_the_three_estimators():
    for seed in range(3):
        logits, ref_logits = _random_pair(6, seed)
        reverse, forward = _kl_grads(logits, ref_logits)
        assert float(expected_estimator_gradient(logits, ref_logits, "k1").abs().max()) < 1e-14
        assert float((expected_estimator_gradient(logits, ref_logits, "k2") - reverse).abs().max()) < 1e-12
        assert float((expected_estimator_gradient(logits, ref_logits, "k3") - forward).abs().max()) < 1e-12
        # grad_logits KL(pi_ref || pi) = pi - pi_ref
        pi, ref = torch.softmax(logits, 0), torch.softmax(ref_logits, 0)
        assert float((forward - (pi - ref)).abs().max()) < 1e-12
        assert float((forward - reverse).abs().max()) > 1e-3


def test_the_weighted_estimators_give_the_true_kl_gradient():
    logits, ref_logits = _random_pair(6, 4)
    reverse, _ = _kl_grads(logits, ref_logits)
    for kind in ("k1", "k3"):
        g = expected_estimator_gradient(logits, ref_logits, kind, weighted=True)
        assert float((g - reverse).abs().max()) < 1e-12


def test_expected_gradient_matches_an_average_of_sampled_gradients():
    logits, ref_logits = _random_pair(4, 5)
    exact = expected_estimator_gradient(logits, ref_logits, "k3")
    gen = torch.Generator().manual_seed(0)
    idx = torch.multinomial(torch.softmax(logits, 0), 200_000, replacement=True, generator=gen)
    lg = logits.clone().requires_grad_(True)
    k = kl_k3(torch.log_softmax(lg, 0)[idx], torch.log_softmax(ref_logits, 0)[idx])
    (sampled,) = torch.autograd.grad(k.mean(), lg)
    assert float((sampled - exact).abs().max()) < 0.02


# ----------------------------------------------------------------------------- input checks


@pytest.mark.parametrize(
    "call,pattern",
    [
        (lambda: categorical_kl([0.5, 0.6], [0.5, 0.5]), "`probs` must be non-negative and sum to 1"),
        (lambda: categorical_kl([0.5, 0.5], [1.0]), "`ref_probs` must be a 1-D vector of K >= 2"),
        (lambda: categorical_kl([0.5, 0.5], [0.2, 0.3, 0.5]), "`ref_probs` has 3 entries"),
        (lambda: gaussian_kl(0.0, 0.0, 0.0, 1.0), "`sigma` must be > 0"),
        (lambda: gaussian_kl(0.0, 1.0, math.nan, 1.0), "`ref_mu` must be a finite number"),
        (lambda: gaussian_estimator_moments(0.0, 1.0, 0.0, -1.0), "`ref_sigma`"),
        (lambda: categorical_estimator_moments([1.0, 0.0], [0.5, 0.5]), "must be > 0 for every answer"),
        (lambda: sample_gaussian_pair(0, 10, 0.0, 1.0), "`n` must be an int >= 1"),
        (lambda: sample_categorical_pair([0.5, 0.5], [1.0, 0.0], 4, 4), "the KL is infinite"),
        (lambda: monte_carlo_kl(torch.zeros(4), torch.zeros(4), 0.0), "`logp` must be \\[reps, n\\]"),
        (lambda: kl_regularised_optimum([0.5, 0.5], [1.0, 0.0], -0.1), "`beta` must be a finite number >= 0"),
        (lambda: k3_loss_fixed_point([0.5, 0.5], [1.0, 0.0, 2.0], 0.1), "`rewards` has shape"),
        (lambda: expected_estimator_gradient(torch.zeros(3), torch.zeros(3), "k4"), "`kind`='k4' is not known"),
        (lambda: expected_estimator_gradient(torch.zeros(3), torch.zeros(4)), "same length"),
    ],
)
def test_bad_inputs_raise_value_error_naming_the_argument(call, pattern):
    with pytest.raises(ValueError, match=pattern):
        call()
