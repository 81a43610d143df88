"""Signal-collapse measurements and mitigations (chapter 'Signal collapse')."""

import math

import pytest
import torch

from grpo_core import group_advantages
from grpo_core import RunningBaseline, dynamic_sampling_keep, global_baseline_advantages, threshold_advantages
from grpo_core.analysis.collapse import zero_spread_probability, zero_std_fraction


def test_zero_std_fraction_hand_value():
    r = torch.tensor([[1.0, 1.0], [0.0, 1.0], [0.3, 0.3], [2.0, 5.0]])
    assert zero_std_fraction(r, 2) == 0.5


def test_zero_spread_probability_closed_form_and_simulation():
    assert zero_spread_probability(0.5, 4).item() == pytest.approx(2 / 16)
    assert zero_spread_probability(0.0, 8).item() == 1.0
    assert zero_spread_probability(1.0, 8).item() == 1.0
    gen = torch.Generator().manual_seed(0)
    for p, g in [(0.1, 4), (0.3, 8), (0.9, 16)]:
        r = (torch.rand(200_000, g, generator=gen) < p).float()
        freq = zero_std_fraction(r, g)
        exact = zero_spread_probability(p, g).item()
        se = math.sqrt(exact * (1 - exact) / 200_000)
        assert abs(freq - exact) < 5 * se + 1e-12


def test_zero_spread_probability_errors():
    with pytest.raises(ValueError, match="`p` must lie in"):
        zero_spread_probability(1.5, 4)
    with pytest.raises(ValueError, match="`group_size` must be at least 2"):
        zero_spread_probability(0.5, 1)


def test_dynamic_sampling_keeps_only_groups_with_spread():
    r = torch.tensor([1.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.5, 0.5])
    assert dynamic_sampling_keep(r, 2).tolist() == [False, True, False, False]


def test_threshold_zeroes_groups_below_and_keeps_others():
    r = torch.tensor([[7.0, 7.1, 6.9, 7.0], [9.8, 9.9, 9.7, 9.85]])
    adv = threshold_advantages(r, 4, threshold=8.0)
    assert torch.equal(adv[0], torch.zeros(4))
    assert torch.allclose(adv[1], group_advantages(r, 4)[1])
    with pytest.raises(ValueError, match="`threshold`"):
        threshold_advantages(r, 4, threshold=float("nan"))


def test_std_floor_caps_the_amplification_of_tiny_spreads():
    r = torch.tensor([7.0, 7.0 + 1e-4, 7.0 - 1e-4, 7.0], dtype=torch.float64)
    plain = group_advantages(r, 4, eps=0.0)
    floored = group_advantages(r, 4, std_floor=0.1)
    assert plain.abs().max().item() == pytest.approx(math.sqrt(2), rel=1e-6)
    # centred values +-1e-4 divided by the floor 0.1 instead of std 7.07e-5
    assert torch.allclose(floored, torch.tensor([0.0, 1e-3, -1e-3, 0.0], dtype=torch.float64), atol=1e-9)
    wide = torch.tensor([0.0, 1.0, 0.0, 1.0], dtype=torch.float64)
    assert torch.allclose(group_advantages(wide, 4, std_floor=0.1), group_advantages(wide, 4))


def test_running_baseline_moments():
    b = RunningBaseline(momentum=0.5)
    assert math.isnan(b.std) and b.mean is None
    b.update([0.0, 1.0])  # mean 0.5, second moment 0.5
    assert b.mean == 0.5 and b.std == pytest.approx(0.5)
    b.update([1.0, 1.0])  # mean 0.5*0.5 + 0.5*1 = 0.75; second 0.5*0.5 + 0.5*1 = 0.75
    assert b.mean == pytest.approx(0.75) and b.std == pytest.approx(math.sqrt(0.75 - 0.5625))
    with pytest.raises(ValueError, match="`momentum`"):
        RunningBaseline(momentum=1.0)


def test_global_baseline_scores_flat_groups_against_the_running_mean():
    b = RunningBaseline()
    r = torch.tensor([[1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]])
    first = global_baseline_advantages(r, 4, b)
    assert torch.equal(first, group_advantages(r, 4))  # no history yet
    b.update(torch.tensor([0.0, 0.0, 0.0, 1.0]))  # mean 0.25, std sqrt(3)/4
    adv = global_baseline_advantages(r, 4, b, eps=0.0)
    s = math.sqrt(3) / 4
    assert torch.allclose(adv[0], torch.full((4,), 0.75 / s))
    assert torch.allclose(adv[1], torch.full((4,), -0.25 / s))
    assert torch.allclose(adv[2], group_advantages(r, 4)[2])
