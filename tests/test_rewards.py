"""Claims about the reward distributions the explorers and chapters sample from (grpo_core.analysis.rewards)."""

import dataclasses
import math
import time

import pytest
import torch

from grpo_core.analysis.rewards import (DISTRIBUTIONS, Bernoulli, BernoulliBeta, Beta, Gaussian, Mixture, NearlyConstant, ParamSpec, Uniform, make_distribution)

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
NAMES = sorted(DISTRIBUTIONS)

# Two or more settings per distribution for the moment checks, including the edge cases the book
# uses: skewed and U-shaped Betas, a mixture with unequal weights, a nearly-constant reward.
MOMENT_CASES = [
    Bernoulli(p=0.3),
    Bernoulli(p=0.02),
    Gaussian(mu=1.5, sigma=0.4),
    Gaussian(mu=-3.0, sigma=2.0),
    Uniform(low=0.0, high=1.0),
    Uniform(low=-2.0, high=5.0),
    Beta(a=2.0, b=5.0),
    Beta(a=0.5, b=0.5),
    Beta(a=0.05, b=0.3),
    Beta(a=10.0, b=3.0),
    Mixture(w=0.5, mu1=0.0, mu2=1.0, sigma=0.1),
    Mixture(w=0.2, mu1=-1.0, mu2=3.0, sigma=0.7),
    NearlyConstant(c=0.5, spread=1e-3),
    NearlyConstant(c=-2.0, spread=0.3),
    BernoulliBeta(a=0.5, b=0.5),
    BernoulliBeta(a=2.0, b=6.0),
]


def _ids(cases):
    return [d.label for d in cases]


# ------------------------------------------------------------------------------- registry and API


def test_registry_names():
    assert set(DISTRIBUTIONS) == {
        "bernoulli", "gaussian", "uniform", "beta", "mixture", "nearly-constant", "bernoulli-beta",
        "student-t", "lognormal",
    }
    for name, cls in DISTRIBUTIONS.items():
        assert cls.name == name


@pytest.mark.parametrize("name", NAMES)
def test_make_distribution_with_defaults_uses_params_defaults(name):
    dist = make_distribution(name)
    assert isinstance(dist, DISTRIBUTIONS[name])
    for spec in DISTRIBUTIONS[name].params():
        assert getattr(dist, spec.name) == spec.default
    r = dist.sample(4, 8)
    assert r.shape == (4, 8) and bool(torch.isfinite(r).all())


@pytest.mark.parametrize("name", NAMES)
def test_params_are_valid_slider_specs(name):
    cls = DISTRIBUTIONS[name]
    specs = cls.params()
    assert [s.name for s in specs] == [f.name for f in dataclasses.fields(cls)]
    for s in specs:
        assert isinstance(s, ParamSpec) and isinstance(s, tuple) and len(s) == 5
        assert all(isinstance(v, float) for v in s[1:]), s  # float sliders, not int sliders
        assert s.min < s.max and s.step > 0, s
        assert s.min <= s.default <= s.max, s
        # the range is a whole number of steps and the default lies on the slider's grid
        n_steps = (s.max - s.min) / s.step
        assert abs(n_steps - round(n_steps)) < 1e-6, s
        k = (s.default - s.min) / s.step
        assert abs(k - round(k)) < 1e-6, s


@pytest.mark.parametrize("name", NAMES)
def test_every_slider_end_is_a_valid_distribution(name):
    defaults = {s.name: s.default for s in DISTRIBUTIONS[name].params()}
    for s in DISTRIBUTIONS[name].params():
        for value in (s.min, s.max):
            kwargs = dict(defaults, **{s.name: value})
            if name == "uniform":  # low <= high is a constraint between two sliders
                kwargs = {"low": value, "high": value}
            r = make_distribution(name, **kwargs).sample(8, 4, seed=1)
            assert bool(torch.isfinite(r).all())


def test_labels():
    assert Bernoulli(p=0.3).label == "Bernoulli(p=0.30)"
    assert Gaussian(mu=0, sigma=1).label == "Gaussian(mu=0.00, sigma=1.00)"
    assert Uniform(-1, 2.5).label == "Uniform(low=-1.00, high=2.50)"
    assert Beta(2, 5).label == "Beta(a=2.00, b=5.00)"
    assert Mixture(0.25, 0, 1, 0.1).label == "Mixture(w=0.25, mu1=0.00, mu2=1.00, sigma=0.10)"
    assert NearlyConstant(0.5, 1e-6).label == "NearlyConstant(c=0.50, spread=1e-06)"
    assert NearlyConstant(0.5, 0.0).label == "NearlyConstant(c=0.50, spread=0.00)"
    assert BernoulliBeta(0.5, 0.5).label == "BernoulliBeta(a=0.50, b=0.50)"


def test_parameters_are_stored_as_floats_and_frozen():
    d = Bernoulli(p=1)
    assert d.p == 1.0 and isinstance(d.p, float)
    with pytest.raises(dataclasses.FrozenInstanceError):
        d.p = 0.5
    assert dataclasses.replace(d, p=0.25) == Bernoulli(0.25)
    with pytest.raises(ValueError, match=r"`p` must be in \[0, 1\]"):
        dataclasses.replace(d, p=2.0)  # replacing re-validates


# ------------------------------------------------------------------------- shape, dtype, device, seed


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("name", NAMES)
def test_shape_dtype_device(name, dtype, device):
    r = make_distribution(name).sample(7, 5, seed=3, device=device, dtype=dtype)
    assert r.shape == (7, 5)
    assert r.dtype == dtype
    assert r.device.type == device
    assert bool(torch.isfinite(r).all())


@pytest.mark.parametrize("name", NAMES)
def test_default_dtype_is_float32_on_cpu(name):
    r = make_distribution(name).sample(1, 1)
    assert r.dtype == torch.float32 and r.device.type == "cpu" and r.shape == (1, 1)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_rewards_different_seed_different(name, device):
    d = make_distribution(name)
    a = d.sample(50, 16, seed=7, device=device)
    b = d.sample(50, 16, seed=7, device=device)
    c = d.sample(50, 16, seed=8, device=device)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_ten_seeds_give_ten_different_samples():
    d = Gaussian()
    samples = [d.sample(4, 4, seed=s) for s in range(10)]
    assert all(not torch.equal(samples[i], samples[j]) for i in range(10) for j in range(i))


@pytest.mark.parametrize("name", NAMES)
def test_global_rng_is_neither_used_nor_advanced(name):
    d = make_distribution(name)
    torch.manual_seed(0)
    state = torch.get_rng_state()
    a = d.sample(20, 8, seed=5)
    assert torch.equal(torch.get_rng_state(), state)
    torch.manual_seed(12345)
    assert torch.equal(d.sample(20, 8, seed=5), a)


# ------------------------------------------------------------------------------------ moments


def _check_moments(x: torch.Tensor, mean: float, std: float, z: float = 5.0):
    """The sample mean and variance agree with the exact ones within ``z`` standard errors."""
    x = x.double().flatten()
    n = x.numel()
    m_hat = x.mean().item()
    dev = x - m_hat
    var_hat = dev.square().mean().item()
    m4_hat = dev.pow(4).mean().item()
    se_mean = math.sqrt(max(var_hat, 1e-300) / n)
    se_var = math.sqrt(max(m4_hat - var_hat**2, 0.0) / n)
    assert abs(m_hat - mean) <= z * se_mean + 1e-12 * max(1.0, abs(mean)), (m_hat, mean, se_mean)
    assert abs(var_hat - std**2) <= z * se_var + 1e-12 * max(1.0, std**2), (var_hat, std**2, se_var)


@pytest.mark.parametrize("dist", MOMENT_CASES, ids=_ids(MOMENT_CASES))
def test_empirical_moments_match_closed_form(dist):
    # G = 1: one reward per prompt, so the 200k draws are independent for every distribution.
    x = dist.sample(200_000, 1, seed=11, dtype=torch.float64)
    _check_moments(x, dist.mean, dist.std)


@pytest.mark.parametrize("dist", [Beta(2.0, 5.0), Mixture(0.3, 0.0, 2.0, 0.5)], ids=str)
def test_float32_sampling_has_the_same_moments(dist):
    x = dist.sample(2_000, 100, seed=4)
    _check_moments(x, dist.mean, dist.std)


def test_closed_form_moments_by_hand():
    assert Bernoulli(0.3).mean == 0.3 and Bernoulli(0.3).std == pytest.approx(math.sqrt(0.21))
    assert Uniform(-1.0, 2.0).mean == 0.5 and Uniform(-1.0, 2.0).std == pytest.approx(3 / math.sqrt(12))
    assert Beta(2.0, 5.0).mean == pytest.approx(2 / 7)
    assert Beta(2.0, 5.0).std == pytest.approx(math.sqrt(10 / (49 * 8)))
    # mixture: variance = within-mode sigma^2 + w (1 - w) (mu1 - mu2)^2 = 0.01 + 0.25
    assert Mixture(0.5, 0.0, 1.0, 0.1).mean == 0.5
    assert Mixture(0.5, 0.0, 1.0, 0.1).std == pytest.approx(math.sqrt(0.26))
    assert Mixture(0.25, 2.0, 0.0, 0.0).mean == 0.5
    assert NearlyConstant(3.0, 1e-6).mean == 3.0 and NearlyConstant(3.0, 1e-6).std == 1e-6
    assert BernoulliBeta(1.0, 3.0).mean == 0.25 and BernoulliBeta(1.0, 3.0).std == pytest.approx(math.sqrt(3) / 4)


# ---------------------------------------------------------------------------- distribution shape


def _phi(x: torch.Tensor) -> torch.Tensor:
    return torch.special.ndtr(x)


def _beta_int_cdf(a: int, b: int):
    """Regularised incomplete beta for integer a, b: P(Binomial(a + b - 1, x) >= a)."""
    n = a + b - 1
    return lambda x: sum(math.comb(n, j) * x**j * (1 - x) ** (n - j) for j in range(a, n + 1))


CDF_CASES = [
    (Gaussian(1.0, 2.0), lambda x: _phi((x - 1.0) / 2.0)),
    (Uniform(-1.0, 3.0), lambda x: ((x + 1.0) / 4.0).clamp(0, 1)),
    (Beta(2.0, 5.0), _beta_int_cdf(2, 5)),  # Marsaglia-Tsang branch (shape >= 1)
    (Beta(0.5, 0.5), lambda x: 2 / math.pi * torch.asin(x.sqrt())),  # arcsine law; shape < 1 branch
    (Beta(0.2, 1.0), lambda x: x.pow(0.2)),  # very skewed: most mass near 0
    (Beta(1.0, 3.0), lambda x: 1 - (1 - x).pow(3)),
    (Mixture(0.3, -1.0, 2.0, 0.5), lambda x: 0.3 * _phi((x + 1.0) / 0.5) + 0.7 * _phi((x - 2.0) / 0.5)),
    (NearlyConstant(0.5, 0.25), lambda x: _phi((x - 0.5) / 0.25)),
]


@pytest.mark.parametrize("dist,cdf", CDF_CASES, ids=_ids([c[0] for c in CDF_CASES]))
def test_kolmogorov_smirnov_against_exact_cdf(dist, cdf):
    n = 100_000
    x = dist.sample(n, 1, seed=2, dtype=torch.float64).flatten().sort().values
    f = cdf(x)
    i = torch.arange(1, n + 1, dtype=torch.float64)
    d = torch.maximum(i / n - f, f - (i - 1) / n).max().item()
    # sqrt(n) D > 2.0 has probability about 6e-4 under the null; a wrong parameter (Beta(2, 5.5)
    # instead of Beta(2, 5)) moves the CDF by about 0.02, i.e. sqrt(n) D around 6.
    assert math.sqrt(n) * d < 2.0, d


@pytest.mark.parametrize("k", [0.3, 1.0, 2.0, 7.5])
def test_gamma_sampler_behind_beta_matches_gamma_law(k):
    # Beta(a, b) is built from Gamma(a) and Gamma(b) draws (Marsaglia-Tsang); check those draws
    # directly, with a million of them: a slightly wrong acceptance test moves the CDF by ~0.005.
    from grpo_core.analysis.rewards import _log_gamma

    n = 1_000_000
    kt = torch.tensor(k, dtype=torch.float64)
    log_x = _log_gamma((k,), n, torch.Generator().manual_seed(0), torch.float64, torch.device("cpu"))[0]
    # E[log X] = digamma(k), Var[log X] = trigamma(k)
    se = math.sqrt(torch.special.polygamma(1, kt).item() / n)
    assert abs(log_x.mean().item() - torch.special.digamma(kt).item()) < 5 * se
    x = log_x.exp().sort().values
    f = torch.special.gammainc(kt, x)
    i = torch.arange(1, n + 1, dtype=torch.float64)
    d = torch.maximum(i / n - f, f - (i - 1) / n).max().item()
    assert math.sqrt(n) * d < 2.0, d


def test_bernoulli_values_are_exactly_zero_or_one():
    r = Bernoulli(0.37).sample(300, 16, seed=1)
    assert bool(((r == 0) | (r == 1)).all())
    assert 0 < r.mean().item() < 1


def test_bernoulli_p0_all_zeros_p1_all_ones():
    assert torch.equal(Bernoulli(0.0).sample(500, 16), torch.zeros(500, 16))
    assert torch.equal(Bernoulli(1.0).sample(500, 16), torch.ones(500, 16))
    assert torch.equal(Bernoulli(1.0).sample(500, 16, dtype=torch.float64), torch.ones(500, 16, dtype=torch.float64))


@pytest.mark.parametrize("a,b", [(2.0, 5.0), (0.05, 0.05), (0.1, 10.0), (10.0, 0.1), (50.0, 50.0)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_beta_stays_in_unit_interval_without_nans(a, b, dtype):
    r = Beta(a, b).sample(1000, 64, seed=5, dtype=dtype)
    assert bool(torch.isfinite(r).all())
    assert r.min().item() >= 0.0 and r.max().item() <= 1.0


def test_uniform_within_bounds_and_degenerate_when_equal():
    r = Uniform(-0.3, 0.7).sample(1000, 64, seed=5)
    assert r.min().item() >= -0.3 - 1e-7 and r.max().item() <= 0.7 + 1e-7
    assert r.min().item() < -0.29 and r.max().item() > 0.69  # and it fills the interval
    assert torch.equal(Uniform(2.0, 2.0).sample(10, 4), torch.full((10, 4), 2.0))


def test_gaussian_sigma_zero_is_constant():
    assert torch.equal(Gaussian(1.25, 0.0).sample(10, 4), torch.full((10, 4), 1.25))


def test_mixture_with_zero_width_takes_two_values_in_proportion_w():
    r = Mixture(w=0.3, mu1=-1.0, mu2=2.0, sigma=0.0).sample(1000, 100, seed=3)
    first = r == -1.0
    assert bool((first | (r == 2.0)).all())
    # 100k Bernoulli(0.3) trials: std of the fraction 0.00145
    assert abs(first.double().mean().item() - 0.3) < 0.0075


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_nearly_constant_spread_zero_is_exactly_constant(dtype):
    r = NearlyConstant(c=0.1, spread=0.0).sample(100, 16, seed=9, dtype=dtype)
    assert torch.equal(r, torch.full((100, 16), 0.1, dtype=dtype))
    assert bool((r.std(dim=1) == 0).all())


def test_nearly_constant_small_spread_gives_group_std_about_spread():
    spread = 1e-6
    r = NearlyConstant(c=0.5, spread=spread).sample(1000, 16, seed=9)  # float32, as a trainer holds them
    group_std = r.double().std(dim=1)
    assert bool((group_std > 0).all())  # tiny, but every group has some spread
    # every group's std is of order `spread`, and over 1000 groups the pooled std is `spread`
    assert group_std.max().item() < 3 * spread
    pooled = (r.double() - 0.5).square().mean().sqrt().item()
    # 16000 draws: the sample std is within 0.6% (one standard error) of `spread`; float32
    # rounding at 0.5 (spacing 6e-8) adds a rounding error of std 1.7e-8, 0.015% of the variance
    assert pooled == pytest.approx(spread, rel=0.03)


def test_nearly_constant_noise_below_dtype_resolution_rounds_away():
    # float32 spacing at 100 is 7.6e-6; noise of 1e-7 cannot move the value, so groups are all-equal
    r = NearlyConstant(c=100.0, spread=1e-7).sample(50, 8, seed=1)
    assert torch.equal(r, torch.full((50, 8), 100.0))
    r64 = NearlyConstant(c=100.0, spread=1e-7).sample(50, 8, seed=1, dtype=torch.float64)
    assert bool((r64.std(dim=1) > 0).all())


def test_bernoulli_beta_shares_difficulty_within_a_prompt():
    a, b = 0.5, 0.5
    dist = BernoulliBeta(a, b)
    r = dist.sample(100_000, 2, seed=3, dtype=torch.float64)
    assert bool(((r == 0) | (r == 1)).all())
    # two answers to one prompt: Cov(r1, r2) = Var(p) = a b / ((a + b)^2 (a + b + 1)) = 1/8
    var_p = Beta(a, b).std ** 2
    cov = ((r[:, 0] - dist.mean) * (r[:, 1] - dist.mean)).mean().item()
    assert cov == pytest.approx(var_p, abs=5 * 0.25 / math.sqrt(100_000))
    # so all-equal groups are far more common than for i.i.d. Bernoulli(1/2) (where P = 1/2):
    # P(r1 == r2) = E[p^2 + (1 - p)^2] = 1 - 2 E[p(1 - p)] = 1 - 2 (1/4 - 1/8) = 3/4
    equal = (r[:, 0] == r[:, 1]).double().mean().item()
    assert equal == pytest.approx(0.75, abs=0.007)
    # while prompts are independent: neighbouring rows are uncorrelated
    cov_rows = ((r[1:, 0] - 0.5) * (r[:-1, 0] - 0.5)).mean().item()
    assert abs(cov_rows) < 5 * 0.25 / math.sqrt(100_000)


# ------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "name,params,pattern",
    [
        ("bernoulli", {"p": 1.5}, r"`p` must be in \[0, 1\] \(a probability\); got 1.5"),
        ("bernoulli", {"p": -0.1}, r"`p` must be in \[0, 1\]"),
        ("bernoulli", {"p": float("nan")}, r"`p` must be a finite number \(a probability\); got nan"),
        ("bernoulli", {"p": "0.3"}, r"`p` must be a real number \(a probability\); got '0.3'"),
        ("bernoulli", {"p": True}, r"`p` must be a real number \(a probability\); got True"),
        ("gaussian", {"sigma": -1.0}, r"`sigma` must be a finite number >= 0 \(a standard deviation\)"),
        ("gaussian", {"mu": float("inf")}, r"`mu` must be a finite number"),
        ("uniform", {"low": 1.0, "high": 0.0}, r"`high` must be >= `low`; got low=1.0, high=0.0"),
        ("uniform", {"low": float("-inf")}, r"`low` must be a finite number"),
        ("beta", {"a": 0.0}, r"`a` must be > 0"),
        ("beta", {"b": -2.0}, r"`b` must be > 0"),
        ("mixture", {"w": 1.2}, r"`w` must be in \[0, 1\]"),
        ("mixture", {"mu2": float("nan")}, r"`mu2` must be a finite number"),
        ("mixture", {"sigma": -0.1}, r"`sigma` must be a finite number >= 0"),
        ("nearly-constant", {"spread": -1e-6}, r"`spread` must be a finite number >= 0"),
        ("nearly-constant", {"c": None}, r"`c` must be a real number"),
        ("bernoulli-beta", {"a": -1.0}, r"`a` must be > 0"),
        ("bernoulli-beta", {"b": 0}, r"`b` must be > 0"),
        ("gaussian", {"std": 1.0}, r"`std` is not a parameter of 'gaussian'; its parameters are mu, sigma"),
        ("normal", {}, r"`name`='normal' is not known; choose one of \['bernoulli', 'bernoulli-beta', 'beta'"),
        (3, {}, r"`name` must be a string"),
    ],
)
def test_bad_parameters_name_the_parameter(name, params, pattern):
    with pytest.raises(ValueError, match=pattern):
        make_distribution(name, **params)


def test_direct_construction_validates_too():
    with pytest.raises(ValueError, match=r"`p` must be in \[0, 1\]"):
        Bernoulli(p=2.0)
    with pytest.raises(ValueError, match=r"`a` must be > 0"):
        Beta(a=0.0, b=1.0)


@pytest.mark.parametrize(
    "args,kwargs,pattern",
    [
        ((0, 4), {}, r"`B` must be an int >= 1 \(the number of prompts\)"),
        ((2.0, 4), {}, r"`B` must be an int"),
        ((True, 4), {}, r"`B` must be an int"),
        ((2, 0), {}, r"`G` must be an int >= 1 \(the number of answers per prompt\)"),
        ((2, "4"), {}, r"`G` must be an int"),
        ((2, 4), {"seed": -1}, r"`seed` must be in \[0, 2\*\*64\)"),
        ((2, 4), {"seed": 1.5}, r"`seed` must be an int"),
        ((2, 4), {"seed": None}, r"`seed` must be an int"),
        ((2, 4), {"dtype": torch.int64}, r"`dtype` must be a floating torch dtype"),
        ((2, 4), {"dtype": "float32"}, r"`dtype` must be a floating torch dtype"),
        ((2, 4), {"device": "gpu0"}, r"`device` must be None, a torch.device or a string"),
    ],
)
def test_bad_sample_arguments(args, kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        Gaussian().sample(*args, **kwargs)


def test_group_of_one_is_allowed():
    assert Bernoulli(0.5).sample(3, 1).shape == (3, 1)


# ------------------------------------------------------------------------------------------ speed


@pytest.mark.parametrize("name", NAMES)
def test_sampling_1000_by_16_is_fast(name):
    # One intra-op thread: on a small shared machine, an elementwise op that torch splits across
    # two OpenMP threads sometimes waits a whole scheduler slice (~8 ms) for the second thread,
    # which would time the machine, not the sampler.
    dist = make_distribution(name)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        dist.sample(1000, 16)  # warm-up
        best = math.inf
        for seed in range(10):
            t0 = time.perf_counter()
            dist.sample(1000, 16, seed=seed)
            best = min(best, time.perf_counter() - t0)
    finally:
        torch.set_num_threads(threads)
    assert best < 5e-3, f"{dist.label}: {best * 1e3:.2f} ms"
