"""The toy trainer's two placements of the KL penalty: in the loss (GRPO) or in the reward (PPO for LMs)."""

from __future__ import annotations

import statistics

import pytest
import torch

from grpo_core.analysis.kl_analysis import categorical_kl, k3_loss_fixed_point, kl_regularised_optimum
from grpo_core.analysis.toy import Bandit, ToyConfig, make_bandit, train_toy

GRADED = Bandit(
    rewards=torch.tensor([1.0, 0.8, 0.6, 0.4, 0.2, 0.0], dtype=torch.float64),
    ref_logits=torch.tensor([0.05, 0.1, 0.15, 0.2, 0.25, 0.25], dtype=torch.float64).log(),
)


def test_default_placement_is_the_loss_and_unchanged():
    b = make_bandit()
    assert train_toy(b, ToyConfig(steps=15)) == train_toy(b, ToyConfig(steps=15, kl_in="loss"))


def test_without_a_penalty_both_placements_are_the_same_run():
    b = make_bandit()
    assert train_toy(b, ToyConfig(steps=15, beta=0.0)) == train_toy(b, ToyConfig(steps=15, beta=0.0, kl_in="reward"))


def test_placement_is_checked():
    with pytest.raises(ValueError, match="`kl_in`='advantage' is not known"):
        train_toy(make_bandit(), ToyConfig(kl_in="advantage"))


@pytest.mark.parametrize("advantages", ["dr-grpo", "seed-notes"])
def test_reward_placement_leaves_the_optimum_where_it_is(advantages):
    # at pi* the shaped reward r - beta log(pi* / pi_ref) is the same for every answer:
    # every advantage is 0, with or without the std division, so pi* does not move
    beta = 0.3
    pi_star = kl_regularised_optimum(GRADED.ref_probs, GRADED.rewards, beta)
    cfg = ToyConfig(steps=10, beta=beta, kl="k1", kl_in="reward", advantages=advantages)
    hist = train_toy(GRADED, cfg, init_logits=pi_star.log())
    moved = (torch.softmax(torch.tensor(hist["logits"], dtype=torch.float64), 0) - pi_star).abs().max()
    assert float(moved) < 1e-9


def _tail(hist, n=300):
    return statistics.mean(hist["reward"][-n:]), statistics.mean(hist["kl"][-n:])


def test_each_placement_converges_where_its_expected_update_vanishes():
    beta, G = 0.3, 8
    ref, r = GRADED.ref_probs, GRADED.rewards
    common = dict(steps=900, lr=0.3, beta=beta, advantages="dr-grpo")
    # reward placement -> pi*(beta)
    reward_form = _tail(train_toy(GRADED, ToyConfig(kl="k1", kl_in="reward", **common)))
    star = kl_regularised_optimum(ref, r, beta)
    assert reward_form[0] == pytest.approx(float(star @ r), abs=0.02)
    assert reward_form[1] == pytest.approx(categorical_kl(star, ref), rel=0.1)
    # k3 in the loss -> the k3 fixed point (mean-only advantages scale the reward by (G-1)/G)
    loss_form = _tail(train_toy(GRADED, ToyConfig(kl="k3", kl_in="loss", **common)))
    fixed = k3_loss_fixed_point(ref, r * (G - 1) / G, beta)
    assert loss_form[0] == pytest.approx(float(fixed @ r), abs=0.02)
    assert loss_form[1] == pytest.approx(categorical_kl(fixed, ref), rel=0.1)
    assert loss_form[1] - reward_form[1] > 0.2  # different places


def test_k1_in_the_loss_does_not_hold_the_policy_back():
    b = make_bandit()
    none = train_toy(b, ToyConfig(steps=200, beta=0.0))["kl"][-1]
    k1 = train_toy(b, ToyConfig(steps=200, beta=3.0, kl="k1"))["kl"][-1]
    k3 = train_toy(b, ToyConfig(steps=200, beta=3.0, kl="k3"))["kl"][-1]
    in_reward = train_toy(b, ToyConfig(steps=200, beta=3.0, kl="k1", kl_in="reward"))["kl"][-1]
    assert k1 > 0.5 * none > 1.0
    assert k3 < 0.2 and in_reward < 0.2
