"""PPO's pieces (token rewards, GAE, whitening, clipped value loss) and the PPO trainer."""


import pytest
import torch

from grpo_core import group_advantages
from grpo_core.ppo import gae, token_rewards, value_loss, whiten
from grpo_core.training.trainer import GRPOConfig, GRPOTrainer, PPOTrainer, make_trainer, state_bytes


pytestmark = pytest.mark.usefixtures("isolated_cache")


MASK = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])


def test_token_rewards_put_the_reward_on_the_last_token_and_the_kl_on_every_token():
    r = token_rewards(torch.tensor([1.0, 0.5]), MASK)
    assert torch.equal(r, torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.5, 0.0]]))
    old = torch.tensor([[-1.0, -2.0, -0.5], [-1.0, -1.0, -9.0]])
    ref = torch.tensor([[-1.5, -1.0, -0.5], [-2.0, -1.0, -1.0]])
    r = token_rewards(torch.tensor([1.0, 0.5]), MASK, old, ref, beta=0.1)
    expected = torch.tensor([[-0.05, 0.1, 1.0], [-0.1, 0.5, 0.0]])  # padding pays nothing
    assert torch.allclose(r, expected)


def test_gae_by_hand():
    rew = torch.tensor([[0.0, 0.0, 1.0]])
    val = torch.tensor([[0.2, 0.4, 0.6]])
    m = torch.ones(1, 3)
    adv, ret = gae(rew, val, m, gamma=1.0, lam=0.5)
    # deltas: 0 + 0.4 - 0.2 = 0.2, 0 + 0.6 - 0.4 = 0.2, 1 + 0 - 0.6 = 0.4
    a2 = 0.4
    a1 = 0.2 + 0.5 * a2
    a0 = 0.2 + 0.5 * a1
    assert torch.allclose(adv, torch.tensor([[a0, a1, a2]]))
    assert torch.allclose(ret, adv + val)


def test_gae_limits_lambda_one_is_monte_carlo_and_lambda_zero_is_td():
    g = torch.Generator().manual_seed(0)
    rew = torch.randn(4, 5, generator=g)
    val = torch.randn(4, 5, generator=g)
    m = torch.ones(4, 5)
    gamma = 0.9
    adv1, ret1 = gae(rew, val, m, gamma=gamma, lam=1.0)
    disc = torch.stack([sum(gamma ** (k - t) * rew[:, k] for k in range(t, 5)) for t in range(5)], 1)
    assert torch.allclose(ret1, disc, atol=1e-6)
    assert torch.allclose(adv1, disc - val, atol=1e-6)
    adv0, _ = gae(rew, val, m, gamma=gamma, lam=0.0)
    next_v = torch.cat([val[:, 1:], torch.zeros(4, 1)], 1)
    assert torch.allclose(adv0, rew + gamma * next_v - val, atol=1e-6)


def test_gae_ignores_padding():
    rew = token_rewards(torch.tensor([1.0, 1.0]), MASK)
    val = torch.tensor([[0.1, 0.2, 0.3], [0.1, 0.2, 99.0]])  # 99 on padding must not leak in
    adv, ret = gae(rew, val, MASK, lam=1.0)
    assert adv[1, 2] == 0 and ret[1, 2] == 0
    assert torch.allclose(ret, MASK)  # gamma = 1: every real token's return is the final reward
    assert torch.allclose(adv[1, :2], torch.tensor([0.9, 0.8]))


def test_whiten_and_value_loss():
    x = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 100.0]])
    w = whiten(x, MASK)
    real = w[MASK.bool()]
    assert torch.allclose(real.mean(), torch.tensor(0.0), atol=1e-6)
    assert torch.allclose(real.std(correction=0), torch.tensor(1.0), atol=1e-5)
    assert w[1, 2] == 0
    v = torch.tensor([[1.0, 0.0, 0.0]])
    old = torch.tensor([[0.0, 0.0, 0.0]])
    ret = torch.tensor([[1.0, 0.0, 0.5]])
    m = torch.ones(1, 3)
    # token 0: unclipped error 0, clipped V = 0.2 has error 0.8 -> max 0.64; token 2: 0.25 both ways
    expected = 0.5 * (0.64 + 0.0 + 0.25) / 3
    assert torch.allclose(value_loss(v, old, ret, m, clip=0.2), torch.tensor(expected))
    # with a huge clip range it is the plain squared error
    assert torch.allclose(value_loss(v, old, ret, m, clip=100.0), torch.tensor(0.5 * 0.25 / 3))


@pytest.mark.parametrize(
    "call,pattern",
    [(lambda: token_rewards(torch.tensor([1.0]), MASK), "`rewards` has shape"),
     (lambda: token_rewards(torch.tensor([1.0, float("nan")]), MASK), "`rewards` contains nan"),
     (lambda: token_rewards(torch.tensor([1.0, 1.0]), torch.tensor([[1.0, 0], [0, 0]])), "no completion token"),
     (lambda: token_rewards(torch.tensor([1.0, 1.0]), MASK, beta=0.1), "needs `old_logp`"),
     (lambda: gae(torch.zeros(2, 3), torch.zeros(2, 2), MASK), "`values` has shape"),
     (lambda: gae(torch.zeros(2, 3), torch.zeros(2, 3), MASK, lam=1.5), "`lam` must be in"),
     (lambda: value_loss(torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(2, 3), MASK, clip=-1), "`clip` must be")],
)
def test_errors_name_the_argument(call, pattern):
    with pytest.raises(ValueError, match=pattern):
        call()


def tiny(**kw):
    base = dict(task="sort", d_model=32, n_layers=1, n_heads=2, sft_steps=60, sft_batch=64,
                prompts_per_step=8, G=4, steps=2, eval_size=64, device="cpu", algo="ppo")
    base.update(kw)
    return GRPOConfig(**base)


def test_ppo_trainer_same_budget_distinct_prompts_and_both_models_learn():
    tr = make_trainer(tiny(mu=2, minibatches=2))
    assert isinstance(tr, PPOTrainer)
    # a stand-in verifier (right with probability 0.5), so there is something to learn even if the
    # tiny base model solves nothing
    coin = torch.Generator().manual_seed(0)
    tr.task = type(tr.task)()
    object.__setattr__(tr.task, "reward", lambda ids, comp: (torch.rand(ids.numel(), generator=coin) < 0.5).float())
    critic_before = [p.clone() for p in tr.critic.parameters()]
    ref_before = [p.clone() for p in tr.ref.parameters()]
    ids_seen = []
    real = tr.rollout
    tr.rollout = lambda ids, repeat=None: (ids_seen.append((ids.clone(), repeat)), real(ids, repeat))[1]
    rec = tr.step()
    ids, repeat = ids_seen[0]
    assert repeat == 1 and ids.numel() == 8 * 4 and tr.samples == 32  # as many samples as GRPO's 8 x 4
    assert not all(torch.equal(a, b) for a, b in zip(critic_before, tr.critic.parameters()))
    assert all(torch.equal(a, b) for a, b in zip(ref_before, tr.ref.parameters()))
    assert rec["value_loss"] >= 0 and rec["zero_std_frac"] != rec["zero_std_frac"]  # NaN: no groups


def test_ppo_critic_starts_from_the_base_model_with_a_zero_value_layer():
    tr = make_trainer(tiny())
    for (name, a), b in zip(tr.critic.body.state_dict().items(), tr.ref.state_dict().values()):
        assert torch.equal(a, b), name
    assert torch.count_nonzero(tr.critic.head.weight) == 0


def test_state_bytes_counts_weights_grads_and_adam_moments():
    grpo = make_trainer(tiny(algo="grpo"))
    assert type(grpo) is GRPOTrainer
    n = grpo.policy.n_params()
    before = state_bytes(grpo)
    assert before == {"weights": 2 * 4 * n, "grads": 4 * n, "optimizer": 0, "total": 12 * n}
    grpo.step()
    assert state_bytes(grpo)["optimizer"] == 2 * 4 * n  # exp_avg and exp_avg_sq
    ppo = make_trainer(tiny())
    ppo.step()
    nc = sum(p.numel() for p in ppo.critic.parameters())
    assert state_bytes(ppo) == {"weights": 4 * (2 * n + nc), "grads": 4 * (n + nc), "optimizer": 8 * (n + nc),
                                "total": 4 * (2 * n + nc) + 4 * (n + nc) + 8 * (n + nc)}

# ------------------------------------------------- GAE over whole episodes (the variance chapter)


def gae_adv(rewards, values, gamma=1.0, lam=1.0, last_value=None):
    """The advantages of :func:`gae` with no mask (every step real)."""
    return gae(rewards, values, None, gamma, lam, last_value=last_value)[0]


def test_gae_hand_computed_episode():
    # delta_2 = 1 - 0.8 = 0.2, delta_1 = 0.9*0.8 - 0.6 = 0.12, delta_0 = 0.9*0.6 - 0.5 = 0.04
    adv = gae_adv([0.0, 0.0, 1.0], [0.5, 0.6, 0.8], gamma=0.9, lam=0.5)
    assert torch.allclose(adv, torch.tensor([0.04 + 0.45 * 0.21, 0.21, 0.2]))


def test_gae_matches_its_definition_as_a_discounted_sum_of_td_errors():
    gen = torch.Generator().manual_seed(7)
    r = torch.randn(5, 9, generator=gen, dtype=torch.float64)
    v = torch.randn(5, 9, generator=gen, dtype=torch.float64)
    last = torch.randn(5, generator=gen, dtype=torch.float64)
    gamma, lam = 0.97, 0.8
    nxt = torch.cat([v[:, 1:], last[:, None]], dim=1)
    delta = r + gamma * nxt - v
    want = torch.stack([sum((gamma * lam) ** k * delta[:, t + k] for k in range(9 - t)) for t in range(9)], dim=1)
    assert torch.allclose(gae_adv(r, v, gamma, lam, last_value=last), want)
    assert torch.allclose(gae_adv(r, v, gamma, 0.0, last_value=last), delta)  # lambda = 0: one-step TD


def test_gae_with_gamma_lambda_one_and_terminal_reward_is_reward_minus_value():
    gen = torch.Generator().manual_seed(8)
    T = 6
    outcome = (torch.rand(4, generator=gen) < 0.5).double()
    r = torch.zeros(4, T, dtype=torch.float64)
    r[:, -1] = outcome
    v = torch.rand(4, T, generator=gen, dtype=torch.float64)
    assert torch.allclose(gae_adv(r, v, 1.0, 1.0), outcome[:, None] - v)
    # with V = the group mean at every token, every token gets the Dr. GRPO advantage
    v_group = outcome.mean().expand(4, T)
    want = group_advantages(outcome, 4, scale="none")[:, None].expand(4, T)
    assert torch.allclose(gae_adv(r, v_group, 1.0, 1.0), want)


def test_gae_errors():
    with pytest.raises(ValueError, match="`values` has shape"):
        gae_adv(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="`gamma`"):
        gae_adv(torch.zeros(3), torch.zeros(3), gamma=1.5)
    with pytest.raises(ValueError, match="`last_value`"):
        gae_adv(torch.zeros(2, 3), torch.zeros(2, 3), last_value=torch.zeros(3))
