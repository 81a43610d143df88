"""grpo_core's advantage estimators against TRL 1.16.0 (``_generate_and_score_completions``, through a
``rollout_func`` and reward functions that read the crafted rewards) and verl 0.9.1 (``core_algos``
estimators, called directly): 24 random batches each, with groups whose rewards are all equal."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conformance_harness import RECORDER, TOL, TrlHarness, max_abs, random_batch
from grpo_core import compute_advantages, preset_advantages

SEEDS = range(24)


def _record(name, function, ours, theirs, batch):
    d = max_abs(ours, theirs)
    RECORDER.add(name, function, loss=d)
    groups = batch.rewards.view(-1, batch.G)
    if ((groups.max(1).values - groups.min(1).values) == 0).any():
        RECORDER.event("advantages: batches with a zero-spread group")
    assert d <= TOL, f"{name}: advantages differ by {d:.3g}"


def _extra_rewards(batch, k):
    rng = np.random.default_rng(batch.seed + 77)
    cols = [batch.rewards.numpy()]
    for j in range(1, k):
        col = rng.choice([0.0, 1.0], size=batch.B) if j % 2 else rng.normal(size=batch.B)
        col = col.reshape(-1, batch.G)
        col[rng.random(col.shape[0]) < 0.3] = 1.0  # a group without spread in this reward
        cols.append(col.reshape(-1))
    return np.stack(cols, 1)


# ------------------------------------------------------------------------------------ TRL

TRL_FN = "trl GRPOTrainer._generate_and_score_completions"


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("scale", ["group", "batch", "none"])
def test_trl_scale_rewards(trl_harness, scale, seed):
    batch = random_batch(1300 + seed, empty=False, min_len=1)
    tr = trl_harness.trainer(rollout=True, num_generations=batch.G, scale_rewards=scale)
    out, _ = TrlHarness.generate(tr, batch, batch.rewards)
    theirs = out["advantages"]
    r32 = batch.rewards.float()  # TRL's rewards are float32
    ours = compute_advantages("trl-grpo", r32, batch.G, scale_rewards=scale)
    _record(f"trl-grpo advantages, scale_rewards={scale}", TRL_FN, ours, theirs, batch)
    legacy = {"group": "trl", "batch": "trl-batch"}.get(scale)
    if legacy:  # the older PRESETS, written from the formula
        _record(f"PRESETS[{legacy!r}]", TRL_FN, preset_advantages(r32, batch.G, legacy), theirs, batch)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("k,weights", [(2, None), (3, [1.0, 0.5, 2.0])], ids=["2 rewards", "3 weighted rewards"])
@pytest.mark.parametrize("how", ["sum_then_normalize", "normalize_then_sum"])
def test_trl_multi_objective(trl_harness, how, k, weights, seed):
    batch = random_batch(1400 + seed, empty=False, min_len=1)
    rewards = _extra_rewards(batch, k)
    cfg = dict(num_generations=batch.G, multi_objective_aggregation=how)
    if weights:
        cfg["reward_weights"] = weights
    tr = trl_harness.trainer(rollout=True, reward_funcs=k, **cfg)
    out, _ = TrlHarness.generate(tr, batch, rewards)
    ours = compute_advantages("trl-grpo", torch.tensor(rewards, dtype=torch.float32), batch.G,
                              multi_objective_aggregation=how, reward_weights=weights)
    _record(f"trl-grpo advantages, {how}", TRL_FN, ours, out["advantages"], batch)


# ------------------------------------------------------------------------------------ verl


def _verl_inputs(batch):
    """verl's inputs: the outcome reward on the last real token, a group id per answer, the int mask."""
    tlr = torch.zeros(batch.B, batch.T, dtype=torch.float64)
    last = (batch.lengths - 1).clamp(min=0)
    tlr[torch.arange(batch.B), last] = batch.rewards
    index = np.array([f"p{i // batch.G}" for i in range(batch.B)], dtype=object)
    return tlr, index, batch.mask.long()


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("norm", [True, False], ids=["std", "no std"])
def test_verl_grpo(seed, norm):
    from verl.trainer.ppo import core_algos

    batch = random_batch(1500 + seed)
    tlr, index, m = _verl_inputs(batch)
    theirs, _ = core_algos.compute_grpo_outcome_advantage(tlr, m, index, norm_adv_by_std_in_grpo=norm)
    ours = compute_advantages("verl-grpo", batch.rewards, batch.G, norm_adv_by_std_in_grpo=norm)[:, None] * m
    fn = "verl core_algos.compute_grpo_outcome_advantage"
    _record(f"verl-grpo advantages, norm_adv_by_std_in_grpo={norm}", fn, ours, theirs, batch)
    legacy = "verl" if norm else "dr-grpo"
    _record(f"PRESETS[{legacy!r}]", fn, preset_advantages(batch.rewards, batch.G, legacy)[:, None] * m, theirs, batch)


@pytest.mark.parametrize("seed", SEEDS)
def test_verl_rloo(seed):
    from verl.trainer.ppo import core_algos

    batch = random_batch(1600 + seed)
    tlr, index, m = _verl_inputs(batch)
    theirs, _ = core_algos.get_adv_estimator_fn("rloo")(tlr, m, index)
    ours = compute_advantages("verl-rloo", batch.rewards, batch.G)[:, None] * m
    _record("verl-rloo advantages", "verl core_algos.compute_rloo_outcome_advantage", ours, theirs, batch)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("gamma", [1.0, 0.9])
def test_verl_reinforce_plus_plus(seed, gamma):
    from verl.trainer.config import AlgoConfig
    from verl.trainer.ppo import core_algos

    batch = random_batch(1700 + seed)
    tlr, index, m = _verl_inputs(batch)
    theirs, _ = core_algos.get_adv_estimator_fn("reinforce_plus_plus")(tlr, m, config=AlgoConfig(gamma=gamma))
    ours = compute_advantages("verl-reinforce_plus_plus", batch.rewards, batch.G, mask=batch.mask, gamma=gamma)
    _record(f"verl-reinforce_plus_plus advantages, gamma={gamma}",
            "verl core_algos.compute_reinforce_plus_plus_outcome_advantage", ours, theirs, batch)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("k,weights", [(1, None), (2, None), (3, [1.0, 0.5, 2.0])],
                         ids=["no keys", "2 keys", "3 weighted keys"])
def test_verl_gdpo(seed, k, weights):
    from verl.trainer.config import AlgoConfig
    from verl.trainer.ppo import core_algos

    batch = random_batch(1800 + seed)
    tlr, index, m = _verl_inputs(batch)
    fn = core_algos.get_adv_estimator_fn("gdpo")
    if k == 1:  # without gdpo_reward_keys: the summed reward (token_level_rewards)
        theirs, _ = fn(tlr, m, index)
        rewards = batch.rewards
    else:
        rewards = _extra_rewards(batch, k).astype(np.float32)  # verl reads the dimensions as float32
        keys = [f"r{j}" for j in range(k)]
        P = 2
        cfg = AlgoConfig(adv_estimator="gdpo", gdpo_reward_keys=keys, gdpo_reward_weights=weights)
        theirs, _ = fn(tlr, m, index, config=cfg, non_tensor_batch={key: rewards[:, j] for j, key in enumerate(keys)},
                       batch={"prompts": torch.ones(batch.B, P, dtype=torch.long),
                              "attention_mask": torch.cat([torch.ones(batch.B, P, dtype=torch.long), m], 1)})
        rewards = torch.tensor(rewards)
    ours = compute_advantages("verl-gdpo", rewards, batch.G, mask=batch.mask, gdpo_reward_weights=weights)
    _record(f"verl-gdpo advantages, {k} reward dimension(s)", "verl core_algos.compute_gdpo_outcome_advantage",
            ours, theirs, batch)
