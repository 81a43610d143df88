"""The multi-prompt toy of the chapter 'Signal collapse' (grpo_core.analysis.toy_prompts)."""

from dataclasses import replace

import pytest
import torch

from grpo_core import group_advantages
from grpo_core.analysis.toy_prompts import (MITIGATIONS, PromptSet, PromptsConfig, _log_softmax, compare_mitigations, make_prompt_set, success_rates, summarise_runs, train_prompts)

SMALL = PromptsConfig(G=4, batch=8, steps=20, lr=2.0)


@pytest.fixture(scope="module")
def prompts():
    return make_prompt_set(16, 6)


# ------------------------------------------------------------------ the prompt set


def test_reference_success_runs_from_hardest_to_easiest_in_log_odds(prompts):
    s = prompts.ref_success
    assert s[0].item() == pytest.approx(0.01) and s[-1].item() == pytest.approx(0.99)
    logit = (s / (1 - s)).log()
    steps = logit[1:] - logit[:-1]
    assert torch.allclose(steps, steps[0].expand_as(steps))
    assert torch.allclose(torch.softmax(prompts.ref_logits, -1).sum(-1), torch.ones(16, dtype=torch.float64))
    assert prompts.correct[:, 0].eq(1).all() and prompts.correct[:, 1:].eq(0).all()


def test_log_softmax_and_success_rates_match_torch(prompts):
    gen = torch.Generator().manual_seed(0)
    x = 5 * torch.randn(16, 6, generator=gen, dtype=torch.float64)
    assert torch.allclose(_log_softmax(x), torch.log_softmax(x, -1), atol=1e-12)
    expect = (torch.softmax(x, -1) * prompts.correct).sum(-1)
    assert torch.allclose(success_rates(x, prompts), expect, atol=1e-12)
    with pytest.raises(ValueError, match="`logits`"):
        success_rates(x[:3], prompts)


def test_prompt_set_errors():
    with pytest.raises(ValueError, match="`hardest`"):
        make_prompt_set(hardest=0.0)
    with pytest.raises(ValueError, match="must not exceed"):
        make_prompt_set(hardest=0.9, easiest=0.1)
    with pytest.raises(ValueError, match="`n_answers`"):
        make_prompt_set(n_answers=1)
    with pytest.raises(ValueError, match="only 0 and 1"):
        PromptSet(correct=torch.full((2, 3), 0.5), ref_logits=torch.zeros(2, 3))
    with pytest.raises(ValueError, match=r"\[P, K\]"):
        PromptSet(correct=torch.zeros(2, 3), ref_logits=torch.zeros(2, 4))


# ------------------------------------------------------------------ training


def test_one_step_is_sgd_on_the_grpo_policy_gradient(prompts):
    """Replay the trainer's draws and check its update against the hand-written gradient
    dL/dlogits[p] = -(1/n) sum_i A_i (onehot(a_i) - pi_p)  (ratio 1, sequence-mean loss)."""
    cfg = replace(SMALL, steps=1, batch=16, seed=3)
    hist = train_prompts(prompts, cfg)
    gen = torch.Generator().manual_seed(3)
    probs = torch.softmax(prompts.ref_logits, -1)
    idx = torch.randperm(16, generator=gen)[:16]
    ans = torch.multinomial(probs[idx], 4, replacement=True, generator=gen)
    rewards = prompts.correct[idx].gather(1, ans)
    adv = group_advantages(rewards, 4)
    assert adv.abs().sum() > 0  # the step does move some prompts
    n = 16 * 4
    grad = torch.zeros(16, 6, dtype=torch.float64)
    for b in range(16):
        for i in range(4):
            onehot = torch.zeros(6, dtype=torch.float64)
            onehot[ans[b, i]] = 1.0
            grad[idx[b]] -= adv[b, i] * (onehot - probs[idx[b]]) / n
    expect = prompts.ref_logits - cfg.lr * grad
    assert torch.allclose(torch.tensor(hist["logits"], dtype=torch.float64), expect, atol=1e-12)


def test_history_is_deterministic_and_complete(prompts):
    a = train_prompts(prompts, SMALL)
    b = train_prompts(prompts, SMALL)
    assert a == b
    for key in ("success", "zero_std", "low_std", "group_std", "informative", "with_gradient", "samples"):
        assert len(a[key]) == SMALL.steps
    assert a["samples"][-1] == SMALL.steps * SMALL.batch * SMALL.G
    assert len(a["final_success"]) == 16 and a["success"][-1] == pytest.approx(sum(a["final_success"]) / 16)


def test_with_0_1_rewards_a_group_has_a_gradient_exactly_when_it_is_not_flat(prompts):
    h = train_prompts(prompts, SMALL)
    assert h["with_gradient"] == h["informative"]
    assert all(z + i == pytest.approx(1.0) for z, i in zip(h["zero_std"], h["informative"]))


def test_grpo_improves_mean_success(prompts):
    h = train_prompts(prompts, replace(SMALL, steps=60))
    assert h["success"][-1] > prompts.ref_success.mean().item() + 0.05


def test_threshold_and_std_floor_leave_0_1_training_unchanged(prompts):
    base = train_prompts(prompts, SMALL)
    assert train_prompts(prompts, replace(SMALL, advantages="threshold", threshold=0.5)) == base
    assert train_prompts(prompts, replace(SMALL, std_floor=0.1)) == base


def test_global_baseline_gives_flat_groups_a_gradient(prompts):
    h = train_prompts(prompts, replace(SMALL, advantages="global-baseline"))
    assert h["with_gradient"][0] == h["informative"][0]  # no history yet: plain GRPO
    assert all(w == 1.0 for w in h["with_gradient"][1:])  # afterwards every group moves


def test_dynamic_sampling_trains_only_on_groups_with_spread_and_pays_in_samples(prompts):
    cfg = replace(SMALL, dynamic_sampling=True, max_rounds=5)
    h = train_prompts(prompts, cfg)
    assert all(w == 1.0 for w in h["with_gradient"])
    per_step = [b - a for a, b in zip([0] + h["samples"][:-1], h["samples"])]
    assert all(s % (cfg.batch * cfg.G) == 0 and cfg.batch * cfg.G <= s <= 5 * cfg.batch * cfg.G for s in per_step)
    assert h["samples"][-1] > cfg.steps * cfg.batch * cfg.G


def test_noisy_rewards_read_as_no_collapse_in_zero_std_but_not_in_low_std(prompts):
    h = train_prompts(prompts, replace(SMALL, noise=0.01))
    assert all(z == 0.0 for z in h["zero_std"])
    assert min(h["low_std"]) > 0.0
    assert all(w == 1.0 for w in h["with_gradient"])  # noise gives every group an advantage


def test_config_errors(prompts):
    with pytest.raises(ValueError, match="`batch`"):
        train_prompts(prompts, replace(SMALL, batch=17))
    with pytest.raises(ValueError, match="`advantages`"):
        train_prompts(prompts, replace(SMALL, advantages="ppo"))
    with pytest.raises(ValueError, match="`G`"):
        train_prompts(prompts, replace(SMALL, G=1))
    with pytest.raises(ValueError, match="`noise`"):
        train_prompts(prompts, replace(SMALL, noise=-0.1))
    with pytest.raises(ValueError, match="`dynamic_sampling`"):
        train_prompts(prompts, replace(SMALL, dynamic_sampling=1))


# ------------------------------------------------------------------ comparison and summary


def test_compare_and_summarise(prompts):
    runs = compare_mitigations(prompts, SMALL, {"plain": {}, "big": {"G": 8}}, seeds=(0, 1))
    assert list(runs) == ["plain", "big"] and all(len(v) == 2 for v in runs.values())
    plain = summarise_runs(runs["plain"], prompts)
    assert plain["samples"] == SMALL.steps * SMALL.batch * SMALL.G
    assert plain["success_at_budget"] == plain["success"]
    big = summarise_runs(runs["big"], prompts, budget=plain["samples"])
    # G = 8 spends twice the samples per step: at the plain budget it has done half the steps
    assert big["success_at_budget"] == pytest.approx(
        sum(h["success"][SMALL.steps // 2 - 1] for h in runs["big"]) / 2)
    start = summarise_runs(runs["big"], prompts, budget=0)["success_at_budget"]
    assert start == pytest.approx(prompts.ref_success.mean().item())
    with pytest.raises(ValueError, match="`runs`"):
        summarise_runs([], prompts)
    with pytest.raises(ValueError, match="`seeds`"):
        compare_mitigations(prompts, SMALL, seeds=())


def test_the_book_compares_every_mitigation_of_the_notes_and_dapo():
    names = " ".join(MITIGATIONS)
    for word in ("larger groups", "smoothed std", "threshold", "global baseline", "dynamic sampling"):
        assert word in names


def test_adam_first_step_moves_every_logit_with_a_gradient_by_the_learning_rate(prompts):
    cfg = replace(SMALL, steps=1, optimizer="adam", lr=0.05)
    h = train_prompts(prompts, cfg)
    moved = (torch.tensor(h["logits"], dtype=torch.float64) - prompts.ref_logits).abs()
    # Adam's first step is lr * g / (|g| + eps), eps = 1e-8: lr where the gradient is a real number,
    # next to nothing where it is 0 up to rounding (an answer nobody sampled: its gradient is its
    # probability times the group's advantages, which sum to 0)
    at_lr = (moved - 0.05).abs() < 1e-6
    assert bool(at_lr.any())
    assert bool((at_lr | (moved < 1e-6)).all())


def test_under_adam_a_common_scale_of_the_advantages_does_not_matter(prompts):
    # drop flat groups (no resampling) only removes zeros from the batch mean: a common scale of
    # the step, which Adam divides out (up to its eps), and SGD does not
    drop = dict(dynamic_sampling=True, max_rounds=1)
    for opt, lr in (("adam", 0.05), ("sgd", 2.0)):
        a = train_prompts(prompts, replace(SMALL, optimizer=opt, lr=lr))
        b = train_prompts(prompts, replace(SMALL, optimizer=opt, lr=lr, **drop))
        gap = abs(a["success"][-1] - b["success"][-1])
        assert (gap < 0.01) if opt == "adam" else (gap > 0.02), (opt, gap)


def test_mean_abs_advantage_is_the_mean_of_the_logged_sizes(prompts):
    from grpo_core.analysis.toy_prompts import mean_abs_advantage
    h = train_prompts(prompts, SMALL)
    assert len(h["mean_abs_adv"]) == SMALL.steps
    assert mean_abs_advantage([h, h]) == pytest.approx(sum(h["mean_abs_adv"]) / SMALL.steps)
    with pytest.raises(ValueError, match="`histories`"):
        mean_abs_advantage([])
    with pytest.raises(ValueError, match="`optimizer`"):
        train_prompts(prompts, replace(SMALL, optimizer="rmsprop"))
