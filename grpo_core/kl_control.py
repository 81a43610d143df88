"""Adaptive KL coefficient: raise beta when the policy drifts past a KL target, lower it below.

The seed notes' flowchart (section 4.1.1) checks ``KL(pi_theta || pi_ref) < delta`` after every
update and "adjusts beta" when it is exceeded, without saying how. The standard answer is the
proportional controller of Ziegler et al. 2019 ("Fine-Tuning Language Models from Human
Preferences", arXiv:1909.08593, section 2.2), book Eq. ``kl-controller``::

    e     = clip(KL / KL_target - 1, -max_error, max_error)       (max_error = 0.2)
    beta <- beta * (1 + k_beta * e * n_steps / horizon)

The error is relative (a KL twice the target counts as much as a KL ten times the target, once
clipped), so beta changes by a bounded factor per update and, being multiplied, never changes
sign. The paper states it per update with ``k_beta = 0.1``; its code (and TRL's and OpenRLHF's
``AdaptiveKLController``) writes ``k_beta = 1`` and spreads the change over a ``horizon`` counted
in samples, calling ``update(kl, batch_size)``. Both are this class: the defaults
(``k_beta = 0.1``, ``horizon = 1``, one call per step) are the paper's.

Both controllers here fit :class:`grpo_core.analysis.toy.KLController`, so :func:`grpo_core.analysis.toy.train_toy`
accepts them as ``kl_controller=``.
"""

from __future__ import annotations


from ._checks import check_int, check_nonneg_number, check_positive, check_real

__all__ = ["AdaptiveKLController", "FixedKLController"]


class AdaptiveKLController:
    """Proportional controller of the KL coefficient (Ziegler et al. 2019; book Eq. ``kl-controller``).

    Args:
        init_beta: the starting coefficient, > 0 (a multiplicative controller cannot leave 0).
        target: the KL (in nats, same estimator as what you pass to :meth:`update`) to hold, > 0.
        horizon: how many ``n_steps`` it takes for the full ``k_beta * e`` change, > 0.
        k_beta: the gain; the paper uses 0.1 with ``horizon = 1``.
        max_error: the clip on the relative error, in (0, 1); 0.2 in the paper.

    Attributes:
        beta: the current coefficient. ``history``: every beta, the initial one first.
    """

    def __init__(self, init_beta: float, target: float, horizon: float = 1.0, k_beta: float = 0.1, max_error: float = 0.2):
        self.beta = check_positive(init_beta, "init_beta")
        self.target = check_positive(target, "target")
        self.horizon = check_positive(horizon, "horizon")
        self.k_beta = check_nonneg_number(k_beta, "k_beta")
        self.max_error = check_positive(max_error, "max_error")
        if self.max_error >= 1.0:
            raise ValueError(f"`max_error` must be in (0, 1) so that beta stays positive; got {max_error!r}.")
        self.history = [self.beta]

    def error(self, kl: float) -> float:
        """The clipped relative error ``clip(kl / target - 1, -max_error, max_error)``."""
        kl = check_real(kl, "kl", " (the KL measured this step)")
        return min(max(kl / self.target - 1.0, -self.max_error), self.max_error)

    def update(self, kl: float, n_steps: int = 1) -> float:
        """Move beta after ``n_steps`` steps (or samples) that measured ``kl``; returns the new beta.

        A KL below zero (a k1 estimate can be negative) simply counts as "far below target".
        """
        check_int(n_steps, "n_steps")
        step = self.k_beta * n_steps / self.horizon
        if step * self.max_error >= 1.0:
            raise ValueError(
                f"`n_steps`={n_steps} with k_beta={self.k_beta} and horizon={self.horizon} could scale beta "
                f"by 1 - {step * self.max_error:.3g} <= 0; raise `horizon` or lower `k_beta`."
            )
        self.beta *= 1.0 + step * self.error(kl)
        self.history.append(self.beta)
        return self.beta

    def __repr__(self) -> str:
        return (f"AdaptiveKLController(beta={self.beta:.4g}, target={self.target:g}, horizon={self.horizon:g}, "
                f"k_beta={self.k_beta:g}, max_error={self.max_error:g})")


class FixedKLController:
    """A constant beta behind the same interface (what a trainer uses when no KL target is set)."""

    def __init__(self, beta: float):
        self.beta = check_nonneg_number(beta, "beta")
        self.history = [self.beta]

    def update(self, kl: float, n_steps: int = 1) -> float:
        """Does not change beta; returns it."""
        self.history.append(self.beta)
        return self.beta

    def __repr__(self) -> str:
        return f"FixedKLController(beta={self.beta:.4g})"
