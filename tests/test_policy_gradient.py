"""Claims of the chapter 'Deriving the GRPO objective' about the policy gradient and importance
sampling, on a categorical policy and on a two-token policy whose answers can all be listed."""

import pytest
import torch

from grpo_core.analysis.policy_gradient import (enumerated_surrogates, exact_policy_gradient, policy_gradient_estimate, score_function, two_token_logprobs)

F64 = torch.float64


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


# ----------------------------------------------------------------------------- categorical policy


def test_score_function_matches_autograd():
    gen = _gen()
    logits = torch.randn(5, generator=gen, dtype=F64, requires_grad=True)
    actions = torch.tensor([0, 3, 3, 4])
    rows = [torch.autograd.grad(torch.log_softmax(logits, 0)[a], logits)[0] for a in actions]
    assert torch.allclose(score_function(logits, actions), torch.stack(rows), rtol=1e-14, atol=1e-15)


def test_score_function_hand_value_and_zero_mean():
    s = score_function(torch.zeros(4, dtype=F64), torch.tensor([2]))
    assert s[0].tolist() == pytest.approx([-0.25, -0.25, 0.75, -0.25])
    logits = torch.randn(6, generator=_gen(1), dtype=F64)
    p = torch.softmax(logits, 0)
    mean = (p[:, None] * score_function(logits, torch.arange(6))).sum(dim=0)
    assert mean.abs().max().item() < 1e-15  # E[grad log pi] = 0: why a baseline is free


def test_exact_policy_gradient_matches_autograd_and_hand_value():
    gen = _gen(2)
    logits = torch.randn(6, generator=gen, dtype=F64, requires_grad=True)
    r = torch.rand(6, generator=gen, dtype=F64)
    (g,) = torch.autograd.grad((torch.softmax(logits, 0) * r).sum(), logits)
    assert torch.allclose(exact_policy_gradient(logits, r), g, rtol=1e-13, atol=1e-15)
    # two equally likely answers, rewards 1 and 0: J = 1/2, grad = pi * (r - J) = (1/4, -1/4)
    assert exact_policy_gradient(torch.zeros(2, dtype=F64), torch.tensor([1.0, 0.0], dtype=F64)).tolist() == pytest.approx([0.25, -0.25])


def test_estimates_are_unbiased_in_exact_expectation():
    # Sum every possible answer with its probability: on-policy under pi_theta, IS under pi_old.
    gen = _gen(3)
    theta = torch.randn(5, generator=gen, dtype=F64)
    old = theta + torch.randn(5, generator=gen, dtype=F64)
    r = torch.rand(5, generator=gen, dtype=F64)
    b = 0.37  # any constant baseline
    every = torch.arange(5)
    p, q = torch.softmax(theta, 0), torch.softmax(old, 0)
    on = sum(p[a] * policy_gradient_estimate(theta, every[a : a + 1], (r[a : a + 1] - b)) for a in every)
    off = sum(q[a] * policy_gradient_estimate(theta, every[a : a + 1], (r[a : a + 1] - b), old) for a in every)
    truth = exact_policy_gradient(theta, r)
    assert torch.allclose(on, truth, atol=1e-15) and torch.allclose(off, truth, atol=1e-15)


def test_importance_sampled_estimate_converges_like_one_over_sqrt_n():
    gen = _gen(4)
    theta = torch.randn(6, generator=gen, dtype=F64)
    old = theta + 0.5 * torch.randn(6, generator=gen, dtype=F64)
    r = torch.rand(6, generator=gen, dtype=F64)
    q = torch.softmax(old, 0)
    b = float((q * r).sum())
    truth = exact_policy_gradient(theta, r)
    rms = []
    for n in (100, 10_000):
        errs = []
        for _ in range(30):
            a = torch.multinomial(q, n, replacement=True, generator=gen)
            errs.append((policy_gradient_estimate(theta, a, r[a] - b, old) - truth).norm() ** 2)
        rms.append(torch.stack(errs).mean().sqrt().item())
    assert 5 < rms[0] / rms[1] < 20  # 100x the samples: about 10x smaller error


def test_same_policy_importance_weights_are_one():
    theta = torch.randn(4, generator=_gen(5), dtype=F64)
    a = torch.tensor([0, 1, 1, 3])
    adv = torch.tensor([0.5, -1.0, 2.0, 0.1], dtype=F64)
    assert torch.allclose(policy_gradient_estimate(theta, a, adv, theta), policy_gradient_estimate(theta, a, adv))


def test_ratio_times_score_is_the_gradient_of_the_ratio():
    gen = _gen(6)
    theta = torch.randn(5, generator=gen, dtype=F64, requires_grad=True)
    old = torch.randn(5, generator=gen, dtype=F64)
    a = 2
    ratio = torch.exp(torch.log_softmax(theta, 0)[a] - torch.log_softmax(old, 0)[a])
    (g,) = torch.autograd.grad(ratio, theta)
    assert torch.allclose(g, ratio.detach() * score_function(theta.detach(), torch.tensor([a]))[0], rtol=1e-13)


@pytest.mark.parametrize(
    "call,pattern",
    [
        (lambda: score_function(torch.zeros(3), torch.tensor([3])), r"`actions` must lie in 0..2"),
        (lambda: score_function(torch.zeros(3), torch.tensor([0.0])), r"`actions` must hold integer"),
        (lambda: score_function(torch.zeros(1), torch.tensor([0])), r"`logits` must be 1-D with K >= 2"),
        (lambda: score_function(torch.zeros(3), torch.tensor([], dtype=torch.long)), r"`actions` must be 1-D and non-empty"),
        (lambda: exact_policy_gradient(torch.zeros(3), torch.zeros(4)), r"`rewards` has shape"),
        (lambda: exact_policy_gradient(torch.tensor([0.0, float("nan")]), torch.zeros(2)), r"`logits` contains nan"),
        (lambda: policy_gradient_estimate(torch.zeros(3), torch.tensor([0, 1]), torch.zeros(3)), r"`advantages` has shape"),
        (lambda: policy_gradient_estimate(torch.zeros(3), torch.tensor([0]), torch.zeros(1), torch.zeros(4)), r"`behaviour_logits` has shape"),
    ],
)
def test_categorical_functions_check_input(call, pattern):
    with pytest.raises(ValueError, match=pattern):
        call()


# ----------------------------------------------------------------------------- two-token policy


def _two_token(seed=7, v=3):
    gen = _gen(seed)
    l1 = torch.randn(v, generator=gen, dtype=F64)
    l2 = torch.randn(v, v, generator=gen, dtype=F64)
    d1 = torch.randn(v, generator=gen, dtype=F64)
    d2 = torch.randn(v, v, generator=gen, dtype=F64)
    rewards = torch.rand(v * v, generator=gen, dtype=F64)
    return l1, l2, d1, d2, rewards


def _grads(l1, l2, old, rewards):
    l1 = l1.clone().requires_grad_(True)
    l2 = l2.clone().requires_grad_(True)
    out = enumerated_surrogates(two_token_logprobs(l1, l2), old, rewards)
    return {k: torch.cat([g.flatten() for g in torch.autograd.grad(v, (l1, l2), retain_graph=True)]) for k, v in out.items()}


def test_two_token_logprobs_lists_every_answer():
    l1, l2, _, _, _ = _two_token()
    lp = two_token_logprobs(l1, l2)
    assert lp.shape == (9, 2)
    assert lp.sum(dim=1).exp().sum().item() == pytest.approx(1.0, abs=1e-14)
    # row x*V + y: log pi(x) and log pi(y | x)
    assert lp[5, 0].item() == pytest.approx(torch.log_softmax(l1, 0)[1].item())
    assert lp[5, 1].item() == pytest.approx(torch.log_softmax(l2[1], 0)[2].item())


def test_all_surrogates_agree_with_the_true_gradient_at_theta_old():
    l1, l2, _, _, rewards = _two_token()
    old = two_token_logprobs(l1, l2)
    g = _grads(l1, l2, old, rewards)
    truth = g["objective"]
    assert torch.allclose(g["sequence"], truth, atol=1e-15)
    assert torch.allclose(g["token"], truth, atol=1e-15)
    assert torch.allclose(2 * g["gspo"], truth, atol=1e-15)  # mean over T = 2 tokens


def test_values_at_theta_old_are_zero_for_the_surrogates():
    l1, l2, _, _, rewards = _two_token()
    old = two_token_logprobs(l1, l2)
    out = enumerated_surrogates(old, old, rewards)
    for k in ("sequence", "token", "gspo"):
        assert abs(out[k].item()) < 1e-15
    assert out["objective"].item() == pytest.approx(float((old.sum(dim=1).exp() * rewards).sum()))


@pytest.mark.parametrize("delta", [0.3, 1.0])
def test_sequence_ratio_is_exact_everywhere_token_ratio_is_not(delta):
    l1, l2, d1, d2, rewards = _two_token()
    old = two_token_logprobs(l1, l2)
    g = _grads(l1 + delta * d1, l2 + delta * d2, old, rewards)
    truth = g["objective"]
    assert torch.allclose(g["sequence"], truth, atol=1e-14)
    assert (g["token"] - truth).norm() > 0.05 * truth.norm()


def test_sequence_surrogate_is_objective_minus_baseline():
    l1, l2, d1, d2, rewards = _two_token()
    old = two_token_logprobs(l1, l2)
    out = enumerated_surrogates(two_token_logprobs(l1 + d1, l2 + d2), old, rewards)
    b = float((old.sum(dim=1).exp() * rewards).sum())
    assert out["sequence"].item() == pytest.approx(out["objective"].item() - b, abs=1e-14)


@pytest.mark.parametrize(
    "call,pattern",
    [
        (lambda: two_token_logprobs(torch.zeros(3), torch.zeros(3, 2)), r"`logits2` must be \[V, V\]"),
        (lambda: enumerated_surrogates(torch.zeros(4, 2), torch.zeros(4, 2), torch.zeros(4)), r"`token_logp` must list every answer"),
        (lambda: enumerated_surrogates(torch.zeros(4), torch.zeros(4), torch.zeros(4)), r"`token_logp` must be \[S, T\]"),
        (lambda: enumerated_surrogates(torch.zeros(4, 2), torch.zeros(4, 3), torch.zeros(4)), r"`old_token_logp` has shape"),
        (lambda: enumerated_surrogates(two_token_logprobs(torch.zeros(2), torch.zeros(2, 2)), two_token_logprobs(torch.zeros(2), torch.zeros(2, 2)), torch.zeros(3)), r"`rewards` has shape"),
    ],
)
def test_two_token_functions_check_input(call, pattern):
    with pytest.raises(ValueError, match=pattern):
        call()
