"""Reward distributions: where the ``[B, G]`` rewards of the book's explorers and chapters come from.

GRPO sees the rewards ``r[b, i]`` of G answers to each of B prompts. The chapters ask how the
group advantages (book Eq. ``adv-group``) behave when those rewards come from different
distributions, so each distribution here is a small frozen dataclass whose fields are its
parameters and which can

- ``sample(B, G, seed=...)`` a ``[B, G]`` tensor, reproducibly, from a local ``torch.Generator``
  (the global RNG is never touched, so a notebook cell gives the same numbers however often it
  is run and whatever ran before it);
- give the exact population ``mean`` and ``std`` of one reward, to check samples against;
- give a short ``label`` for plot titles and legends;
- list its ``params()`` as :class:`ParamSpec` rows an interactive explorer turns into sliders.

The distributions (registry name: class, what one reward is):

- ``bernoulli``: :class:`Bernoulli`, 1 with probability ``p``, else 0 (a verifiable reward);
- ``gaussian``: :class:`Gaussian`, ``N(mu, sigma**2)`` (a reward-model score);
- ``uniform``: :class:`Uniform`, uniform on ``[low, high]``;
- ``beta``: :class:`Beta`, ``Beta(a, b)`` on ``[0, 1]`` (a graded score);
- ``mixture``: :class:`Mixture`, with probability ``w`` from ``N(mu1, sigma**2)``, else from
  ``N(mu2, sigma**2)`` (two kinds of answer);
- ``nearly-constant``: :class:`NearlyConstant`, ``c + spread * N(0, 1)`` (the collapse case);
- ``bernoulli-beta``: :class:`BernoulliBeta`, per-prompt difficulty: ``p_b ~ Beta(a, b)`` once
  per prompt, then each answer is 1 with probability ``p_b``;
- ``student-t``: :class:`StudentT`, ``loc + scale * T_df`` (symmetric, heavy tails);
- ``lognormal``: :class:`LogNormal`, ``exp(mu + sigma Z)`` (right-skewed, heavy tail).

:data:`DISTRIBUTIONS` maps the names to the classes and :func:`make_distribution` builds one
by name. Every constructor checks its parameters and raises ``ValueError`` naming the bad one.
"""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar, NamedTuple

import torch

from .._checks import (
    check_choice,
    check_device,
    check_dtype,
    check_int,
    check_nonneg_number,
    check_positive,
    check_real,
    check_seed,
    check_unit_interval,
)

__all__ = [
    "ParamSpec",
    "RewardDistribution",
    "Bernoulli",
    "Gaussian",
    "Uniform",
    "Beta",
    "Mixture",
    "NearlyConstant",
    "BernoulliBeta",
    "StudentT",
    "LogNormal",
    "DISTRIBUTIONS",
    "make_distribution",
]


class ParamSpec(NamedTuple):
    """One parameter of a distribution, as a slider: ``(name, default, min, max, step)``.

    ``min``/``max`` are the slider's range, chosen to be useful in an explorer; they lie inside
    the parameter's valid range, which can be wider (``mu`` may be any finite number).
    ``default`` is the dataclass field's default, so ``make_distribution(name)`` uses it.
    """

    name: str
    default: float
    min: float
    max: float
    step: float


def _param(default: float, lo: float, hi: float, step: float):
    """A dataclass field with a default and its slider range (read back by ``params()``)."""
    return dataclasses.field(default=default, metadata={"slider": (lo, hi, step)})


def _fmt(x: float) -> str:
    """Two decimals for ordinary values, two significant digits for tiny or huge ones."""
    return f"{x:.2f}" if x == 0 or 0.01 <= abs(x) < 1e4 else f"{x:.2g}"


# ------------------------------------------------------------------------------------ the base


class RewardDistribution:
    """Base of the reward distributions: validation, ``sample``, ``label`` and ``params``.

    A subclass is a frozen dataclass whose fields are its parameters, declared with slider
    ranges; it implements ``_check`` (validate and normalise the fields), ``_draw`` (sample with
    a given generator) and the ``mean`` and ``std`` properties.
    """

    #: The short name under which :data:`DISTRIBUTIONS` lists the class.
    name: ClassVar[str] = ""

    def __post_init__(self) -> None:
        for key, value in self._check().items():
            object.__setattr__(self, key, value)

    def _check(self) -> dict[str, float]:  # pragma: no cover - every subclass overrides it
        raise NotImplementedError

    def _draw(self, shape: tuple[int, int], gen: torch.Generator, dtype: torch.dtype, device: torch.device) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    @property
    def mean(self) -> float:  # pragma: no cover
        """Exact population mean of one reward."""
        raise NotImplementedError

    @property
    def std(self) -> float:  # pragma: no cover
        """Exact population standard deviation of one reward."""
        raise NotImplementedError

    @classmethod
    def params(cls) -> list[ParamSpec]:
        """The parameters in field order, as ``ParamSpec(name, default, min, max, step)`` rows."""
        return [
            ParamSpec(f.name, f.default, *f.metadata["slider"]) for f in dataclasses.fields(cls)
        ]

    @property
    def label(self) -> str:
        """A short readable name with the parameter values, e.g. ``"Bernoulli(p=0.30)"``."""
        args = ", ".join(f"{f.name}={_fmt(getattr(self, f.name))}" for f in dataclasses.fields(self))
        return f"{type(self).__name__}({args})"

    def sample(self, B: int, G: int, *, seed: int = 0, device=None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Draw the rewards of G answers to each of B prompts.

        Args:
            B: number of prompts (rows); an int >= 1.
            G: answers per prompt (columns); an int >= 1 (the advantage code asks for G >= 2).
            seed: seeds a fresh local ``torch.Generator``; an int in ``[0, 2**64)``. The same
                distribution, B, G, seed, device type and dtype give the same tensor; the
                global RNG is neither used nor advanced.
            device: where to sample (``None`` = CPU). CPU and CUDA generators differ, so the
                same seed gives different numbers on different devices.
            dtype: a floating dtype. float64 samples in float64; every other dtype samples in
                float32 and rounds, so a ``spread`` below the dtype's resolution at ``c``
                vanishes (as it would in a trainer that stores rewards in that dtype).

        Returns:
            A ``[B, G]`` tensor of ``dtype`` on ``device``; i.i.d. entries, except that
            :class:`BernoulliBeta` shares one success probability along each row.
        """
        B = check_int(B, "B", 1, " (the number of prompts)")
        G = check_int(G, "G", 1, " (the number of answers per prompt)")
        seed = check_seed(seed)
        dev = check_device(device)
        dtype = check_dtype(dtype)
        work = torch.float64 if dtype == torch.float64 else torch.float32
        gen = torch.Generator(device=dev)
        gen.manual_seed(seed)
        return self._draw((B, G), gen, work, dev).to(dtype)


def _rand(shape, gen, dtype, device) -> torch.Tensor:
    return torch.rand(shape, generator=gen, dtype=dtype, device=device)


def _randn(shape, gen, dtype, device) -> torch.Tensor:
    return torch.randn(shape, generator=gen, dtype=dtype, device=device)


def _gamma_proposals(d, c, log_d, shape, gen):
    """One Marsaglia-Tsang proposal per entry: ``(log(d v), accepted)``; ``d``, ``c`` broadcast."""
    x = _randn(shape, gen, d.dtype, d.device)
    log_u = torch.log(_rand(shape, gen, d.dtype, d.device))
    v = (1.0 + c * x) ** 3
    log_v = torch.log(v.clamp_min(torch.finfo(d.dtype).tiny))
    ok = (v > 0) & (log_u < 0.5 * x * x + d * (1.0 - v + log_v))
    return log_d + log_v, ok


def _log_gamma(alphas: tuple[float, ...], n: int, gen, dtype, device) -> torch.Tensor:
    """``[len(alphas), n]`` independent draws of ``log X``, ``X ~ Gamma(alphas[k], 1)`` in row k.

    Marsaglia and Tsang's method (ACM TOMS 26(3), 2000): for shape ``k >= 1``, with
    ``d = k - 1/3`` and ``c = 1 / sqrt(9 d)``, propose ``v = (1 + c x)**3`` from ``x ~ N(0, 1)``
    and accept it if ``v > 0`` and ``log u < x**2 / 2 + d (1 - v + log v)`` for
    ``u ~ U[0, 1)``; then ``X = d v``. For ``k < 1`` it draws ``Gamma(k + 1)`` and multiplies by
    ``u**(1 / k)`` (added in log space, so ``u**20`` for ``k = 0.05`` cannot underflow to 0).

    A proposal is accepted with probability above 0.95, so after one proposal for every entry
    the few rejected entries get 8 proposals each and keep the first accepted one; the loop
    repeats only if all 8 fail (probability below 1e-10 per entry). It loops over rejection
    rounds, never over entries, and is deterministic given ``gen``.
    """
    ds = [(k + 1.0 if k < 1.0 else k) - 1.0 / 3.0 for k in alphas]
    d, c, log_d = (
        torch.tensor(vals, dtype=dtype, device=device)[:, None]
        for vals in (ds, [1.0 / math.sqrt(9.0 * x) for x in ds], [math.log(x) for x in ds])
    )
    out, ok = _gamma_proposals(d, c, log_d, (len(alphas), n), gen)
    rows, cols = torch.nonzero(~ok).unbind(1)
    tries = 8
    while rows.numel() > 0:
        val, ok = _gamma_proposals(d[rows], c[rows], log_d[rows], (rows.numel(), tries), gen)
        done = ok.any(dim=1)
        first = ok.to(torch.uint8).argmax(dim=1)  # the first accepted proposal of each row
        out[rows[done], cols[done]] = val[done, first[done]]
        rows, cols = rows[~done], cols[~done]
    if min(alphas) < 1.0:
        inv = torch.tensor([1.0 / k if k < 1.0 else 0.0 for k in alphas], dtype=dtype, device=device)[:, None]
        # u in (0, 1], so log u is finite and 0 * log u = 0 for the rows that need no boost
        out += inv * torch.log1p(-_rand(out.shape, gen, dtype, device))
    return out


def _beta(a: float, b: float, shape, gen, dtype, device) -> torch.Tensor:
    """``Beta(a, b)`` draws as ``X / (X + Y)`` for ``X ~ Gamma(a)``, ``Y ~ Gamma(b)``.

    Computed as ``sigmoid(log X - log Y)``, which stays in ``[0, 1]`` and free of ``0 / 0``
    for small ``a`` and ``b``. (``torch.distributions.Beta`` takes no generator, and torch's
    generator-aware Dirichlet kernel is slower on CPU than this.)
    """
    log_x, log_y = _log_gamma((a, b), math.prod(shape), gen, dtype, device)
    return torch.sigmoid(log_x - log_y).view(shape)


# ------------------------------------------------------------------------------ distributions


@dataclasses.dataclass(frozen=True)
class Bernoulli(RewardDistribution):
    """A verifiable reward: 1 (correct) with probability ``p``, else 0.

    ``mean = p``, ``std = sqrt(p (1 - p))``. ``p = 0`` or ``p = 1`` make every group all-equal,
    the case in which group advantages carry no signal.
    """

    name: ClassVar[str] = "bernoulli"
    p: float = _param(0.3, 0.0, 1.0, 0.01)

    def _check(self):
        return {"p": check_unit_interval(self.p, "p")}

    def _draw(self, shape, gen, dtype, device):
        # rand is in [0, 1): p = 0 gives only zeros and p = 1 only ones.
        return (_rand(shape, gen, dtype, device) < self.p).to(dtype)

    @property
    def mean(self) -> float:
        return self.p

    @property
    def std(self) -> float:
        return math.sqrt(self.p * (1.0 - self.p))


@dataclasses.dataclass(frozen=True)
class Gaussian(RewardDistribution):
    """``N(mu, sigma**2)``: a reward-model score. ``sigma = 0`` gives the constant ``mu``."""

    name: ClassVar[str] = "gaussian"
    mu: float = _param(0.0, -5.0, 5.0, 0.1)
    sigma: float = _param(1.0, 0.0, 5.0, 0.05)

    def _check(self):
        return {"mu": check_real(self.mu, "mu"), "sigma": check_nonneg_number(self.sigma, "sigma", " (a standard deviation)")}

    def _draw(self, shape, gen, dtype, device):
        return self.mu + self.sigma * _randn(shape, gen, dtype, device)

    @property
    def mean(self) -> float:
        return self.mu

    @property
    def std(self) -> float:
        return self.sigma


@dataclasses.dataclass(frozen=True)
class Uniform(RewardDistribution):
    """Uniform on ``[low, high]``: ``mean = (low + high) / 2``, ``std = (high - low) / sqrt(12)``.

    ``low == high`` gives the constant ``low``; ``low > high`` is an error.
    """

    name: ClassVar[str] = "uniform"
    low: float = _param(0.0, -5.0, 5.0, 0.1)
    high: float = _param(1.0, -5.0, 5.0, 0.1)

    def _check(self):
        low, high = check_real(self.low, "low"), check_real(self.high, "high")
        if high < low:
            raise ValueError(f"`high` must be >= `low`; got low={self.low!r}, high={self.high!r}. Swap them.")
        return {"low": low, "high": high}

    def _draw(self, shape, gen, dtype, device):
        u = self.low + (self.high - self.low) * _rand(shape, gen, dtype, device)
        return u.clamp_(self.low, self.high)  # rounding must not step outside [low, high]

    @property
    def mean(self) -> float:
        return 0.5 * (self.low + self.high)

    @property
    def std(self) -> float:
        return (self.high - self.low) / math.sqrt(12.0)


@dataclasses.dataclass(frozen=True)
class Beta(RewardDistribution):
    """``Beta(a, b)`` on ``[0, 1]``: a graded score (partial credit, a judge's probability).

    ``mean = a / (a + b)``, ``std = sqrt(a b / ((a + b)**2 (a + b + 1)))``.
    """

    name: ClassVar[str] = "beta"
    a: float = _param(2.0, 0.1, 10.0, 0.1)
    b: float = _param(5.0, 0.1, 10.0, 0.1)

    def _check(self):
        return {"a": check_positive(self.a, "a", " (a Beta shape parameter)"), "b": check_positive(self.b, "b", " (a Beta shape parameter)")}

    def _draw(self, shape, gen, dtype, device):
        return _beta(self.a, self.b, shape, gen, dtype, device)

    @property
    def mean(self) -> float:
        return self.a / (self.a + self.b)

    @property
    def std(self) -> float:
        s = self.a + self.b
        return math.sqrt(self.a * self.b / (s * s * (s + 1.0)))


@dataclasses.dataclass(frozen=True)
class Mixture(RewardDistribution):
    """Two modes of equal width: with probability ``w`` from ``N(mu1, sigma**2)``, else ``N(mu2, sigma**2)``.

    ``mean = w mu1 + (1 - w) mu2``; ``std**2 = sigma**2 + w (1 - w) (mu1 - mu2)**2`` (the
    within-mode variance plus the variance of the mode's mean). ``sigma = 0`` gives a
    two-valued reward, a Bernoulli scaled to ``{mu2, mu1}``.
    """

    name: ClassVar[str] = "mixture"
    w: float = _param(0.5, 0.0, 1.0, 0.01)
    mu1: float = _param(0.0, -5.0, 5.0, 0.1)
    mu2: float = _param(1.0, -5.0, 5.0, 0.1)
    sigma: float = _param(0.1, 0.0, 2.0, 0.01)

    def _check(self):
        return {
            "w": check_unit_interval(self.w, "w"),
            "mu1": check_real(self.mu1, "mu1"),
            "mu2": check_real(self.mu2, "mu2"),
            "sigma": check_nonneg_number(self.sigma, "sigma", " (a standard deviation)"),
        }

    def _draw(self, shape, gen, dtype, device):
        first = _rand(shape, gen, dtype, device) < self.w
        mu1, mu2 = (torch.tensor(m, dtype=dtype, device=device) for m in (self.mu1, self.mu2))
        centre = torch.where(first, mu1, mu2)
        return centre + self.sigma * _randn(shape, gen, dtype, device)

    @property
    def mean(self) -> float:
        return self.w * self.mu1 + (1.0 - self.w) * self.mu2

    @property
    def std(self) -> float:
        return math.sqrt(self.sigma**2 + self.w * (1.0 - self.w) * (self.mu1 - self.mu2) ** 2)


@dataclasses.dataclass(frozen=True)
class NearlyConstant(RewardDistribution):
    """The collapse case: ``c + spread * N(0, 1)``, so ``mean = c`` and ``std = spread``.

    A group's std is then of order ``spread``: tiny but not zero, which is where the epsilon
    and the guards of group normalisation decide the advantages. ``spread = 0`` gives exactly
    ``c`` everywhere (rounded once to the dtype). Noise much smaller than the dtype's spacing
    at ``c`` (float32: about ``6e-8 * |c|``) is rounded away.
    """

    name: ClassVar[str] = "nearly-constant"
    c: float = _param(0.5, -5.0, 5.0, 0.1)
    spread: float = _param(1e-6, 0.0, 1e-3, 1e-6)

    def _check(self):
        return {"c": check_real(self.c, "c"), "spread": check_nonneg_number(self.spread, "spread", " (a standard deviation)")}

    def _draw(self, shape, gen, dtype, device):
        if self.spread == 0.0:
            return torch.full(shape, self.c, dtype=dtype, device=device)
        return self.c + self.spread * _randn(shape, gen, dtype, device)

    @property
    def mean(self) -> float:
        return self.c

    @property
    def std(self) -> float:
        return self.spread


@dataclasses.dataclass(frozen=True)
class BernoulliBeta(RewardDistribution):
    """Per-prompt difficulty: ``p_b ~ Beta(a, b)`` once per prompt, then ``r[b, i] ~ Bernoulli(p_b)``.

    Answers to one prompt share ``p_b``, so rows are independent but entries within a row are
    not. One reward is marginally ``Bernoulli(m)`` with ``m = a / (a + b)``: ``mean = m``,
    ``std = sqrt(m (1 - m))``. Small ``a`` and ``b`` put most prompts near ``p_b = 0`` or 1
    (too hard or too easy), which makes many groups all-equal at the same mean success rate.
    """

    name: ClassVar[str] = "bernoulli-beta"
    a: float = _param(0.5, 0.05, 10.0, 0.05)
    b: float = _param(0.5, 0.05, 10.0, 0.05)

    def _check(self):
        return {"a": check_positive(self.a, "a", " (a Beta shape parameter)"), "b": check_positive(self.b, "b", " (a Beta shape parameter)")}

    def _draw(self, shape, gen, dtype, device):
        p = _beta(self.a, self.b, (shape[0], 1), gen, dtype, device)
        return (_rand(shape, gen, dtype, device) < p).to(dtype)

    @property
    def mean(self) -> float:
        return self.a / (self.a + self.b)

    @property
    def std(self) -> float:
        m = self.mean
        return math.sqrt(m * (1.0 - m))


# ------------------------------------------------------------------ heavy-tailed rewards


@dataclasses.dataclass(frozen=True)
class StudentT(RewardDistribution):
    """``loc + scale * T`` with ``T`` Student-t with ``df`` degrees of freedom: symmetric, heavy tails.

    ``mean = loc`` (``df > 1``), ``std = scale * sqrt(df / (df - 2))`` (``df > 2``); the excess
    kurtosis ``6 / (df - 4)`` exists for ``df > 4``. Sampled as ``Z / sqrt(V / df)`` with
    ``V = 2 X``, ``X ~ Gamma(df / 2)``, from the generator of :meth:`sample`.
    """

    name: ClassVar[str] = "student-t"
    df: float = _param(10.0, 4.5, 30.0, 0.5)
    loc: float = _param(0.0, -5.0, 5.0, 0.1)
    scale: float = _param(1.0, 0.05, 5.0, 0.05)

    def _check(self):
        df = check_real(self.df, "df")
        if not df > 2.0:
            raise ValueError(f"`df` must be > 2 so that the reward has a finite std; got {self.df!r}.")
        return {"df": df, "loc": check_real(self.loc, "loc"), "scale": check_positive(self.scale, "scale")}

    def _draw(self, shape, gen, dtype, device):
        z = _randn(shape, gen, dtype, device)
        log_x = _log_gamma((0.5 * self.df,), math.prod(shape), gen, dtype, device).view(shape)
        # T = Z / sqrt(2 X / df)
        return self.loc + self.scale * z * torch.exp(-0.5 * (log_x + math.log(2.0 / self.df)))

    @property
    def mean(self) -> float:
        return self.loc

    @property
    def std(self) -> float:
        return self.scale * math.sqrt(self.df / (self.df - 2.0))


@dataclasses.dataclass(frozen=True)
class LogNormal(RewardDistribution):
    """``exp(mu + sigma Z)``: a right-skewed, heavy-tailed positive reward (every moment finite).

    ``mean = exp(mu + sigma**2 / 2)``, ``std = mean * sqrt(exp(sigma**2) - 1)``; the excess
    kurtosis is ``exp(4 s2) + 2 exp(3 s2) + 3 exp(2 s2) - 6`` with ``s2 = sigma**2``.
    """

    name: ClassVar[str] = "lognormal"
    mu: float = _param(0.0, -3.0, 3.0, 0.1)
    sigma: float = _param(0.5, 0.05, 1.5, 0.05)

    def _check(self):
        return {"mu": check_real(self.mu, "mu"), "sigma": check_positive(self.sigma, "sigma")}

    def _draw(self, shape, gen, dtype, device):
        return torch.exp(self.mu + self.sigma * _randn(shape, gen, dtype, device))

    @property
    def mean(self) -> float:
        return math.exp(self.mu + 0.5 * self.sigma**2)

    @property
    def std(self) -> float:
        return self.mean * math.sqrt(math.expm1(self.sigma**2))


#: Short name -> distribution class; ``DISTRIBUTIONS[name](**params)`` builds one.
DISTRIBUTIONS: dict[str, type[RewardDistribution]] = {
    cls.name: cls for cls in (Bernoulli, Gaussian, Uniform, Beta, Mixture, NearlyConstant, BernoulliBeta, StudentT, LogNormal)
}


def make_distribution(name: str, **params) -> RewardDistribution:
    """Build the distribution registered as ``name`` (see :data:`DISTRIBUTIONS`).

    Args:
        name: one of ``"bernoulli"``, ``"gaussian"``, ``"uniform"``, ``"beta"``, ``"mixture"``,
            ``"nearly-constant"``, ``"bernoulli-beta"``.
        **params: that distribution's parameters (see its ``params()``); those left out take
            their defaults.

    Raises:
        ValueError: an unknown ``name``, a parameter the distribution does not have, or a
            parameter value outside its valid range (the message names the parameter).
    """
    if not isinstance(name, str):
        raise ValueError(f"`name` must be a string, one of {sorted(DISTRIBUTIONS)}; got {name!r}.")
    check_choice(name, "name", DISTRIBUTIONS)
    cls = DISTRIBUTIONS[name]
    known = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise ValueError(
            f"`{unknown[0]}` is not a parameter of {name!r}; its parameters are {', '.join(known)}."
        )
    return cls(**params)
