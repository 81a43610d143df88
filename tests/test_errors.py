"""Bad input gets a ValueError that names the argument (and says what to do)."""

import pytest
import torch

from grpo_core import aggregate, clipped_surrogate, group_advantages, grpo_loss, preset_advantages

NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize(
    "rewards,group_size,kwargs,pattern",
    [
        ([1.0, NAN, 0.0, 1.0], 2, {}, r"`rewards` contains nan at index \(0, 1\)"),
        ([1.0, 0.0, INF, 1.0], 2, {}, r"`rewards` contains inf"),
        ([1.0, 0.0, -INF, 1.0], 4, {}, r"`rewards` contains -inf"),
        ([1.0, 0.0, 1.0], 2, {}, r"`rewards` has 3 entries, which is not a positive multiple of group_size=2"),
        ([], 2, {}, r"`rewards` has 0 entries"),
        (torch.zeros(3, 4), 2, {}, r"`rewards` has shape \(3, 4\) but group_size=2"),
        (torch.zeros(2, 2, 2), 2, {}, r"`rewards` must be 1-D"),
        ([1.0, 0.0], 1, {}, r"`group_size` must be at least 2"),
        ([1.0, 0.0], 0, {}, r"`group_size` must be at least 2"),
        ([1.0, 0.0], 2.0, {}, r"`group_size` must be an int"),
        ([1.0, 0.0], 2, {"scale": "global"}, r"`scale`='global' is not known"),
        ([1.0, 0.0], 2, {"std": "unbiased"}, r"`std`='unbiased' is not known"),
        ([1.0, 0.0], 2, {"eps": -1e-8}, r"`eps` must be a finite number >= 0"),
        ("abc", 2, {}, r"`rewards` must be a tensor or a list of numbers"),
    ],
)
def test_group_advantages_errors(rewards, group_size, kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        group_advantages(rewards, group_size, **kwargs)


def test_unknown_preset():
    with pytest.raises(ValueError, match=r"`preset`='openai' is not known; choose one of"):
        preset_advantages([1.0, 0.0], 2, "openai")


def test_surrogate_errors():
    z = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="`old_logp` has shape"):
        clipped_surrogate(z, torch.zeros(2, 4), torch.zeros(2))
    with pytest.raises(ValueError, match="`advantages` has shape"):
        clipped_surrogate(z, z, torch.zeros(3))
    with pytest.raises(ValueError, match="`advantages` contains nan"):
        clipped_surrogate(z, z, torch.tensor([0.0, NAN]))
    with pytest.raises(ValueError, match="`logp` contains inf"):
        clipped_surrogate(torch.tensor([[INF, 0.0, 0.0]]), torch.zeros(1, 3), torch.zeros(1))
    with pytest.raises(ValueError, match="`eps_low` must be a finite number >= 0"):
        clipped_surrogate(z, z, torch.zeros(2), eps_low=-0.1)
    with pytest.raises(ValueError, match="`eps_high` must be a finite number >= 0"):
        clipped_surrogate(z, z, torch.zeros(2), eps_high=NAN)
    with pytest.raises(ValueError, match="`logp` must be"):
        clipped_surrogate(torch.zeros(2, 3, 4), torch.zeros(2, 3, 4), torch.zeros(2))


def test_aggregate_errors():
    v = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="`mask` has shape"):
        aggregate(v, torch.ones(2, 4), "token-mean")
    with pytest.raises(ValueError, match="`mask` must hold only 0 and 1"):
        aggregate(v, torch.full((2, 3), 0.5), "token-mean")
    with pytest.raises(ValueError, match="`mode`='mean' is not known"):
        aggregate(v, torch.ones(2, 3), "mean")
    with pytest.raises(ValueError, match="`max_len` must be an int >= 1"):
        aggregate(v, torch.ones(2, 3), "seq-mean-token-sum-norm", max_len=0)
    with pytest.raises(ValueError, match="`values` must be"):
        aggregate(torch.zeros(3), torch.ones(3), "token-mean")


def test_grpo_loss_errors():
    z = torch.zeros(2, 3)
    m = torch.ones(2, 3)
    with pytest.raises(ValueError, match="`kl`='k5' is not known"):
        grpo_loss(z, z, z, torch.zeros(2), m, kl="k5")
    with pytest.raises(ValueError, match="`agg`='sum' is not known"):
        grpo_loss(z, z, z, torch.zeros(2), m, agg="sum")
    with pytest.raises(ValueError, match="`beta` must be a finite number >= 0"):
        grpo_loss(z, z, z, torch.zeros(2), m, beta=-0.1)
    with pytest.raises(ValueError, match="`ref_logp` has shape"):
        grpo_loss(z, z, torch.zeros(2, 4), torch.zeros(2), m)
    with pytest.raises(ValueError, match="`ref_logp` contains nan"):
        grpo_loss(z, z, torch.full((2, 3), NAN), torch.zeros(2), m)
    with pytest.raises(ValueError, match="`mask` has shape"):
        grpo_loss(z, z, z, torch.zeros(2), torch.ones(3, 2))
