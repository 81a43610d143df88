"""Claims of the chapter 'Variance of the advantage and of the gradient' (grpo_core.analysis.variance)."""

import math

import pytest
import torch

from grpo_core import group_advantages
from grpo_core.analysis.rewards import make_distribution
from grpo_core.analysis.variance import (ESTIMATORS, PromptBandits, advantage_variance_study, estimator_summary, exact_estimator_moments, excess_kurtosis, expected_gradient_weight, gae_variance, gradient_estimates, make_prompt_bandits, notes_advantage_variance, sample_variance_relvar, true_gradient)
from grpo_core.analysis.rewards import LogNormal, StudentT
from grpo_core import gae


def _sample_kurtosis(x):
    c = x - x.mean()
    return float((c**4).mean() / (c**2).mean() ** 2 - 3.0)


# ------------------------------------------------------------------------ heavy-tailed samplers


@pytest.mark.parametrize("dist", [StudentT(df=10.0), StudentT(df=7.0, loc=1.5, scale=0.5), LogNormal(0.0, 0.5), LogNormal(-1.0, 0.3)],
                         ids=lambda d: d.label)
def test_new_samplers_have_their_stated_mean_and_std(dist):
    x = dist.sample(400_000, 1, seed=1, dtype=torch.float64)[:, 0]
    se = dist.std / math.sqrt(x.numel())
    assert abs(float(x.mean()) - dist.mean) < 5 * se
    assert float(x.std()) == pytest.approx(dist.std, rel=0.02)


def test_new_samplers_are_reproducible_and_leave_the_global_rng_alone():
    state = torch.get_rng_state()
    a = StudentT(df=10.0).sample(3, 4, seed=7)
    b = StudentT(df=10.0).sample(3, 4, seed=7)
    assert torch.equal(a, b) and torch.equal(state, torch.get_rng_state())


def test_new_samplers_check_their_parameters():
    with pytest.raises(ValueError, match="`df` must be > 2"):
        StudentT(df=2.0)
    with pytest.raises(ValueError, match="`scale`"):
        StudentT(scale=0.0)
    with pytest.raises(ValueError, match="`sigma`"):
        LogNormal(sigma=-0.1)


# ------------------------------------------------------------------------------- kurtosis


def test_excess_kurtosis_hand_values():
    assert excess_kurtosis(make_distribution("gaussian", sigma=2.0)) == 0.0
    assert excess_kurtosis(make_distribution("uniform")) == pytest.approx(-1.2)
    assert excess_kurtosis(make_distribution("bernoulli", p=0.5)) == pytest.approx(-2.0)
    assert excess_kurtosis(make_distribution("bernoulli", p=0.1)) == pytest.approx((1 - 6 * 0.09) / 0.09)
    assert excess_kurtosis(make_distribution("beta", a=1.0, b=1.0)) == pytest.approx(-1.2)  # Beta(1,1) = U[0,1]
    # a mixture with no width and equal weights is a two-point (Bernoulli 1/2) reward
    assert excess_kurtosis(make_distribution("mixture", w=0.5, mu1=0.0, mu2=3.0, sigma=0.0)) == pytest.approx(-2.0)
    assert excess_kurtosis(make_distribution("mixture", w=1.0, mu1=0.0, mu2=3.0, sigma=0.4)) == pytest.approx(0.0)
    assert excess_kurtosis(StudentT(df=10.0)) == pytest.approx(1.0)


@pytest.mark.parametrize(
    "dist",
    [make_distribution("beta", a=2.0, b=5.0), make_distribution("mixture", w=0.2, mu1=-1.0, mu2=3.0, sigma=0.7),
     LogNormal(0.0, 0.3), make_distribution("bernoulli", p=0.2)],
    ids=lambda d: d.label,
)
def test_excess_kurtosis_matches_simulation(dist):
    x = dist.sample(1_000_000, 1, seed=2, dtype=torch.float64)[:, 0]
    assert _sample_kurtosis(x) == pytest.approx(excess_kurtosis(dist), abs=0.08)


def test_excess_kurtosis_refuses_undefined_cases():
    with pytest.raises(ValueError, match="not .*i.i.d"):
        excess_kurtosis(make_distribution("bernoulli-beta"))
    with pytest.raises(ValueError, match="no spread"):
        excess_kurtosis(make_distribution("bernoulli", p=0.0))
    with pytest.raises(ValueError, match="fourth moment"):
        excess_kurtosis(StudentT(df=4.0))
    with pytest.raises(ValueError, match="`dist`"):
        excess_kurtosis("gaussian")


# ------------------------------------------------------------------ variance of one advantage


def test_population_std_advantages_have_sum_zero_and_sum_of_squares_G():
    gen = torch.Generator().manual_seed(0)
    for G in (2, 3, 8, 33):
        r = torch.rand(500, G, generator=gen, dtype=torch.float64) ** 3
        a = group_advantages(r, G, eps=0.0)
        zeros = torch.zeros(500, dtype=torch.float64)
        assert torch.allclose(a.sum(dim=1), zeros, atol=1e-12)
        assert torch.allclose((a * a).sum(dim=1), zeros + G)
        s = group_advantages(r, G, std="sample", eps=0.0)
        assert torch.allclose((s * s).sum(dim=1), zeros + (G - 1))


@pytest.mark.parametrize("dist", [make_distribution("gaussian"), make_distribution("bernoulli", p=0.2), LogNormal(0.0, 0.5)],
                         ids=lambda d: d.label)
def test_advantage_variance_is_one_and_does_not_fall_like_one_over_G(dist):
    # the notes' formula drops by 4x from G = 4 to G = 16; the advantage's variance stays 1
    k = excess_kurtosis(dist)
    assert notes_advantage_variance(4, k) / notes_advantage_variance(16, k) == pytest.approx(4.0)
    for G in (4, 16):
        out = advantage_variance_study(dist, G, n_groups=40_000, seed=3)
        assert out["var_adv"] == pytest.approx(1.0, abs=0.04)
        assert out["var_adv_sample"] == pytest.approx((G - 1) / G, abs=0.04)


def test_notes_formula_and_sample_variance_hand_values():
    assert notes_advantage_variance(4, 0.0) == 0.25
    assert notes_advantage_variance(8, 2.0) == 0.25
    assert notes_advantage_variance(10, -2.0) == 0.0
    assert sample_variance_relvar(2, 0.0) == 2.0
    assert sample_variance_relvar(5, 1.0) == pytest.approx(2 / 4 + 1 / 5)
    with pytest.raises(ValueError, match="`kurtosis` must be >= -2"):
        notes_advantage_variance(4, -3.0)
    with pytest.raises(ValueError, match="`G`"):
        sample_variance_relvar(1, 0.0)


@pytest.mark.parametrize("dist", [make_distribution("gaussian"), make_distribution("uniform"), make_distribution("bernoulli", p=0.1)],
                         ids=lambda d: d.label)
def test_relative_variance_of_the_sample_variance_is_exact(dist):
    G = 6
    out = advantage_variance_study(dist, G, n_groups=120_000, seed=4)
    assert out["relvar_s2"] == pytest.approx(sample_variance_relvar(G, excess_kurtosis(dist)), rel=0.04)


def test_notes_formula_is_half_the_relative_variance_of_the_known_mean_variance():
    # (1/G) sum (r_i - mu)^2 has variance sigma^4 (2 + gamma_2) / G exactly: twice the notes' expression.
    gen = torch.Generator().manual_seed(5)
    G = 8
    for dist in (make_distribution("uniform"), LogNormal(0.0, 0.3)):
        r = dist.sample(300_000, G, seed=int(torch.randint(1000, (1,), generator=gen)), dtype=torch.float64)
        v = ((r - dist.mean) ** 2).mean(dim=1) / dist.std**2
        assert float(v.var()) / 2 == pytest.approx(notes_advantage_variance(G, excess_kurtosis(dist)), rel=0.03)


def test_oracle_error_shrinks_like_one_over_G():
    d = make_distribution("gaussian")
    small = advantage_variance_study(d, 16, n_groups=50_000, seed=6)["oracle_mse"]
    large = advantage_variance_study(d, 64, n_groups=20_000, seed=6)["oracle_mse"]
    assert 16 * small == pytest.approx(1.5, rel=0.05) and 64 * large == pytest.approx(1.5, rel=0.03)


def test_advantage_variance_study_errors():
    with pytest.raises(ValueError, match="no spread"):
        advantage_variance_study(make_distribution("bernoulli", p=1.0), 4)
    with pytest.raises(ValueError, match="`n_groups`"):
        advantage_variance_study(make_distribution("gaussian"), 4, n_groups=1)


# ------------------------------------------------------------------------------------------ GAE


def test_gae_variance_limits_and_bound():
    x = 0.95
    assert gae_variance(2.0, 1.0, x, rho=0.0) == pytest.approx(4.0 / (1 - x * x))
    assert gae_variance(2.0, 1.0, x, rho=1.0) == pytest.approx(4.0 / (1 - x) ** 2)  # the notes' expression
    assert gae_variance(1.0, 1.0, 1.0, horizon=10, rho=0.0) == 10.0
    assert gae_variance(1.0, 1.0, 1.0, horizon=10, rho=1.0) == 100.0
    for rho in (0.0, 0.3, 0.7):
        assert gae_variance(1.0, 0.99, 0.9, rho=rho) < gae_variance(1.0, 0.99, 0.9, rho=1.0)
    with pytest.raises(ValueError, match="`horizon` must be given"):
        gae_variance(1.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="`rho`"):
        gae_variance(1.0, 0.9, 0.9, rho=-0.1)


def test_gae_variance_finite_horizon_matches_the_covariance_matrix():
    H, x, rho, sigma = 7, 0.8, 0.4, 1.3
    a = torch.tensor([x**k for k in range(H)], dtype=torch.float64)
    cov = sigma**2 * ((1 - rho) * torch.eye(H, dtype=torch.float64) + rho * torch.ones(H, H, dtype=torch.float64))
    assert gae_variance(sigma, 1.0, x, horizon=H, rho=rho) == pytest.approx(float(a @ cov @ a))


def test_gae_variance_matches_a_simulated_chain():
    # r_t = c + e_t with c shared by the episode; critic V = 0 (it cannot see c): delta_t = r_t
    gen = torch.Generator().manual_seed(9)
    N, T, sc, se = 30_000, 40, 0.6, 0.8
    r = sc * torch.randn(N, 1, generator=gen, dtype=torch.float64) + se * torch.randn(N, T, generator=gen, dtype=torch.float64)
    a0 = gae(r, torch.zeros_like(r), None, 0.99, 0.9)[0][:, 0]
    want = gae_variance(math.hypot(sc, se), 0.99, 0.9, horizon=T, rho=sc**2 / (sc**2 + se**2))
    assert float(a0.var()) == pytest.approx(want, rel=0.04)


# ------------------------------------------------------------------------- gradient estimators


@pytest.fixture(scope="module")
def prompts():
    return make_prompt_bandits((0.05, 0.3, 0.6, 0.9))


def test_prompt_set_has_the_requested_success_rates(prompts):
    assert torch.allclose(prompts.success, torch.tensor([0.05, 0.3, 0.6, 0.9], dtype=torch.float64))
    assert torch.allclose(prompts.reward_std, (prompts.success * (1 - prompts.success)).sqrt())
    assert prompts.binary and prompts.n_prompts == 4 and prompts.n_answers == 8


def test_prompt_set_errors():
    with pytest.raises(ValueError, match="`success`"):
        make_prompt_bandits((0.5, 1.0))
    with pytest.raises(ValueError, match=r"\[P, K\]"):
        PromptBandits(torch.zeros(2, 3), torch.zeros(3, 2))
    with pytest.raises(ValueError, match="`prompts`"):
        true_gradient("prompts")


def test_true_gradient_equals_autograd(prompts):
    logits = prompts.logits.clone().requires_grad_(True)
    (auto,) = torch.autograd.grad(prompts.objective(logits), logits)
    assert torch.allclose(true_gradient(prompts), auto, atol=1e-15)


@pytest.mark.parametrize("estimator", ["none", "critic", "learned-critic", "rloo"])
def test_baseline_estimators_are_unbiased(prompts, estimator):
    est = gradient_estimates(prompts, 4, estimator, 100_000, seed=10)
    se = est.std(dim=0) / math.sqrt(est.shape[0])
    assert bool(((est.mean(dim=0) - true_gradient(prompts)).abs() <= 5 * se + 1e-12).all())


def test_rloo_is_dr_grpo_times_G_over_G_minus_one_batch_by_batch(prompts):
    G = 5
    rloo = gradient_estimates(prompts, G, "rloo", 200, seed=11)
    dr = gradient_estimates(prompts, G, "dr-grpo", 200, seed=11)
    assert torch.allclose(rloo, dr * G / (G - 1))


def test_at_G_2_grpo_is_twice_dr_grpo_batch_by_batch(prompts):
    # two different 0/1 rewards: population std 1/2, so A = +-1 against Dr. GRPO's +-1/2
    grpo = gradient_estimates(prompts, 2, "grpo", 300, seed=12)
    dr = gradient_estimates(prompts, 2, "dr-grpo", 300, seed=12)
    assert torch.allclose(grpo, 2 * dr)


def test_estimates_are_gradients_of_the_surrogate(prompts):
    # one batch by hand with autograd: (1/(P G)) sum A log pi(a) for the RLOO advantages
    G = 3
    est = gradient_estimates(prompts, G, "rloo", 1, seed=13)[0]
    gen = torch.Generator().manual_seed(13)
    from grpo_core.analysis.variance import _sample_answers

    idx = _sample_answers(prompts, (1, G), gen)[0]
    r = torch.gather(prompts.rewards, 1, idx)
    adv = r - (r.sum(dim=1, keepdim=True) - r) / (G - 1)
    logits = prompts.logits.clone().requires_grad_(True)
    logp = torch.gather(torch.log_softmax(logits, dim=1), 1, idx)
    (auto,) = torch.autograd.grad((adv * logp).sum() / (prompts.n_prompts * G), logits)
    assert torch.allclose(est, auto)


@pytest.mark.parametrize("estimator", list(ESTIMATORS))
@pytest.mark.parametrize("G", [2, 5, 16])
def test_exact_moments_match_monte_carlo(prompts, estimator, G):
    exact = exact_estimator_moments(prompts, G, estimator)
    est = gradient_estimates(prompts, G, estimator, 40_000, seed=14)
    se = est.std(dim=0) / math.sqrt(est.shape[0])
    assert bool(((est.mean(dim=0) - exact["mean"]).abs() <= 5 * se + 1e-12).all())
    assert float(est.var(dim=0).sum()) == pytest.approx(exact["trace_cov"], rel=0.04)


def test_exact_group_moments_need_binary_rewards():
    ps = PromptBandits(torch.zeros(1, 3), torch.tensor([[0.0, 0.5, 1.0]]))
    with pytest.raises(ValueError, match="0/1 rewards"):
        exact_estimator_moments(ps, 4, "grpo")
    exact_estimator_moments(ps, 4, "critic")  # the i.i.d. estimators take any reward


def test_expected_gradient_weight_hand_values():
    p = torch.tensor([0.05, 0.3, 0.5, 0.9])
    assert torch.allclose(expected_gradient_weight(p, 2, "grpo"), torch.ones(4, dtype=torch.float64))
    assert torch.allclose(expected_gradient_weight(p, 8, "dr-grpo"), torch.full((4,), 7 / 8, dtype=torch.float64))
    assert torch.allclose(expected_gradient_weight(p, 8, "rloo"), torch.ones(4, dtype=torch.float64))
    # G = 3, p = 1/2: own answer right, others (k' right of 2): k'=0 -> A=sqrt(2), k'=1 -> sqrt(1/2), k'=2 -> 0;
    # own answer wrong: k'=0 -> 0, k'=1 -> -sqrt(1/2), k'=2 -> -sqrt(2)
    right = 0.25 * math.sqrt(2) + 0.5 * math.sqrt(0.5)
    assert float(expected_gradient_weight(0.5, 3, "grpo")) == pytest.approx(2 * right)


def test_grpo_weight_tends_to_one_over_the_reward_std():
    p = torch.tensor([0.1, 0.3, 0.5, 0.8])
    assert torch.allclose(expected_gradient_weight(p, 4000, "grpo"), 1 / (p * (1 - p)).sqrt().double(), rtol=2e-3)


def test_expected_grpo_gradient_is_the_weighted_true_gradient(prompts):
    for G in (3, 8, 32):
        alpha = expected_gradient_weight(prompts.success, G, "grpo")
        mean = exact_estimator_moments(prompts, G, "grpo")["mean"]
        assert torch.allclose(mean, alpha[:, None] * true_gradient(prompts))


def test_expected_gradient_weight_errors():
    with pytest.raises(ValueError, match="`success`"):
        expected_gradient_weight(1.2, 4)
    with pytest.raises(ValueError, match="`estimator`"):
        expected_gradient_weight(0.5, 4, "ppo")


def test_estimator_summary_hand_values():
    t = torch.tensor([3.0, 4.0])
    s = estimator_summary(t, 10.0, t)
    assert s["cosine"] == pytest.approx(1.0) and s["norm_ratio"] == 1.0
    assert s["noise_to_signal"] == pytest.approx(0.4) and s["relative_mse"] == pytest.approx(0.4)
    s = estimator_summary(2 * t, 10.0, t)
    assert s["noise_to_signal"] == pytest.approx(0.1) and s["relative_variance"] == pytest.approx(0.4)
    assert s["relative_mse"] == pytest.approx((10 + 25) / 25)
    assert estimator_summary(torch.tensor([-4.0, 3.0]), 0.0, t)["cosine"] == pytest.approx(0.0)
    with pytest.raises(ValueError, match="zero vector"):
        estimator_summary(t, 1.0, torch.zeros(2))
    with pytest.raises(ValueError, match="`trace_cov`"):
        estimator_summary(t, -1.0, t)


def test_gradient_estimates_errors(prompts):
    with pytest.raises(ValueError, match="`estimator`"):
        gradient_estimates(prompts, 4, "ppo")
    with pytest.raises(ValueError, match="`G`"):
        gradient_estimates(prompts, 1, "grpo")
    with pytest.raises(ValueError, match="`n`"):
        gradient_estimates(prompts, 4, "grpo", 0)
