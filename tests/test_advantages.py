"""Claims about group-relative advantages (book chapters 'Introduction' and 'Group normalisation')."""

import math

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from grpo_core import PRESETS, bernoulli_advantages, group_advantages, loo_advantages, preset_advantages

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


# ----------------------------------------------------------------------------- hand-computed values


def test_seed_example_population_std():
    # centred [0, .1, -.1, 0]; population std sqrt(0.02 / 4) = 0.0707; 0.1 / 0.0707 = sqrt(2)
    adv = group_advantages(torch.tensor([7.0, 7.1, 6.9, 7.0]), 4)
    assert torch.allclose(adv, torch.tensor([0.0, math.sqrt(2), -math.sqrt(2), 0.0]), atol=1e-4)


def test_three_right_one_wrong_population_and_sample():
    r = torch.tensor([1.0, 1.0, 1.0, 0.0])
    # mean 3/4; population std sqrt(3)/4 -> (1/4)/(sqrt3/4) = 1/sqrt3, (-3/4)/(sqrt3/4) = -sqrt3
    pop = group_advantages(r, 4)
    assert torch.allclose(pop, torch.tensor([1, 1, 1, -3]) / math.sqrt(3), atol=1e-6)
    assert torch.allclose(pop, torch.tensor([0.577, 0.577, 0.577, -1.732]), atol=1e-3)
    # sample std: sqrt((3/16 + 9/16) / 3) = 1/2 -> 0.5 and -1.5
    samp = group_advantages(r, 4, std="sample")
    assert torch.allclose(samp, torch.tensor([0.5, 0.5, 0.5, -1.5]), atol=1e-6)


def test_batch_scale_hand_computed():
    r = torch.tensor([[0.0, 1.0], [0.0, 3.0]])
    # group means 0.5 and 1.5; batch population std: mean 1, var (1 + 0 + 1 + 4) / 4 = 1.5
    expected = torch.tensor([[-0.5, 0.5], [-1.5, 1.5]]) / math.sqrt(1.5)
    assert torch.allclose(group_advantages(r, 2, scale="batch", eps=0.0), expected, atol=1e-6)


def test_scale_none_is_mean_subtraction_only():
    r = torch.tensor([3.0, 1.0, 2.0, 10.0, 10.0, 13.0])
    expected = torch.tensor([1.0, -1.0, 0.0, -1.0, -1.0, 2.0])
    assert torch.allclose(group_advantages(r, 3, scale="none"), expected)


def test_flat_and_2d_layouts_agree_and_keep_shape():
    r = torch.randn(5 * 6, generator=torch.Generator().manual_seed(0))
    flat = group_advantages(r, 6)
    grid = group_advantages(r.view(5, 6), 6)
    assert flat.shape == (30,) and grid.shape == (5, 6)
    assert torch.equal(flat.view(5, 6), grid)


def test_groups_are_independent_and_contiguous():
    r = torch.tensor([0.0, 1.0, 100.0, 300.0])
    adv = group_advantages(r, 2)
    assert torch.allclose(adv, torch.tensor([-1.0, 1.0, -1.0, 1.0]), atol=1e-6)


def test_lists_and_int_rewards_are_accepted():
    assert torch.allclose(group_advantages([1, 1, 1, 0], 4), group_advantages(torch.tensor([1.0, 1.0, 1.0, 0.0]), 4))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("device", DEVICES)
def test_dtype_and_device_are_kept(dtype, device):
    r = torch.tensor([1.0, 0.0, 0.5, 0.5], dtype=dtype, device=device)
    adv = group_advantages(r, 2)
    assert adv.dtype == dtype and adv.device.type == device


# ----------------------------------------------------------------------------- degenerate groups


def test_all_equal_group_is_exactly_zero_even_when_rounding_leaves_a_tiny_std():
    r = torch.full((8,), 0.1, dtype=torch.float32)
    # The float32 arithmetic really leaves a nonzero std: the guard is needed.
    assert r.std(correction=0).item() > 0.0
    adv = group_advantages(r, 8)
    assert torch.equal(adv, torch.zeros(8))


def test_degenerate_group_next_to_normal_group():
    r = torch.tensor([[0.3] * 4, [1.0, 0.0, 1.0, 0.0]])
    adv = group_advantages(r, 4)
    assert torch.equal(adv[0], torch.zeros(4))
    assert torch.allclose(adv[1], torch.tensor([1.0, -1.0, 1.0, -1.0]), atol=1e-6)


def test_without_the_guard_rounding_shows():
    r = torch.full((8,), 0.1, dtype=torch.float32)
    raw = group_advantages(r, 8, zero_equal_groups=False)
    assert raw.abs().max().item() > 0.0  # the arithmetic is not exactly zero


def test_zero_if_std_below_threshold():
    r = torch.tensor([1.0, 1.0 + 1e-9, 2.0, 3.0], dtype=torch.float64)
    adv = group_advantages(r, 2, zero_if_std_below=1e-8)
    assert torch.equal(adv[:2], torch.zeros(2, dtype=torch.float64))
    assert torch.allclose(adv[2:], torch.tensor([-1.0, 1.0], dtype=torch.float64), atol=1e-6)


# ----------------------------------------------------------------------------- presets


def _seed_notes_loop(rewards: torch.Tensor, g: int) -> torch.Tensor:
    """The source notes' per-group `safe_normalize_rewards`, one group at a time."""
    out = []
    for group in rewards.view(-1, g):
        mean = group.mean()
        std = group.std(unbiased=False)
        out.append(torch.zeros_like(group) if std < 1e-8 else (group - mean) / (std + 1e-8))
    return torch.cat(out)


def _trl_arithmetic(rewards: torch.Tensor, g: int, batch: bool = False) -> torch.Tensor:
    """TRL GRPOTrainer's advantage arithmetic (scale_rewards="group" or "batch")."""
    mean = rewards.view(-1, g).mean(dim=1).repeat_interleave(g)
    std = rewards.std() if batch else rewards.view(-1, g).std(dim=1).repeat_interleave(g)
    return (rewards - mean) / (std + 1e-4)


def _verl_loop(rewards: torch.Tensor, g: int) -> torch.Tensor:
    """verl's compute_grpo_outcome_advantage: per-group torch.mean / torch.std, eps 1e-6."""
    out = rewards.clone()
    for start in range(0, rewards.numel(), g):
        group = rewards[start : start + g]
        out[start : start + g] = (group - torch.mean(group)) / (torch.std(group) + 1e-6)
    return out


REWARD_SETS = {
    "bernoulli": torch.tensor([1, 0, 0, 1, 1, 1, 1, 1, 0, 0, 0, 0], dtype=torch.float32),
    "gaussian": torch.randn(48, generator=torch.Generator().manual_seed(3)),
    "near-constant": torch.tensor([0.1] * 4 + [7.0, 7.1, 6.9, 7.0] + [9.8, 9.9, 9.7, 9.85], dtype=torch.float32),
}


@pytest.mark.parametrize("name", REWARD_SETS)
def test_preset_seed_notes_matches_the_notes_loop(name):
    r = REWARD_SETS[name]
    assert torch.allclose(preset_advantages(r, 4, "seed-notes"), _seed_notes_loop(r, 4), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", REWARD_SETS)
def test_preset_trl_matches_trl_arithmetic(name):
    r = REWARD_SETS[name]
    assert torch.allclose(preset_advantages(r, 4, "trl"), _trl_arithmetic(r, 4), rtol=1e-6, atol=1e-7)
    assert torch.allclose(preset_advantages(r, 4, "trl-batch"), _trl_arithmetic(r, 4, batch=True), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", REWARD_SETS)
def test_preset_verl_matches_verl_loop(name):
    r = REWARD_SETS[name]
    assert torch.allclose(preset_advantages(r, 4, "verl"), _verl_loop(r, 4), rtol=1e-6, atol=1e-7)


def test_presets_reproduce_the_zero_std_column_of_the_reference_sheet():
    r = torch.full((4,), 0.1)
    assert torch.equal(preset_advantages(r, 4, "seed-notes"), torch.zeros(4))
    assert torch.equal(preset_advantages(r, 4, "deepseekmath"), torch.zeros(4))
    # TRL divides the rounding residue by 1e-4: not exactly zero, but tiny.
    trl = preset_advantages(r, 4, "trl")
    assert trl.abs().max() < 1e-3
    exact = torch.zeros(4)
    assert torch.equal(preset_advantages(torch.ones(4), 4, "trl"), exact)
    assert torch.equal(preset_advantages(torch.ones(4), 4, "verl"), exact)


def test_dr_grpo_preset_is_mean_only():
    r = torch.tensor([1.0, 0.0, 0.0, 0.0])
    assert torch.allclose(preset_advantages(r, 4, "dr-grpo"), torch.tensor([0.75, -0.25, -0.25, -0.25]))


def test_every_preset_runs_and_only_known_keys():
    r = REWARD_SETS["gaussian"]
    for name in PRESETS:
        assert preset_advantages(r, 4, name).shape == r.shape


# ----------------------------------------------------------------------------- properties

finite = st.floats(min_value=-100, max_value=100, allow_nan=False, allow_infinity=False, width=64)


@st.composite
def groups(draw, min_g=2, max_g=16, max_b=6):
    g = draw(st.integers(min_g, max_g))
    b = draw(st.integers(1, max_b))
    values = draw(st.lists(finite, min_size=g * b, max_size=g * b))
    return torch.tensor(values, dtype=torch.float64).view(b, g), g


def _spread_ok(r: torch.Tensor) -> torch.Tensor:
    return (r.amax(dim=1) - r.amin(dim=1)) > 1e-3


@settings(max_examples=200, deadline=None)
@given(groups())
def test_property_group_mean_is_zero(data):
    r, g = data
    adv = group_advantages(r, g)
    assert torch.allclose(adv.mean(dim=1), torch.zeros(r.shape[0], dtype=r.dtype), atol=1e-9)


@settings(max_examples=200, deadline=None)
@given(groups())
def test_property_unit_population_std_for_non_degenerate_groups(data):
    r, g = data
    keep = _spread_ok(r)
    assume(bool(keep.any()))
    adv = group_advantages(r, g, eps=0.0)[keep]
    assert torch.allclose(adv.std(dim=1, correction=0), torch.ones(adv.shape[0], dtype=r.dtype), atol=1e-9)


@settings(max_examples=200, deadline=None)
@given(groups(), st.floats(0.01, 100), st.floats(-1000, 1000))
def test_property_invariant_under_positive_affine_maps(data, a, b):
    r, g = data
    keep = _spread_ok(r)
    before = group_advantages(r, g, eps=0.0)[keep]
    after = group_advantages(a * r + b, g, eps=0.0)[keep]
    assert torch.allclose(before, after, atol=1e-6)


@settings(max_examples=100, deadline=None)
@given(groups(), st.floats(0.01, 100))
def test_property_negative_scale_flips_the_sign(data, a):
    r, g = data
    keep = _spread_ok(r)
    assert torch.allclose(group_advantages(-a * r, g, eps=0.0)[keep], -group_advantages(r, g, eps=0.0)[keep], atol=1e-6)


@settings(max_examples=200, deadline=None)
@given(groups(), st.randoms(use_true_random=False))
def test_property_permutation_equivariant_within_a_group(data, rnd):
    r, g = data
    perm = list(range(g))
    rnd.shuffle(perm)
    perm = torch.tensor(perm)
    assert torch.allclose(group_advantages(r[:, perm], g), group_advantages(r, g)[:, perm], atol=1e-9)


@settings(max_examples=100, deadline=None)
@given(groups())
def test_property_sample_std_is_population_times_sqrt_g_minus_1_over_g(data):
    r, g = data
    pop = group_advantages(r, g, eps=0.0)
    samp = group_advantages(r, g, std="sample", eps=0.0)
    assert torch.allclose(samp, pop * math.sqrt((g - 1) / g), atol=1e-9)


# ----------------------------------------------------------------------------- Bernoulli closed form


@pytest.mark.parametrize("std", ["population", "sample"])
def test_bernoulli_closed_form_matches_group_advantages_for_every_k_and_g(std):
    for g in range(2, 17):
        k = torch.arange(g + 1)
        groups = (torch.arange(g)[None, :] < k[:, None]).double()  # row k: k ones then zeros
        adv = group_advantages(groups, g, std=std, eps=0.0)
        right, wrong = bernoulli_advantages(k, g, std=std)
        has_right, has_wrong = k > 0, k < g
        assert torch.allclose(adv[has_right, 0], right[has_right], atol=1e-12)
        assert torch.allclose(adv[has_wrong, -1], wrong[has_wrong], atol=1e-12)
        assert torch.isnan(right[0]) and torch.isnan(wrong[g])


def test_bernoulli_hand_values():
    right, wrong = bernoulli_advantages(torch.tensor([1, 2, 3]), 4)
    # p = 1/4: sqrt(3) and -1/sqrt(3); p = 1/2: 1 and -1; p = 3/4: 1/sqrt(3) and -sqrt(3)
    assert torch.allclose(right, torch.tensor([math.sqrt(3), 1.0, 1 / math.sqrt(3)], dtype=torch.float64))
    assert torch.allclose(wrong, torch.tensor([-1 / math.sqrt(3), -1.0, -math.sqrt(3)], dtype=torch.float64))
    r, w = bernoulli_advantages(3, 4, std="sample")
    assert r.item() == pytest.approx(0.5) and w.item() == pytest.approx(-1.5)


def test_bernoulli_errors():
    with pytest.raises(ValueError, match="`k` must lie in 0..group_size=4"):
        bernoulli_advantages(5, 4)
    with pytest.raises(ValueError, match="`k` must be an int"):
        bernoulli_advantages(0.5, 4)
    with pytest.raises(ValueError, match="`group_size` must be at least 2"):
        bernoulli_advantages(0, 1)


def test_seed_notes_guard_misses_the_rounding_residue_of_larger_rewards():
    # Eight equal rewards of 7.1 in float32: the computed mean is off by a rounding step, so the
    # computed std is about 5e-7, above the notes' absolute threshold of 1e-8. Their
    # safe_normalize then divides the residue by it: every answer gets the same advantage near +-1.
    r = torch.full((8,), 7.1, dtype=torch.float32)
    assert r.std(correction=0).item() > 1e-8
    seed = preset_advantages(r, 8, "seed-notes")
    assert torch.equal(seed, _seed_notes_loop(r, 8))
    assert (seed.abs() > 0.5).all() and (seed == seed[0]).all()
    assert torch.equal(group_advantages(r, 8), torch.zeros(8))  # the exact-equality guard


def test_loo_advantages_hand_values_and_relation_to_mean_only():
    r = torch.tensor([1.0, 0.0, 0.0, 0.0])
    # answer 1: 1 - 0 = 1; others: 0 - 1/3
    assert torch.allclose(loo_advantages(r, 4), torch.tensor([1.0, -1 / 3, -1 / 3, -1 / 3]))
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(6, 5, generator=gen, dtype=torch.float64)
    assert torch.allclose(loo_advantages(x, 5), 5 / 4 * group_advantages(x, 5, scale="none"))
    with pytest.raises(ValueError, match="`group_size` must be at least 2"):
        loo_advantages([1.0], 1)
