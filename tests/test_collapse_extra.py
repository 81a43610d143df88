"""The claims of the chapter 'Signal collapse' that go beyond tests/test_collapse.py:
the notes' two scenarios, the collapse metrics, the size of the advantages near collapse, the
zero-spread share of a dataset of Beta-distributed difficulties, and which mitigations act on
0/1 rewards at all."""

import math

import pytest
import torch

from grpo_core import group_advantages
from grpo_core.analysis.rewards import make_distribution
from grpo_core.analysis.collapse import (advantage_scale, collapse_metrics, expected_zero_spread, group_reward_std, zero_spread_probability, zero_std_fraction)
from grpo_core import threshold_advantages

SCENARIO_1 = [7.0, 7.1, 6.9, 7.0]
SCENARIO_2 = [9.8, 9.9, 9.7, 9.85]


# ------------------------------------------------------------------ the notes' scenarios (seed 7.1)


def test_scenario_1_population_std_and_advantage():
    r = torch.tensor(SCENARIO_1, dtype=torch.float64)
    assert group_reward_std(r, 4).item() == pytest.approx(math.sqrt(0.005), abs=1e-12)  # 0.0707
    adv = group_advantages(r, 4, eps=0.0)
    assert adv[1].item() == pytest.approx(math.sqrt(2), abs=1e-9)  # 0.1 / 0.0707 = 1.414


def test_scenario_1_the_notes_used_the_sample_std_rounded_to_0_08():
    r = torch.tensor(SCENARIO_1, dtype=torch.float64)
    sample = group_reward_std(r, 4, std="sample").item()
    assert sample == pytest.approx(math.sqrt(0.02 / 3), abs=1e-12)  # 0.0816
    assert round(sample, 2) == 0.08 and round(group_reward_std(r, 4).item(), 2) == 0.07
    assert group_advantages(r, 4, std="sample", eps=0.0)[1].item() == pytest.approx(1.2247, abs=1e-4)
    assert 0.1 / round(sample, 2) == pytest.approx(1.25)  # the notes' 1.25 divides by the rounded value


def test_scenario_2_std_is_not_smaller_than_scenario_1():
    s1 = group_reward_std(torch.tensor(SCENARIO_1, dtype=torch.float64), 4).item()
    s2 = group_reward_std(torch.tensor(SCENARIO_2, dtype=torch.float64), 4).item()
    assert s2 == pytest.approx(math.sqrt(0.021875 / 4), abs=1e-12)  # 0.0740
    assert s2 > s1 and s2 / s1 < 1.1
    adv = group_advantages(torch.tensor(SCENARIO_2, dtype=torch.float64), 4, eps=0.0)
    assert adv.pow(2).mean().item() == pytest.approx(1.0)  # unit size, like scenario 1


def test_the_notes_eps_does_not_damp_either_scenario():
    for rs in (SCENARIO_1, SCENARIO_2):
        r = torch.tensor(rs, dtype=torch.float64)
        with_eps = group_advantages(r, 4, eps=1e-8)
        assert torch.allclose(with_eps, group_advantages(r, 4, eps=0.0), rtol=1e-6)


# ------------------------------------------------------------------ metrics


def test_group_reward_std_hand_values_and_flat_groups():
    r = torch.tensor([[1.0, 1.0, 1.0, 0.0], [0.1, 0.1, 0.1, 0.1]])
    pop = group_reward_std(r, 4)
    assert pop[0].item() == pytest.approx(math.sqrt(3) / 4) and pop[1].item() == 0.0
    assert group_reward_std(r, 4, std="sample")[0].item() == pytest.approx(0.5)
    with pytest.raises(ValueError, match="`std`"):
        group_reward_std(r, 4, std="bessel")


def test_collapse_metrics_hand_values():
    r = torch.tensor([[1.0, 1.0], [0.0, 1.0], [0.3, 0.3], [0.5, 0.52]])
    m = collapse_metrics(r, 2, low_std=0.1)
    assert m["frac_zero_std"] == 0.5
    assert m["frac_low_std"] == 0.75  # the two flat groups and the one with std 0.01
    assert m["reward_std"] == pytest.approx((0.5 + 0.01) / 4, abs=1e-7)
    assert m["reward_mean"] == pytest.approx(r.double().mean().item())
    with pytest.raises(ValueError, match="`low_std`"):
        collapse_metrics(r, 2, low_std=-1.0)


def test_noisy_rewards_hide_collapse_from_the_zero_std_fraction():
    gen = torch.Generator().manual_seed(0)
    r = torch.ones(100, 8, dtype=torch.float64) + 0.01 * torch.randn(100, 8, generator=gen, dtype=torch.float64)
    m = collapse_metrics(r, 8, low_std=0.1)
    assert m["frac_zero_std"] == 0.0 and m["frac_low_std"] == 1.0


# ------------------------------------------------------------------ advantage size near collapse


@pytest.mark.parametrize("eps,floor", [(0.0, 0.0), (1e-8, 0.0), (1e-2, 0.0), (1e-8, 0.1), (0.0, 0.1)])
def test_advantage_scale_is_the_rms_of_group_advantages(eps, floor):
    gen = torch.Generator().manual_seed(1)
    z = torch.randn(6, generator=gen, dtype=torch.float64)
    for spread in (1e-6, 1e-3, 0.05, 0.3, 2.0):
        r = 7.0 + spread * (z - z.mean()) / z.std(correction=0)
        adv = group_advantages(r, 6, eps=eps, std_floor=floor)
        rms = adv.pow(2).mean().sqrt().item()
        assert advantage_scale(spread, eps=eps, std_floor=floor).item() == pytest.approx(rms, rel=1e-6)
        dr = group_advantages(r, 6, scale="none").pow(2).mean().sqrt().item()
        assert advantage_scale(spread, scale="none").item() == pytest.approx(dr, rel=1e-6)


def test_normalised_advantages_keep_unit_size_as_the_spread_shrinks():
    s = torch.tensor([1e-6, 1e-4, 1e-2, 1.0], dtype=torch.float64)
    assert torch.allclose(advantage_scale(s, eps=0.0), torch.ones(4, dtype=torch.float64))
    assert advantage_scale(s, eps=1e-8)[0].item() == pytest.approx(1e-6 / (1e-6 + 1e-8))  # still 0.99
    # eps or a floor of the noise scale shrink the advantages linearly below that scale
    assert advantage_scale(1e-4, eps=0.1).item() == pytest.approx(1e-4 / (1e-4 + 0.1))
    assert advantage_scale(1e-4, std_floor=0.1, eps=0.0).item() == pytest.approx(1e-3)
    assert advantage_scale(0.0).item() == 0.0 and advantage_scale(0.0, eps=0.0).item() == 0.0


def test_advantage_scale_errors():
    with pytest.raises(ValueError, match="`spread`"):
        advantage_scale(-0.1)
    with pytest.raises(ValueError, match="`scale`"):
        advantage_scale(0.1, scale="batch")
    with pytest.raises(ValueError, match="`eps`"):
        advantage_scale(0.1, eps=-1.0)


# ------------------------------------------------------------------ datasets of mixed difficulty


def test_expected_zero_spread_uniform_difficulty_hand_value():
    # p ~ Beta(1, 1) = uniform: E[p^G] = E[(1-p)^G] = 1 / (G + 1)
    for g in (2, 4, 16):
        assert expected_zero_spread(1.0, 1.0, g) == pytest.approx(2 / (g + 1))


def test_expected_zero_spread_is_the_average_of_the_closed_form_over_beta():
    a, b, g = 0.7, 1.6, 8
    n = 200_000
    p = (torch.arange(n, dtype=torch.float64) + 0.5) / n  # midpoint rule on (0, 1)
    log_density = (a - 1) * p.log() + (b - 1) * (1 - p).log() - (math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b))
    integral = (zero_spread_probability(p, g) * log_density.exp()).sum().item() / n
    assert expected_zero_spread(a, b, g) == pytest.approx(integral, rel=2e-3)


def test_expected_zero_spread_matches_simulation_of_bernoulli_beta_rewards():
    for a, b, g in [(0.5, 0.5, 4), (0.5, 0.5, 16), (2.0, 0.3, 8)]:
        n = 100_000
        r = make_distribution("bernoulli-beta", a=a, b=b).sample(n, g, seed=5)
        exact = expected_zero_spread(a, b, g)
        se = math.sqrt(exact * (1 - exact) / n)
        assert abs(zero_std_fraction(r, g) - exact) < 5 * se


def test_larger_groups_help_slowly_when_prompts_sit_at_the_extremes():
    # E[(1-p)^G] ~ G^(-a): with a = b = 0.5, quadrupling G only halves the dead share
    ratio = expected_zero_spread(0.5, 0.5, 256) / expected_zero_spread(0.5, 0.5, 64)
    assert ratio == pytest.approx(0.5, abs=0.01)
    # while for a single prompt of p = 0.5 it falls geometrically
    assert zero_spread_probability(0.5, 16).item() / zero_spread_probability(0.5, 4).item() == pytest.approx(2**-12)


def test_expected_zero_spread_errors():
    with pytest.raises(ValueError, match="`a`"):
        expected_zero_spread(0.0, 1.0, 4)
    with pytest.raises(ValueError, match="`b`"):
        expected_zero_spread(1.0, float("inf"), 4)
    with pytest.raises(ValueError, match="`group_size`"):
        expected_zero_spread(1.0, 1.0, 1)


# ------------------------------------------------------------------ which mitigations touch 0/1 rewards


def _binary_groups(g=4, n=500):
    gen = torch.Generator().manual_seed(2)
    return (torch.rand(n, g, generator=gen, dtype=torch.float64) < 0.4).double()


def test_threshold_changes_nothing_for_0_1_rewards():
    r = _binary_groups()
    for t in (0.1, 0.5, 1.0):
        assert torch.equal(threshold_advantages(r, 4, threshold=t), group_advantages(r, 4))


def test_std_floor_below_the_smallest_0_1_std_changes_nothing():
    g = 4
    r = _binary_groups(g)
    smallest = math.sqrt(g - 1) / g  # one right answer out of G (or one wrong)
    assert group_reward_std(r, g)[group_reward_std(r, g) > 0].min().item() == pytest.approx(smallest)
    assert torch.equal(group_advantages(r, g, std_floor=0.99 * smallest), group_advantages(r, g))


def test_eps_of_the_noise_scale_shrinks_real_0_1_signals_too():
    r = torch.tensor([1.0, 0.0, 0.0, 0.0], dtype=torch.float64)
    plain = group_advantages(r, 4, eps=1e-8)[0].item()
    smoothed = group_advantages(r, 4, eps=0.1)[0].item()
    s = math.sqrt(3) / 4
    assert smoothed / plain == pytest.approx((s + 1e-8) / (s + 0.1))  # about 0.81
