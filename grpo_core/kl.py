"""Per-token estimators of KL(pi_theta || pi_ref) from tokens sampled from pi_theta.

With ``log_r = log pi_ref(o_t) - log pi_theta(o_t)`` for a token ``o_t`` drawn from pi_theta
(J. Schulman, "Approximating KL Divergence", 2020; book Eq. ``kl-estimators``)::

    k1 = -log_r                       unbiased, can be negative per token, high variance
    k2 = log_r**2 / 2                 biased, >= 0, low variance
    k3 = exp(log_r) - 1 - log_r       unbiased, >= 0, low variance (DeepSeekMath Eq. 4)

The mean over tokens of k1 or k3 estimates the KL; k2's mean does not (it is exact only to
second order in log_r).

:func:`kl_estimate` also takes the kinds of :data:`KL_KINDS` that trainers use as a *loss*:
``"k1+"``, ``"k2+"``, ``"k3+"`` (verl's straight-through kinds: the value of k1, k2 or k3, the
gradient of k2, which is the one whose expected gradient is that of KL(pi_theta || pi_ref); book
section ``kl-gradient``), and ``clamp="verl"`` reproduces verl 0.9.1's clamps of ``low_var_kl``
(``log_r`` to [-20, 20], k3 to [-10, 10]).
"""

from __future__ import annotations

import math

import torch

from ._checks import as_float_tensor, check_choice, check_finite, check_overflow, check_same_shape

__all__ = ["kl_k1", "kl_k2", "kl_k3", "kl_estimate", "KL_ESTIMATORS", "KL_KINDS", "KL_CLAMPS"]

# Below this |log_r|, k3 is summed from its Taylor series: exp(x) - 1 - x = sum_{n>=2} x^n / n!.
# expm1(x) - x loses about log10(2/|x|) digits to cancellation there; the series, cut after
# x^12 / 12!, is exact to float64 rounding for |x| < 0.1.
_SERIES_BELOW = 0.1
_SERIES_COEFFS = [1.0 / math.factorial(n) for n in range(2, 13)]


def _log_ratio(logp, ref_logp) -> torch.Tensor:
    lp = as_float_tensor(logp, "logp")
    ref = as_float_tensor(ref_logp, "ref_logp")
    check_same_shape(lp, "logp", ref, "ref_logp")
    check_finite(lp, "logp")
    check_finite(ref, "ref_logp")
    return ref - lp


_OVERFLOW = ("the estimate is beyond the dtype's range, the gap ref_logp - logp is too large for it; compute in "
             "float64, or clamp it (kl_estimate(..., clamp='verl')).")


def _checked(value: torch.Tensor) -> torch.Tensor:
    check_overflow(value, "ref_logp", _OVERFLOW)
    return value


def kl_k1(logp, ref_logp) -> torch.Tensor:
    """k1 = log pi_theta - log pi_ref per token (book Eq. ``kl-estimators``)."""
    return _checked(-_log_ratio(logp, ref_logp))


def kl_k2(logp, ref_logp) -> torch.Tensor:
    """k2 = (log pi_ref - log pi_theta)**2 / 2 per token (book Eq. ``kl-estimators``)."""
    return _checked(0.5 * _log_ratio(logp, ref_logp).square())


def _k3_from_log_ratio(x: torch.Tensor) -> torch.Tensor:
    small = x.abs() < _SERIES_BELOW
    xs = torch.where(small, x, torch.zeros_like(x))  # keeps the unused branch's gradient finite
    series = torch.full_like(xs, _SERIES_COEFFS[-1])
    for c in reversed(_SERIES_COEFFS[:-1]):
        series = series * xs + c
    series = series * xs * xs
    xl = torch.where(small, torch.ones_like(x), x)
    direct = torch.expm1(xl) - xl
    return torch.where(small, series, direct)


def kl_k3(logp, ref_logp) -> torch.Tensor:
    """k3 = pi_ref/pi_theta - log(pi_ref/pi_theta) - 1 per token (book Eq. ``kl-estimators``, DeepSeekMath Eq. 4).

    Computed from the log-ratio with ``expm1`` (and a Taylor series near 0), never from the
    probabilities themselves, so it stays accurate for tiny and for large gaps: a gap of
    ``log_r = -30`` gives ``29.0000000000001`` rather than a probability that underflowed.
    The result is always >= 0. Where the true value exceeds the dtype's range (``log_r`` above
    about 88 in float32, 709 in float64) it raises a ``ValueError`` naming ``ref_logp`` instead
    of returning inf.
    """
    return _checked(_k3_from_log_ratio(_log_ratio(logp, ref_logp)))


KL_ESTIMATORS = {"k1": kl_k1, "k2": kl_k2, "k3": kl_k3}

#: Every kind :func:`kl_estimate` computes: the three estimators, and their straight-through
#: versions for a loss (value of the estimator, gradient of k2; verl's ``kl_loss_type`` with a
#: ``+`` suffix).
KL_KINDS = {
    "k1": "log pi_theta - log pi_ref (verl 'kl', 'k1')",
    "k2": "(log pi_theta - log pi_ref)**2 / 2 (verl 'mse', 'k2')",
    "k3": "pi_ref/pi_theta - 1 - log(pi_ref/pi_theta) (DeepSeekMath Eq. 4; verl 'low_var_kl', 'k3'; TRL)",
    "k1+": "value of k1, gradient of k2 (verl 'k1+', 'kl+')",
    "k2+": "k2 (verl 'k2+', 'mse+': the straight-through changes nothing)",
    "k3+": "value of k3, gradient of k2 (verl 'k3+', 'low_var_kl+')",
}

#: The clamps :func:`kl_estimate` can apply (``clamp=None`` applies none).
KL_CLAMPS = {
    "verl": "verl 0.9.1 kl_penalty: for k3, log_r clamped to [-20, 20] and k3 to [-10, 10]; k1, k2 unclamped",
}


def kl_estimate(logp, ref_logp, kind: str = "k3", clamp: str | None = None) -> torch.Tensor:
    """Per-token KL(pi_theta || pi_ref) estimate of kind ``kind`` (a key of :data:`KL_KINDS`).

    Args:
        logp: log pi_theta of the sampled tokens, any shape.
        ref_logp: log pi_ref of the same tokens, same shape.
        kind: ``"k1"``, ``"k2"``, ``"k3"`` (see the module docstring) or a straight-through kind
            ``"k1+"``, ``"k2+"``, ``"k3+"``: the value of the estimator without the ``+``, the
            gradient of k2, ``(log pi_theta - log pi_ref) * grad log pi_theta`` (verl's ``k3+``;
            its expected gradient is that of KL(pi_theta || pi_ref), book Eq. ``k3-grad-expectation``).
        clamp: None, or ``"verl"`` for verl 0.9.1's ``low_var_kl``: ``log_r`` clamped to
            [-20, 20] before ``exp`` and k3 clamped to [-10, 10] (k1 and k2 have no clamp there);
            where a clamp acts the value is constant, so the gradient of the value is 0 (the
            gradient of a ``+`` kind is k2's, which verl does not clamp).
    """
    check_choice(kind, "kind", KL_KINDS)
    if clamp is not None:
        check_choice(clamp, "clamp", KL_CLAMPS)
    base = kind.rstrip("+")
    if base == "k3" and clamp == "verl":
        x = _log_ratio(logp, ref_logp).clamp(-20.0, 20.0)
        value = _k3_from_log_ratio(x).clamp(-10.0, 10.0)
    else:
        value = KL_ESTIMATORS[base](logp, ref_logp)  # checked for overflow
    if not kind.endswith("+") or base == "k2":
        return value
    k2 = kl_k2(logp, ref_logp)
    return k2 - k2.detach() + value.detach()
