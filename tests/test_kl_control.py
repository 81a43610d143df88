"""The adaptive KL controller (Ziegler et al. 2019), book Eq. ``kl-controller``."""

from __future__ import annotations

import math
import statistics

import pytest

from grpo_core.kl_control import AdaptiveKLController, FixedKLController
from grpo_core.analysis.toy import ToyConfig, make_bandit, train_toy


def test_update_by_hand_paper_form():
    # beta <- beta * (1 + k_beta * clip(kl / target - 1, -0.2, 0.2)), k_beta = 0.1, one step
    c = AdaptiveKLController(0.1, target=0.5)
    assert c.update(0.55) == pytest.approx(0.1 * (1 + 0.1 * 0.1))  # e = 0.1
    assert c.update(0.5) == pytest.approx(0.1 * 1.01)  # on target: no change
    assert c.update(0.45) == pytest.approx(0.1 * 1.01 * (1 - 0.1 * 0.1))  # e = -0.1
    assert c.history == pytest.approx([0.1, 0.101, 0.101, 0.101 * 0.99])


def test_update_by_hand_code_form_with_horizon():
    # lm-human-preferences / TRL form: k_beta = 1, horizon in samples, n_steps = batch size
    c = AdaptiveKLController(0.2, target=6.0, horizon=10000, k_beta=1.0)
    assert c.update(6.6, n_steps=512) == pytest.approx(0.2 * (1 + 0.1 * 512 / 10000))


def test_error_is_relative_and_clipped():
    c = AdaptiveKLController(1.0, target=0.5)
    assert c.error(0.5) == 0.0
    assert c.error(0.6) == pytest.approx(0.2)
    assert c.error(0.55) == pytest.approx(0.1)
    assert c.error(5.0) == 0.2  # ten times the target counts like 1.2 times
    assert c.error(0.0) == -0.2
    assert c.error(-3.0) == -0.2  # a negative k1 estimate: "far below target"
    wide = AdaptiveKLController(1.0, target=0.5, max_error=0.5)
    assert wide.error(5.0) == 0.5


def test_clipping_bounds_the_change_per_update():
    c = AdaptiveKLController(1.0, target=0.1, k_beta=0.1)
    c.update(1e6)
    assert c.beta == pytest.approx(1.02)
    c = AdaptiveKLController(1.0, target=0.1, k_beta=0.1)
    c.update(0.0)
    assert c.beta == pytest.approx(0.98)


def test_beta_stays_positive_however_long_the_kl_is_below_target():
    c = AdaptiveKLController(1.0, target=1.0, k_beta=4.9)  # multiplier 1 - 0.98 = 0.02 per step
    for _ in range(100):
        c.update(-10.0)
    assert all(b > 0 for b in c.history)
    assert c.beta == pytest.approx(0.02**100)


def test_direction_kl_above_target_raises_beta_below_lowers_it():
    c = AdaptiveKLController(0.3, target=1.0)
    assert c.update(1.5) > 0.3
    c = AdaptiveKLController(0.3, target=1.0)
    assert c.update(0.5) < 0.3


def test_fixed_controller_never_changes():
    c = FixedKLController(0.04)
    for kl in (0.0, 10.0, -1.0):
        assert c.update(kl) == 0.04
    assert c.history == [0.04] * 4


def test_train_toy_uses_the_controller_beta_each_step():
    c = AdaptiveKLController(0.1, target=0.5)
    hist = train_toy(make_bandit(), ToyConfig(steps=30), kl_controller=c)
    assert hist["beta"] == c.history[:-1]
    # each step's beta was computed from the exact KL measured the step before
    for prev, new, kl in zip(c.history, c.history[1:], hist["kl"]):
        assert new == pytest.approx(prev * (1 + 0.1 * max(-0.2, min(0.2, kl / 0.5 - 1))))


def test_controller_holds_a_kl_target_on_the_toy_policy():
    bandit = make_bandit()
    fixed = train_toy(bandit, ToyConfig(steps=300, beta=0.1))
    for target in (0.2, 0.5):
        c = AdaptiveKLController(0.1, target=target)
        hist = train_toy(bandit, ToyConfig(steps=300), kl_controller=c)
        tail = hist["kl"][-100:]
        assert statistics.mean(tail) == pytest.approx(target, rel=0.1)
        assert max(abs(k / target - 1) for k in tail) < 0.3
    assert statistics.mean(fixed["kl"][-100:]) > 1.0  # with the starting beta held fixed, far above


@pytest.mark.parametrize(
    "kwargs,pattern",
    [
        (dict(init_beta=0.0, target=1.0), "`init_beta` must be > 0"),
        (dict(init_beta=-1.0, target=1.0), "`init_beta` must be > 0"),
        (dict(init_beta=0.1, target=0.0), "`target` must be > 0"),
        (dict(init_beta=0.1, target=1.0, horizon=0), "`horizon` must be > 0"),
        (dict(init_beta=0.1, target=1.0, k_beta=-0.1), "`k_beta`"),
        (dict(init_beta=0.1, target=1.0, max_error=1.0), "`max_error` must be in"),
    ],
)
def test_bad_construction_is_refused(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        AdaptiveKLController(**kwargs)


def test_bad_updates_are_refused():
    c = AdaptiveKLController(0.1, target=1.0)
    with pytest.raises(ValueError, match="`kl` must be a finite number"):
        c.update(math.nan)
    with pytest.raises(ValueError, match="`n_steps` must be an int >= 1"):
        c.update(1.0, n_steps=0)
    big = AdaptiveKLController(0.1, target=1.0, k_beta=1.0, horizon=1)
    with pytest.raises(ValueError, match="`n_steps`=5 .* raise `horizon`"):
        big.update(0.0, n_steps=5)  # 1 - 5 * 0.2 = 0 would zero beta
    assert big.beta == 0.1  # unchanged after the refusal
