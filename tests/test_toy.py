"""The toy bandit policy the objective, KL and variance chapters train."""

import math

import pytest
import torch

from grpo_core.analysis.toy import Bandit, ToyConfig, exact_kl, expected_reward, make_bandit, train_toy


def test_make_bandit_reference_success_rate():
    b = make_bandit(n_answers=6, n_correct=2, ref_success=0.25, seed=3)
    assert b.rewards.tolist() == [1, 1, 0, 0, 0, 0]
    assert expected_reward(b.ref_logits, b) == pytest.approx(0.25)
    assert b.ref_probs.sum().item() == pytest.approx(1.0)


def test_exact_kl_and_expected_reward_hand_values():
    p = torch.tensor([0.5, 0.5], dtype=torch.float64)
    q = torch.tensor([0.25, 0.75], dtype=torch.float64)
    kl = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)
    assert exact_kl(p.log(), q.log()) == pytest.approx(kl)
    assert exact_kl(q.log(), q.log()) == pytest.approx(0.0, abs=1e-15)
    b = Bandit(rewards=torch.tensor([1.0, 0.0], dtype=torch.float64), ref_logits=q.log())
    assert expected_reward(p.log(), b) == pytest.approx(0.5)


def test_grpo_improves_the_reward_without_kl():
    b = make_bandit()
    hist = train_toy(b, ToyConfig(beta=0.0, steps=150))
    assert hist["reward"][-1] > 0.9 > 0.3 > expected_reward(b.ref_logits, b)
    assert hist["kl"][0] > 0.0


def test_clip_never_acts_with_one_update_per_batch_and_does_with_several():
    b = make_bandit()
    one = train_toy(b, ToyConfig(mu=1, steps=40))
    assert max(one["clip_frac"]) == 0.0  # pi_theta == pi_old when the loss is computed
    several = train_toy(b, ToyConfig(mu=4, steps=40))
    assert max(several["clip_frac"]) > 0.0


def test_larger_beta_keeps_the_policy_closer_to_the_reference():
    b = make_bandit()
    final_kl = [train_toy(b, ToyConfig(beta=beta, steps=150))["kl"][-1] for beta in (0.0, 0.3, 1.0)]
    assert final_kl[0] > final_kl[1] > final_kl[2]


def test_same_seed_same_history():
    b = make_bandit()
    assert train_toy(b, ToyConfig(steps=20)) == train_toy(b, ToyConfig(steps=20))


def test_kl_controller_sets_beta_and_sees_the_exact_kl():
    class Recorder:
        beta = 0.5

        def __init__(self):
            self.seen = []

        def update(self, kl, n_steps):
            self.seen.append((kl, n_steps))
            self.beta *= 0.5
            return self.beta

    b = make_bandit()
    rec = Recorder()
    hist = train_toy(b, ToyConfig(steps=5), kl_controller=rec)
    assert hist["beta"] == [0.5, 0.25, 0.125, 0.0625, 0.03125]
    assert [kl for kl, _ in rec.seen] == hist["kl"]


@pytest.mark.parametrize(
    "kwargs,pattern",
    [
        (dict(G=1), "`G` must be at least 2"),
        (dict(steps=0), "`steps` must be an int >= 1"),
        (dict(mu=1.5), "`mu` must be an int >= 1"),
        (dict(kl="k9"), "`kl`='k9' is not known"),
        (dict(advantages="ppo"), "`advantages`='ppo' is not known"),
        (dict(lr=-1.0), "`lr` must be a finite number >= 0"),
    ],
)
def test_config_errors(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        train_toy(make_bandit(), ToyConfig(**kwargs))


def test_bandit_errors():
    with pytest.raises(ValueError, match="`n_correct`"):
        make_bandit(n_answers=4, n_correct=4)
    with pytest.raises(ValueError, match="`ref_success`"):
        make_bandit(ref_success=1.0)
    with pytest.raises(ValueError, match="same length"):
        Bandit(rewards=torch.zeros(3), ref_logits=torch.zeros(4))
