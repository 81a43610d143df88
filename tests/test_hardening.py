"""A table of hand-picked hostile calls across grpo_core's public API (issue 18).

Each case is a call and what the right outcome is: either a ``ValueError`` or ``TypeError`` whose
message names the argument in backticks (``raises("max_len")``), or a result that a predicate
accepts (``ok(pred)``: the loss unchanged by what sits at a masked position, a gradient that is 0
where the clip is active, ...). :func:`outcome` sorts a call into four kinds::

    right                  the expected error, or a result the predicate accepts
    silently wrong         a result where an error was due, or a result the predicate rejects
    no argument named      an exception whose message does not name the expected argument
    valid input refused    an error (naming something) where a result was due

``tools/count_hostile.py`` runs the same table against another checkout (the counts before and
after the hardening); this test asks for "right" everywhere. Cases only use the public API, so
that they run on older versions too.
"""

from __future__ import annotations

import math
import re
from typing import Any, Callable, NamedTuple

import pytest
import torch

import grpo_core

NAN, INF = float("nan"), float("inf")


class Case(NamedTuple):
    id: str
    call: Callable[[Any], Any]  # g (the grpo_core module) -> result
    expect: tuple  # ("raises", names) or ("ok", predicate(result) -> bool)


def raises(*names):
    return ("raises", names)


def ok(pred=None):
    return ("ok", pred or (lambda r: True))


def outcome(case: Case, g) -> tuple[str, str]:
    """``(kind, detail)`` of one case against the module ``g``."""
    kind, arg = case.expect
    try:
        result = case.call(g)
    except (ValueError, TypeError) as err:
        msg = str(err)
        if kind == "raises":
            if any(f"`{n}`" in msg for n in arg):
                return "right", ""
            return "no argument named", f"{type(err).__name__}: {msg[:120]}"
        if re.search(r"`\w+`", msg):
            return "valid input refused", f"{type(err).__name__}: {msg[:120]}"
        return "no argument named", f"{type(err).__name__}: {msg[:120]}"
    except Exception as err:  # noqa: BLE001 - any other exception is one that names no argument
        return "no argument named", f"{type(err).__name__}: {str(err)[:120]}"
    if kind == "raises":
        return "silently wrong", f"returned {_short(result)}"
    try:
        good = bool(arg(result))
    except Exception as err:  # noqa: BLE001
        good, result = False, f"predicate failed: {err}"
    return ("right", "") if good else ("silently wrong", f"returned {_short(result)}")


def _short(x) -> str:
    s = repr(x)
    return s if len(s) < 120 else s[:117] + "..."


# ------------------------------------------------------------------------------ helpers


def _batch(dtype=torch.float32):
    lp = torch.tensor([[-0.5, -1.0, -2.0], [-0.3, -0.7, -1.1]], dtype=dtype)
    old = torch.tensor([[-0.6, -0.9, -2.0], [-0.2, -0.8, -1.0]], dtype=dtype)
    ref = torch.tensor([[-0.4, -1.2, -1.9], [-0.3, -0.6, -1.3]], dtype=dtype)
    adv = torch.tensor([1.0, -1.0], dtype=dtype)
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]], dtype=dtype)
    return lp, old, ref, adv, mask


def _loss_grad(g, lp, old, ref, adv, mask, **kw):
    x = lp.detach().clone().requires_grad_(True)
    loss, _ = g.grpo_loss(x, old, ref, adv, mask, **kw)
    loss.backward()
    return loss.detach(), x.grad


def _poison(t, value, where=(0, 2)):
    t = t.clone()
    t[where] = value
    return t


def _masked_same(g, arg, value, **kw):
    """grpo_loss with ``value`` written at the masked position (0, 2) of ``arg``: same loss and gradient."""
    lp, old, ref, adv, mask = _batch()
    kw.setdefault("beta", 0.1)
    args = dict(lp=lp, old=old, ref=ref, adv=adv, mask=mask)
    extra = {}
    if arg in ("rollout_logp", "entropy"):
        extra[arg] = old + 0.05 if arg == "rollout_logp" else lp.abs()
    if arg == "adv":
        args["adv"] = adv[:, None].expand(2, 3).clone()
    clean = _loss_grad(g, **args, **extra, **kw)
    if arg in extra:
        extra[arg] = _poison(extra[arg], value)
    else:
        args[arg] = _poison(args[arg], value)
    dirty = _loss_grad(g, **args, **extra, **kw)
    return torch.equal(clean[0], dirty[0]) and torch.equal(clean[1], dirty[1])


def _gap(g, gap, a, dtype=torch.float32, **kw):
    """One token, log-ratio ``gap``, advantage ``a``: ``(loss, grad)``."""
    x = torch.zeros(1, 1, dtype=dtype, requires_grad=True)
    loss, _ = g.grpo_loss(x, torch.full((1, 1), -gap, dtype=dtype), None, torch.tensor([a], dtype=dtype),
                          torch.ones(1, 1, dtype=dtype), beta=0.0, **kw)
    loss.backward()
    return float(loss.detach()), float(x.grad)


def _finite_zero_grad(r):
    loss, grad = r
    return math.isfinite(loss) and grad == 0.0


def _finite(r):
    if isinstance(r, tuple):
        return all(_finite(x) for x in r)
    if isinstance(r, dict):
        return all(_finite(v) for v in r.values())
    if isinstance(r, torch.Tensor):
        return bool(torch.isfinite(r).all())
    if isinstance(r, float):
        return math.isfinite(r)
    return True


def _loss(g, *args, **kw):
    lp, old, ref, adv, mask = _batch()
    named = dict(logp=lp, old_logp=old, ref_logp=ref, advantages=adv, mask=mask)
    for key in list(kw):
        if key in named:
            named[key] = kw.pop(key)
    return g.grpo_loss(named["logp"], named["old_logp"], named["ref_logp"], named["advantages"], named["mask"], **kw)


def _agg(g, values=None, mask=None, *args, **kw):
    v = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]) if values is None else values
    m = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]]) if mask is None else mask
    return g.aggregate(v, m, *args, **kw)


# ------------------------------------------------------------------------------ the table

CASES: list[Case] = []


def case(id, call, expect):
    CASES.append(Case(id, call, expect))


# --- grpo_loss: masked positions never matter (every tensor, NaN / +-inf / huge)
for arg in ("lp", "old", "ref", "adv", "rollout_logp", "entropy"):
    for value in (NAN, INF, -INF, -1e4, 1e4):
        case(f"grpo_loss masked {arg}={value}", lambda g, a=arg, v=value: _masked_same(g, a, v), ok(lambda r: r is True))
for value in (NAN, -INF, -1e4):
    case(f"grpo_loss masked old={value} verl-vanilla", lambda g, v=value: _masked_same(g, "old", v, loss="clip", dual_clip=3.0,
                                                                                      log_ratio_clamp=20.0), ok(lambda r: r is True))
    for kind in ("cispo", "sapo", "gmpo", "gspo"):
        case(f"grpo_loss masked old={value} loss={kind}", lambda g, v=value, k=kind: _masked_same(g, "old", v, loss=k),
             ok(lambda r: r is True))
    case(f"grpo_loss masked old={value} sequence", lambda g, v=value: _masked_same(g, "old", v, ratio_level="sequence"),
         ok(lambda r: r is True))
    case(f"grpo_loss masked ref={value} kl_bias", lambda g, v=value: _masked_same(g, "ref", v, kl_bias_correction=True),
         ok(lambda r: r is True))
case("issue example: padding -200", lambda g: float(g.grpo_loss(torch.tensor([[0.0, -1.0]]), torch.tensor([[0.0, -200.0]]), None,
                                                                torch.tensor([-1.0]), torch.tensor([[1.0, 0.0]]), beta=0)[0]),
     ok(lambda r: r == 1.0))

# --- grpo_loss: non-finite at a real position names the tensor
for key in ("logp", "old_logp", "ref_logp", "advantages"):
    for value in (NAN, INF, -INF):
        def _bad(g, k=key, v=value):
            lp, old, ref, adv, mask = _batch()
            t = dict(logp=lp, old_logp=old, ref_logp=ref, advantages=adv)[k].clone()
            t.view(-1)[0] = v
            return _loss(g, **{k: t})
        case(f"grpo_loss real {key}={value}", _bad, raises(key))
for key, value in (("rollout_logp", NAN), ("entropy", INF)):
    case(f"grpo_loss real {key}={value}", lambda g, k=key, v=value: _loss(g, **{k: _poison(_batch()[0], v, (0, 0))}), raises(key))

# --- off-policy ratios: gradient 0 where the clip is active, for any finite gap, in every float dtype
for dtype, gaps in ((torch.float32, (89.0, 100.0, 1e4, 3e38)), (torch.float16, (12.0, 20.0, 6e4)),
                    (torch.bfloat16, (89.0, 1e4)), (torch.float64, (710.0, 1e300))):
    for gap in gaps:
        case(f"clip active A>0 gap={gap:g} {dtype}", lambda g, d=dtype, x=gap: _gap(g, x, 1.0, d), ok(_finite_zero_grad))
        case(f"clip active A<0 gap=-{gap:g} {dtype}", lambda g, d=dtype, x=gap: _gap(g, -x, -1.0, d), ok(_finite_zero_grad))
        case(f"A=0 gap={gap:g} {dtype}", lambda g, d=dtype, x=gap: _gap(g, x, 0.0, d), ok(_finite_zero_grad))
        case(f"dual clip A<0 gap={gap:g} {dtype}", lambda g, d=dtype, x=gap: _gap(g, x, -1.0, d, dual_clip=3.0),
             ok(_finite_zero_grad))
        case(f"delta A<0 gap={gap:g} {dtype}", lambda g, d=dtype, x=gap: _gap(g, x, -1.0, d, delta=2.0), ok(_finite_zero_grad))
        case(f"A<0 no cap gap={gap:g} {dtype} overflows", lambda g, d=dtype, x=gap: _gap(g, x, -1.0, d), raises("logp"))
        case(f"sapo gap={gap:g} {dtype}", lambda g, d=dtype, x=gap: _gap(g, x, 1.0, d, loss="sapo"), ok(_finite_zero_grad))
        case(f"gspo A>0 gap={gap:g} {dtype}", lambda g, d=dtype, x=gap: _gap(g, x, 1.0, d, loss="gspo"), ok(_finite_zero_grad))
        case(f"gmpo A>0 gap={gap:g} {dtype}", lambda g, d=dtype, x=gap: _gap(g, x, 1.0, d, loss="gmpo"), ok(_finite_zero_grad))
        case(f"cispo gap={gap:g} {dtype}", lambda g, d=dtype, x=gap: _gap(g, x, 1.0, d, loss="cispo"),
             ok(lambda r: _finite(r)))
case("sequence-level clip gap=100", lambda g: _gap(g, 100.0, 1.0, ratio_level="sequence"), ok(_finite_zero_grad))
case("preset verl-vanilla gap=1e4 A<0", lambda g: (lambda x: (x, g.preset_loss(
    "verl-vanilla", x, torch.full((1, 1), -1e4), None, torch.tensor([-1.0]), torch.ones(1, 1))[0].backward(), float(x.grad))[2])(
    torch.zeros(1, 1, requires_grad=True)), ok(lambda r: r == 0.0))
case("preset trl-grpo gap=100 A>0", lambda g: (lambda x: (x, g.preset_loss(
    "trl-grpo", x, torch.full((1, 1), -100.0), None, torch.tensor([1.0]), torch.ones(1, 1))[0].backward(), float(x.grad))[2])(
    torch.zeros(1, 1, requires_grad=True)), ok(lambda r: r == 0.0))
case("clipped_surrogate gap=100 A>0", lambda g: (lambda x: (g.clipped_surrogate(x, torch.tensor([-100.0]), torch.tensor([1.0]))
                                                             .sum().backward(), float(x.grad))[1])(torch.zeros(1, requires_grad=True)),
     ok(lambda r: r == 0.0))
case("clipped_surrogate gap=100 A<0", lambda g: g.clipped_surrogate(torch.zeros(1), torch.tensor([-100.0]), torch.tensor([-1.0])),
     raises("logp"))
for a in (1e38, -1e38):
    case(f"advantage {a:g} at a ratio of 1.2 (finite)", lambda g, a=a: _gap(g, math.log(1.2) + 0.01, a), ok(_finite))
for a in (3e38, -3e38):
    case(f"advantage {a:g} at a ratio of 1.2 overflows", lambda g, a=a: _gap(g, math.log(1.2) + 0.01, a), raises("advantages"))
case("advantage 3e38 on two tokens: the sum overflows", lambda g: _loss(g, advantages=torch.tensor([3e38, 3e38]),
                                                                       agg="seq-mean-token-sum", beta=0.0), raises("advantages"))
case("ref_logp gap 100 with beta", lambda g: _loss(g, ref_logp=_batch()[0] + 100.0, beta=0.1), raises("ref_logp"))
case("ref_logp gap 100 verl clamp", lambda g: _loss(g, ref_logp=_batch()[0] + 100.0, beta=0.1, kl_clamp="verl"),
     ok(_finite))

# --- grpo_loss: types, shapes, empty batches, strings
lp0, old0, ref0, adv0, mask0 = _batch()
for key in ("logp", "old_logp", "advantages", "mask"):
    case(f"grpo_loss {key}=None", lambda g, k=key: _loss(g, **{k: None}), raises(key))
    case(f"grpo_loss {key}='abc'", lambda g, k=key: _loss(g, **{k: "abc"}), raises(key))
case("grpo_loss ref_logp=None with beta", lambda g: _loss(g, ref_logp=None, beta=0.1), raises("ref_logp"))
case("grpo_loss old_logp wrong shape", lambda g: _loss(g, old_logp=torch.zeros(2, 4)), raises("old_logp"))
case("grpo_loss ref_logp wrong shape", lambda g: _loss(g, ref_logp=torch.zeros(3, 3)), raises("ref_logp"))
case("grpo_loss advantages wrong shape", lambda g: _loss(g, advantages=torch.zeros(3)), raises("advantages"))
case("grpo_loss mask wrong shape", lambda g: _loss(g, mask=torch.ones(2, 2)), raises("mask"))
case("grpo_loss mask of 2s", lambda g: _loss(g, mask=mask0 * 2), raises("mask"))
case("grpo_loss mask NaN", lambda g: _loss(g, mask=_poison(mask0, NAN)), raises("mask"))
case("grpo_loss logp 1-D", lambda g: _loss(g, logp=torch.zeros(3), old_logp=torch.zeros(3), ref_logp=torch.zeros(3),
                                           mask=torch.ones(3), advantages=torch.zeros(3)), raises("logp"))
case("grpo_loss logp 3-D", lambda g: _loss(g, logp=torch.zeros(2, 3, 1), old_logp=torch.zeros(2, 3, 1),
                                           ref_logp=torch.zeros(2, 3, 1)), raises("logp"))
case("grpo_loss complex logp", lambda g: _loss(g, logp=lp0.to(torch.complex64)), raises("logp"))
case("grpo_loss B=0", lambda g: g.grpo_loss(torch.zeros(0, 3), torch.zeros(0, 3), None, torch.zeros(0), torch.zeros(0, 3), beta=0.0),
     raises("logp", "mask", "advantages"))
case("grpo_loss T=0 sum-norm", lambda g: g.grpo_loss(torch.zeros(2, 0), torch.zeros(2, 0), None, torch.zeros(2), torch.zeros(2, 0),
                                                     beta=0.0, agg="seq-mean-token-sum-norm"), raises("max_len"))
case("grpo_loss T=0 token-mean is 0", lambda g: float(g.grpo_loss(torch.zeros(2, 0), torch.zeros(2, 0), None, torch.zeros(2),
                                                                  torch.zeros(2, 0), beta=0.0, agg="token-mean")[0]),
     ok(lambda r: r == 0.0))
case("grpo_loss max_len below the answers", lambda g: _loss(g, agg="seq-mean-token-sum-norm", max_len=1), raises("max_len"))
case("grpo_loss max_len=2.5", lambda g: _loss(g, agg="seq-mean-token-sum-norm", max_len=2.5), raises("max_len"))
case("grpo_loss max_len='512'", lambda g: _loss(g, agg="seq-mean-token-sum-norm", max_len="512"), raises("max_len"))
for key, good in (("loss", "clip"), ("agg", "token-mean"), ("kl", "k3"), ("ratio_level", "token"), ("kl_clamp", "verl"),
                  ("kl_agg", "token-mean"), ("framework_metrics", "trl")):
    case(f"grpo_loss {key}=[{good!r}]", lambda g, k=key, v=good: _loss(g, **{k: [v]}), raises(key))
    case(f"grpo_loss {key}='nope'", lambda g, k=key: _loss(g, **{k: "nope"}), raises(key))
    case(f"grpo_loss {key}={good.upper()!r}", lambda g, k=key, v=good: _loss(g, **{k: v.upper()}), raises(key))
for key, values in (("eps_low", (-0.1, NAN, INF, 1.5, "0.2", None, [0.2])), ("eps_high", (-0.1, NAN, INF, "0.2", [0.2])),
                    ("beta", (-1.0, NAN, INF, True, "0.1", None)), ("delta", (0.5, 1.0, NAN, "2")),
                    ("dual_clip", (1.0, 0.5, NAN, INF)), ("num_processes", (0, -1, 1.5, True, None)),
                    ("grad_accum_steps", (0, 2.0, None)), ("num_items_in_batch", (0, 1, -3, 2.5)),
                    ("num_sequences", (0, 1, 1.5)), ("log_ratio_clamp", (0.0, -1.0, NAN, (5.0, 1.0), "20", (1, 2, 3))),
                    ("top_entropy_quantile", (0.0, 1.5, NAN)), ("kl_bias_correction", (1, "yes", None)),
                    ("tensor_metrics", (1, "no")), ("sapo_tau_pos", (0.0, -1.0)), ("is_max", (-1.0, NAN))):
    for value in values:
        def _kw(g, k=key, v=value):
            kw = {k: v}
            if k in ("num_sequences",):
                kw["agg"] = "seq-mean-token-mean"
            if k == "num_items_in_batch":
                kw["agg"] = "token-mean"
            if k == "top_entropy_quantile":
                kw["entropy"] = lp0.abs()
            if k == "sapo_tau_pos":
                kw["loss"] = "sapo"
            if k == "is_max":
                kw["rollout_logp"] = old0
            return _loss(g, **kw)
        case(f"grpo_loss {key}={value!r}", _kw, raises(key))
case("grpo_loss float16", lambda g: _loss(g, **dict(zip(("logp", "old_logp", "ref_logp", "advantages", "mask"),
                                                        _batch(torch.float16)))), ok(_finite))
case("grpo_loss bfloat16", lambda g: _loss(g, **dict(zip(("logp", "old_logp", "ref_logp", "advantages", "mask"),
                                                         _batch(torch.bfloat16)))), ok(_finite))
case("grpo_loss lists", lambda g: _loss(g, logp=lp0.tolist(), old_logp=old0.tolist(), ref_logp=ref0.tolist(),
                                        advantages=adv0.tolist(), mask=mask0.tolist()), ok(_finite))
case("grpo_loss bool mask", lambda g: _loss(g, mask=mask0.bool()), ok(_finite))
case("grpo_loss all-padding", lambda g: _loss(g, mask=torch.zeros(2, 3)), ok(lambda r: float(r[0]) == 0.0 and _finite(r[0])))
case("grpo_loss int advantages", lambda g: _loss(g, advantages=torch.tensor([1, -1])), ok(_finite))
case("preset_loss unknown", lambda g: g.preset_loss("trl-ppo", lp0, old0, None, adv0, mask0), raises("preset"))
case("preset_loss name list", lambda g: g.preset_loss(["trl-grpo"], lp0, old0, None, adv0, mask0), raises("preset"))
case("preset_loss override unknown", lambda g: g.preset_loss("trl-grpo", lp0, old0, None, adv0, mask0, epsilon=0.2), raises("epsilon"))
case("preset_loss override fixed", lambda g: g.preset_loss("trl-grpo", lp0, old0, None, adv0, mask0, agg="token-mean"), raises("agg"))
case("preset_loss masked NaN", lambda g: float(g.preset_loss("verl-vanilla", lp0, _poison(old0, NAN), None, adv0, mask0)[0]),
     ok(math.isfinite))
case("preset_settings eps_low=-1", lambda g: g.preset_loss("verl-vanilla", lp0, old0, None, adv0, mask0, eps_low=-1.0), raises("eps_low"))

# --- aggregate, aggregation_weights, clipped_surrogate, clip_active, sequence_log_ratio
v0 = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
for mode in grpo_core.AGGREGATIONS:
    for value in (NAN, INF, -INF):
        case(f"aggregate masked {value} {mode}", lambda g, m=mode, v=value: torch.equal(_agg(g, _poison(v0, v), None, m),
                                                                                      _agg(g, None, None, m)), ok(lambda r: r is True))
        case(f"aggregate real {value} {mode}", lambda g, m=mode, v=value: _agg(g, _poison(v0, v, (0, 0)), None, m), raises("values"))
    case(f"aggregate B=0 {mode}", lambda g, m=mode: g.aggregate(torch.zeros(0, 3), torch.zeros(0, 3), m), raises("values", "mask"))
    case(f"aggregate mode list {mode}", lambda g, m=mode: _agg(g, None, None, [m]), raises("mode"))
case("aggregate masked NaN gradient", lambda g: (lambda v: (g.aggregate(v, torch.tensor([[1.0, 0.0]])).backward(), v.grad)[1])(
    torch.tensor([[1.0, NAN]], requires_grad=True)), ok(lambda r: r.tolist() == [[1.0, 0.0]]))
case("aggregate T=0 sum-norm", lambda g: g.aggregate(torch.zeros(2, 0), torch.zeros(2, 0), "seq-mean-token-sum-norm"), raises("max_len"))
case("aggregate T=0 sum-norm max_len=4", lambda g: float(g.aggregate(torch.zeros(2, 0), torch.zeros(2, 0), "seq-mean-token-sum-norm",
                                                                     max_len=4)), ok(lambda r: r == 0.0))
case("aggregate max_len below the answers", lambda g: _agg(g, None, None, "seq-mean-token-sum-norm", max_len=1), raises("max_len"))
case("aggregate max_len=0", lambda g: _agg(g, None, None, "seq-mean-token-sum-norm", max_len=0), raises("max_len"))
case("aggregate max_len=True", lambda g: _agg(g, None, None, "seq-mean-token-sum-norm", max_len=True), raises("max_len"))
case("aggregate values=None", lambda g: g.aggregate(None, torch.ones(2, 3)), raises("values"))
case("aggregate mask=None", lambda g: g.aggregate(v0, None), raises("mask"))
case("aggregate values 1-D", lambda g: g.aggregate(torch.ones(3), torch.ones(3)), raises("values"))
case("aggregate mode unknown", lambda g: _agg(g, None, None, "mean"), raises("mode"))
case("aggregate sum overflows", lambda g: g.aggregate(torch.full((1, 2), 3e38), torch.ones(1, 2), "seq-mean-token-sum"), raises("values"))
case("aggregate num_items below", lambda g: _agg(g, None, None, "token-mean", num_items_in_batch=1), raises("num_items_in_batch"))
case("aggregate num_sequences below", lambda g: _agg(g, None, None, "seq-mean-token-mean", num_sequences=1), raises("num_sequences"))
case("aggregate num_items float", lambda g: _agg(g, None, None, "token-mean", num_items_in_batch=3.0), raises("num_items_in_batch"))
case("aggregation_weights mask=None", lambda g: g.aggregation_weights(None), raises("mask"))
case("aggregation_weights mode list", lambda g: g.aggregation_weights(mask0, ["token-mean"]), raises("mode"))
case("aggregation_weights max_len below", lambda g: g.aggregation_weights(mask0, "seq-mean-token-sum-norm", max_len=1), raises("max_len"))
case("aggregation_weights T=0 sum-norm", lambda g: g.aggregation_weights(torch.zeros(2, 0), "seq-mean-token-sum-norm"), raises("max_len"))
case("aggregation_weights mask list", lambda g: g.aggregation_weights([[1, 0], [1, 1]]).sum().item(), ok(lambda r: abs(r - 1.0) < 1e-6))
case("clipped_surrogate logp=None", lambda g: g.clipped_surrogate(None, torch.zeros(2), torch.zeros(2)), raises("logp"))
case("clipped_surrogate NaN", lambda g: g.clipped_surrogate(torch.tensor([NAN]), torch.zeros(1), torch.zeros(1)), raises("logp"))
case("clipped_surrogate eps list", lambda g: g.clipped_surrogate(torch.zeros(1), torch.zeros(1), torch.zeros(1), [0.2]), raises("eps_low"))
case("clipped_surrogate adv inf", lambda g: g.clipped_surrogate(torch.zeros(1), torch.zeros(1), torch.tensor([INF])), raises("advantages"))
case("clip_active huge gap", lambda g: g.clip_active(torch.zeros(2), torch.tensor([-1e4, 1e4]), torch.tensor([1.0, -1.0])).tolist(),
     ok(lambda r: r == [True, True]))
case("clip_active None", lambda g: g.clip_active(torch.zeros(2), None, torch.zeros(2)), raises("old_logp"))
case("sequence_log_ratio masked NaN", lambda g: g.sequence_log_ratio(torch.tensor([[0.0, NAN]]), torch.tensor([[-1.0, 0.0]]),
                                                                      torch.tensor([[1.0, 0.0]])).tolist(), ok(lambda r: r == [1.0]))
case("sequence_log_ratio real NaN", lambda g: g.sequence_log_ratio(torch.tensor([[NAN, 0.0]]), torch.zeros(1, 2), torch.ones(1, 2)),
     raises("logp"))
case("sequence_log_ratio mode list", lambda g: g.sequence_log_ratio(lp0, old0, mask0, ["mean"]), raises("mode"))
case("sequence_log_ratio mask None", lambda g: g.sequence_log_ratio(lp0, old0, None), raises("mask"))

# --- KL estimators
for fn in ("kl_k1", "kl_k2", "kl_k3"):
    case(f"{fn} NaN logp", lambda g, f=fn: getattr(g, f)(torch.tensor([NAN]), torch.zeros(1)), raises("logp"))
    case(f"{fn} inf ref", lambda g, f=fn: getattr(g, f)(torch.zeros(1), torch.tensor([INF])), raises("ref_logp"))
    case(f"{fn} None", lambda g, f=fn: getattr(g, f)(None, torch.zeros(1)), raises("logp"))
    case(f"{fn} shapes", lambda g, f=fn: getattr(g, f)(torch.zeros(2), torch.zeros(3)), raises("ref_logp", "logp"))
    case(f"{fn} float16 gap 5", lambda g, f=fn: getattr(g, f)(torch.zeros(1, dtype=torch.float16), torch.full((1,), 5.0, dtype=torch.float16)),
         ok(_finite))
case("kl_k3 gap 100 float32 overflows", lambda g: g.kl_k3(torch.zeros(1), torch.full((1,), 100.0)), raises("ref_logp"))
case("kl_k3 gap 100 float64", lambda g: g.kl_k3(torch.zeros(1, dtype=torch.float64), torch.full((1,), 100.0, dtype=torch.float64)),
     ok(_finite))
case("kl_k3 gap -1e4", lambda g: g.kl_k3(torch.zeros(1), torch.full((1,), -1e4)), ok(lambda r: abs(float(r) - 9999.0) < 1e-2))
case("kl_estimate kind list", lambda g: g.kl_estimate(torch.zeros(1), torch.zeros(1), ["k3"]), raises("kind"))
case("kl_estimate kind unknown", lambda g: g.kl_estimate(torch.zeros(1), torch.zeros(1), "k4"), raises("kind"))
case("kl_estimate clamp list", lambda g: g.kl_estimate(torch.zeros(1), torch.zeros(1), "k3", clamp=["verl"]), raises("clamp"))
case("kl_estimate clamp unknown", lambda g: g.kl_estimate(torch.zeros(1), torch.zeros(1), "k3", clamp="trl"), raises("clamp"))
case("kl_estimate verl clamp gap 100", lambda g: float(g.kl_estimate(torch.zeros(1), torch.full((1,), 100.0), "k3", clamp="verl")),
     ok(lambda r: r == 10.0))
case("kl_estimate k3+ gap 100 float32", lambda g: g.kl_estimate(torch.zeros(1), torch.full((1,), 100.0), "k3+"), raises("ref_logp"))

# --- advantages
for fn in ("group_advantages", "loo_advantages", "dynamic_sampling_keep"):
    case(f"{fn} rewards=None", lambda g, f=fn: getattr(g, f)(None, 2), raises("rewards"))
    case(f"{fn} NaN", lambda g, f=fn: getattr(g, f)([1.0, NAN], 2), raises("rewards"))
    case(f"{fn} empty", lambda g, f=fn: getattr(g, f)([], 2), raises("rewards"))
    case(f"{fn} group_size=1", lambda g, f=fn: getattr(g, f)([1.0, 0.0], 1), raises("group_size"))
    case(f"{fn} group_size=True", lambda g, f=fn: getattr(g, f)([1.0, 0.0], True), raises("group_size"))
    case(f"{fn} group_size='2'", lambda g, f=fn: getattr(g, f)([1.0, 0.0], "2"), raises("group_size"))
    case(f"{fn} group_size=None", lambda g, f=fn: getattr(g, f)([1.0, 0.0], None), raises("group_size"))
    case(f"{fn} rewards strings", lambda g, f=fn: getattr(g, f)(["a", "b"], 2), raises("rewards"))
    case(f"{fn} B=0 [0, 2]", lambda g, f=fn: getattr(g, f)(torch.zeros(0, 2), 2), raises("rewards"))
    case(f"{fn} complex", lambda g, f=fn: getattr(g, f)(torch.zeros(2, dtype=torch.complex64), 2), raises("rewards"))
    case(f"{fn} float16", lambda g, f=fn: getattr(g, f)(torch.tensor([1.0, 0.0], dtype=torch.float16), 2), ok(_finite))
case("group_advantages huge rewards", lambda g: g.group_advantages([3e38, -3e38], 2), ok(lambda r: _finite(r) and r.tolist()[0] > 0))
case("group_advantages float16 huge", lambda g: g.group_advantages(torch.tensor([6e4, -6e4], dtype=torch.float16), 2).tolist(),
     ok(lambda r: r == [1.0, -1.0]))
case("group_advantages scale list", lambda g: g.group_advantages([1.0, 0.0], 2, scale=["group"]), raises("scale"))
case("group_advantages std list", lambda g: g.group_advantages([1.0, 0.0], 2, std=["sample"]), raises("std"))
case("group_advantages eps NaN", lambda g: g.group_advantages([1.0, 0.0], 2, eps=NAN), raises("eps"))
case("group_advantages eps '1e-8'", lambda g: g.group_advantages([1.0, 0.0], 2, eps="1e-8"), raises("eps"))
case("group_advantages std_floor inf", lambda g: g.group_advantages([1.0, 0.0], 2, std_floor=INF), raises("std_floor"))
case("group_advantages zero_equal_groups='no'", lambda g: g.group_advantages([1.0, 0.0], 2, zero_equal_groups="no"),
     raises("zero_equal_groups"))
case("preset_advantages list", lambda g: g.preset_advantages([1.0, 0.0], 2, ["trl"]), raises("preset"))
case("preset_advantages None", lambda g: g.preset_advantages([1.0, 0.0], 2, None), raises("preset"))
case("bernoulli_advantages k float", lambda g: g.bernoulli_advantages(1.5, 4), raises("k"))
case("bernoulli_advantages k > G", lambda g: g.bernoulli_advantages(5, 4), raises("k"))
case("bernoulli_advantages k None", lambda g: g.bernoulli_advantages(None, 4), raises("k"))
case("bernoulli_advantages std list", lambda g: g.bernoulli_advantages(1, 4, std=["sample"]), raises("std"))
case("threshold_advantages NaN", lambda g: g.threshold_advantages([1.0, 0.0], 2, NAN), raises("threshold"))
case("threshold_advantages None", lambda g: g.threshold_advantages([1.0, 0.0], 2, None), raises("threshold"))
case("RunningBaseline momentum 1", lambda g: g.RunningBaseline(1.0), raises("momentum"))
case("RunningBaseline momentum NaN", lambda g: g.RunningBaseline(NAN), raises("momentum"))
case("RunningBaseline momentum '0.9'", lambda g: g.RunningBaseline("0.9"), raises("momentum"))
case("RunningBaseline update empty", lambda g: g.RunningBaseline().update([]), raises("rewards"))
case("RunningBaseline update NaN", lambda g: g.RunningBaseline().update([NAN]), raises("rewards"))
case("RunningBaseline update None", lambda g: g.RunningBaseline().update(None), raises("rewards"))
case("global_baseline baseline None", lambda g: g.global_baseline_advantages([1.0, 1.0], 2, None), raises("baseline"))
case("global_baseline baseline dict", lambda g: g.global_baseline_advantages([1.0, 1.0], 2, {"mean": 0.5}), raises("baseline"))
case("combine_rewards 1-D", lambda g: g.combine_rewards([1.0, 0.0], 2), raises("rewards"))
case("combine_rewards weights shape", lambda g: g.combine_rewards(torch.ones(2, 2), 2, weights=[1.0]), raises("weights"))
case("combine_rewards weights NaN", lambda g: g.combine_rewards(torch.ones(2, 2), 2, weights=[1.0, NAN]), raises("weights"))
case("combine_rewards weights negative", lambda g: g.combine_rewards(torch.ones(2, 2), 2, weights=[1.0, -1.0]), raises("weights"))
case("combine_rewards mode list", lambda g: g.combine_rewards(torch.ones(2, 2), 2, mode=["sum-then-normalize"]), raises("mode"))
case("combine_rewards mode unknown", lambda g: g.combine_rewards(torch.ones(2, 2), 2, mode="sum"), raises("mode"))
case("combine_rewards N=0", lambda g: g.combine_rewards(torch.ones(0, 2), 2), raises("rewards"))
case("compute_advantages name list", lambda g: g.compute_advantages(["grpo"], [1.0, 0.0], 2), raises("advantages", "name"))
case("compute_advantages name unknown", lambda g: g.compute_advantages("ppo-gae", [1.0, 0.0], 2), raises("advantages", "name"))
case("compute_advantages name None", lambda g: g.compute_advantages(None, [1.0, 0.0], 2), raises("advantages", "name"))
case("trl_advantages scale list", lambda g: g.trl_advantages([1.0, 0.0], 2, scale_rewards=["group"]), raises("scale_rewards"))
case("trl_advantages NaN", lambda g: g.trl_advantages([1.0, NAN], 2), raises("rewards"))
case("verl_grpo_advantages NaN", lambda g: g.verl_grpo_advantages([1.0, NAN], 2), raises("rewards"))
case("verl_grpo_advantages epsilon -1", lambda g: g.verl_grpo_advantages([1.0, 0.0], 2, epsilon=-1.0), raises("epsilon"))
case("verl_reinforce_pp mask None", lambda g: g.verl_reinforce_pp_advantages([1.0, 0.0], None), raises("mask"))
case("verl_reinforce_pp gamma 2", lambda g: g.verl_reinforce_pp_advantages([1.0, 0.0], torch.ones(2, 3), gamma=2.0), raises("gamma"))
case("verl_reinforce_pp masked NaN rewards? no: rewards NaN", lambda g: g.verl_reinforce_pp_advantages([1.0, NAN], torch.ones(2, 3)),
     raises("rewards"))
case("verl_gdpo mask None", lambda g: g.verl_gdpo_advantages(torch.ones(2, 2), 2, None), raises("mask"))
case("register_advantage name list", lambda g: g.register_advantage(["x"], "d"), raises("name"))
case("register_policy_loss duplicate", lambda g: g.register_policy_loss("clip", "d")(lambda *a: None), raises("name", "clip"))

# --- KL controller, PPO pieces, DAPO shaping, rollout weights, entropy mask
case("AdaptiveKLController init_beta 0", lambda g: g.AdaptiveKLController(0.0, 0.1), raises("init_beta"))
case("AdaptiveKLController target NaN", lambda g: g.AdaptiveKLController(0.1, NAN), raises("target"))
case("AdaptiveKLController init_beta '0.1'", lambda g: g.AdaptiveKLController("0.1", 0.1), raises("init_beta"))
case("AdaptiveKLController max_error 1", lambda g: g.AdaptiveKLController(0.1, 0.1, max_error=1.0), raises("max_error"))
case("AdaptiveKLController update NaN", lambda g: g.AdaptiveKLController(0.1, 0.1).update(NAN), raises("kl"))
case("AdaptiveKLController update tensor kl", lambda g: g.AdaptiveKLController(0.1, 0.1).update(torch.tensor(0.2)),
     ok(lambda r: math.isfinite(r)))
case("AdaptiveKLController update n_steps 0", lambda g: g.AdaptiveKLController(0.1, 0.1).update(0.1, 0), raises("n_steps"))
case("gae mask None ok", lambda g: g.gae(torch.ones(2, 3), torch.zeros(2, 3)), ok(_finite))
case("gae values shape", lambda g: g.gae(torch.ones(2, 3), torch.zeros(2, 2)), raises("values"))
case("gae gamma 2", lambda g: g.gae(torch.ones(2, 3), torch.zeros(2, 3), gamma=2.0), raises("gamma"))
case("gae NaN reward", lambda g: g.gae(_poison(torch.ones(2, 3), NAN), torch.zeros(2, 3)), raises("token_reward"))
case("gae masked NaN value", lambda g: g.gae(torch.ones(2, 3), _poison(torch.zeros(2, 3), NAN), mask0), ok(_finite))
case("gae token_reward None", lambda g: g.gae(None, torch.zeros(2, 3)), raises("token_reward"))
case("gae B=0", lambda g: g.gae(torch.zeros(0, 3), torch.zeros(0, 3)), raises("token_reward"))
case("gae mask wrong shape", lambda g: g.gae(torch.ones(2, 3), torch.zeros(2, 3), torch.ones(2, 2)), raises("mask"))
case("whiten masked NaN", lambda g: g.whiten(_poison(torch.ones(2, 3), NAN), mask0), ok(_finite))
case("whiten real NaN", lambda g: g.whiten(_poison(torch.ones(2, 3), NAN, (0, 0)), mask0), raises("x"))
case("whiten x None", lambda g: g.whiten(None, mask0), raises("x"))
case("whiten empty", lambda g: g.whiten(torch.zeros(0, 3), torch.zeros(0, 3)), raises("x", "mask"))
case("whiten eps -1", lambda g: g.whiten(torch.ones(2, 3), mask0, eps=-1.0), raises("eps"))
case("value_loss masked NaN", lambda g: g.value_loss(_poison(torch.ones(2, 3), NAN), torch.ones(2, 3), torch.ones(2, 3), mask0),
     ok(_finite))
case("value_loss real NaN returns", lambda g: g.value_loss(torch.ones(2, 3), torch.ones(2, 3), _poison(torch.ones(2, 3), NAN, (0, 0)),
                                                           mask0), raises("returns"))
case("value_loss old_values shape", lambda g: g.value_loss(torch.ones(2, 3), torch.ones(2, 2), torch.ones(2, 3), mask0),
     raises("old_values"))
case("value_loss empty", lambda g: g.value_loss(torch.zeros(0, 3), torch.zeros(0, 3), torch.zeros(0, 3), torch.zeros(0, 3)),
     raises("values", "mask"))
case("value_loss clip NaN", lambda g: g.value_loss(torch.ones(2, 3), torch.ones(2, 3), torch.ones(2, 3), mask0, clip=NAN), raises("clip"))
case("token_rewards mask None", lambda g: g.token_rewards([1.0, 0.0], None), raises("mask"))
case("token_rewards rewards shape", lambda g: g.token_rewards([1.0], mask0), raises("rewards"))
case("token_rewards beta without logps", lambda g: g.token_rewards([1.0, 0.0], mask0, beta=0.1), raises("old_logp", "ref_logp", "beta"))
case("token_rewards masked NaN logp", lambda g: g.token_rewards([1.0, 0.0], mask0, _poison(old0, NAN), ref0, beta=0.1), ok(_finite))
case("token_rewards real NaN logp", lambda g: g.token_rewards([1.0, 0.0], mask0, _poison(old0, NAN, (0, 0)), ref0, beta=0.1),
     raises("old_logp"))
case("overlong_penalty max_len 0", lambda g: g.overlong_penalty([3, 4], 0, 0), raises("max_len"))
case("overlong_penalty cache_len > max_len", lambda g: g.overlong_penalty([3, 4], 4, 8), raises("cache_len"))
case("overlong_penalty max_len '8'", lambda g: g.overlong_penalty([3, 4], "8", 2), raises("max_len"))
case("overlong_penalty lengths None", lambda g: g.overlong_penalty(None, 8, 2), raises("lengths"))
case("overlong_penalty lengths NaN", lambda g: g.overlong_penalty([NAN], 8, 2), raises("lengths"))
case("overlong_penalty factor -1", lambda g: g.overlong_penalty([3], 8, 2, -1.0), raises("factor"))
case("overlong_penalty cache_len 0", lambda g: g.overlong_penalty([3], 8, 0), raises("cache_len"))
case("truncated shapes", lambda g: g.truncated(torch.zeros(2, 3), torch.ones(2, 2), 0), raises("completions", "mask"))
case("truncated None", lambda g: g.truncated(None, torch.ones(2, 2), 0), raises("completions"))
case("truncated eos_id list", lambda g: g.truncated(torch.zeros(2, 2, dtype=torch.long), torch.ones(2, 2), [0]), raises("eos_id"))
case("truncated float completions", lambda g: g.truncated(torch.zeros(2, 2) + 0.5, torch.ones(2, 2), 0), raises("completions"))
case("rollout_importance_weights level list", lambda g: _loss(g, rollout_logp=old0, is_level=["token"]), raises("is_level"))
case("rollout_importance_weights mode unknown", lambda g: _loss(g, rollout_logp=old0, is_mode="clip"), raises("is_mode"))
case("rollout_importance_weights is_min > is_max", lambda g: _loss(g, rollout_logp=old0, is_min=3.0, is_max=2.0), raises("is_min"))
case("rollout is_* without rollout_logp", lambda g: _loss(g, is_max=2.0), raises("is_max", "rollout_logp"))
case("rollout_logp wrong shape", lambda g: _loss(g, rollout_logp=torch.zeros(2, 2)), raises("rollout_logp"))
case("high_entropy_mask quantile 0", lambda g: g.high_entropy_mask(lp0.abs(), mask0, 0.0), raises("top_entropy_quantile"))
case("high_entropy_mask quantile list", lambda g: g.high_entropy_mask(lp0.abs(), mask0, [0.5]), raises("top_entropy_quantile"))
case("high_entropy_mask masked NaN", lambda g: g.high_entropy_mask(_poison(lp0.abs(), NAN), mask0, 0.5).tolist(),
     ok(lambda r: r[0][2] is False and r[1][1] is False))
case("high_entropy_mask real NaN", lambda g: g.high_entropy_mask(_poison(lp0.abs(), NAN, (0, 0)), mask0, 0.5), raises("entropy"))
case("high_entropy_mask entropy None", lambda g: g.high_entropy_mask(None, mask0, 0.5), raises("entropy"))
case("high_entropy_mask shapes", lambda g: g.high_entropy_mask(torch.ones(2, 2), mask0, 0.5), raises("entropy", "mask"))

# --- the analysis layer (validation only)
from grpo_core.analysis import kl_analysis as _kla  # noqa: E402
from grpo_core.analysis import policy_gradient as _pg  # noqa: E402
from grpo_core.analysis import rewards as _rw  # noqa: E402
from grpo_core.analysis import variance as _var  # noqa: E402


def _an(module, fn):
    return lambda g: getattr(__import__(f"{g.__name__}.analysis.{module}", fromlist=[fn]), fn)


for name, params, arg in (("bernoulli", dict(p=1.5), "p"), ("bernoulli", dict(p=NAN), "p"), ("bernoulli", dict(p="0.5"), "p"),
                          ("gaussian", dict(sigma=-1.0), "sigma"), ("gaussian", dict(mu=INF), "mu"),
                          ("uniform", dict(low=1.0, high=0.0), "low"), ("beta", dict(a=0.0), "a"),
                          ("bernoulli", dict(q=0.5), "q")):
    case(f"make_distribution {name} {params}", lambda g, n=name, p=params: _an("rewards", "make_distribution")(g)(n, **p), raises(arg))
case("make_distribution name list", lambda g: _an("rewards", "make_distribution")(g)(["bernoulli"]), raises("name"))
case("make_distribution name unknown", lambda g: _an("rewards", "make_distribution")(g)("poisson"), raises("name"))
for key, value in (("B", 0), ("B", -1), ("B", 2.0), ("G", 0), ("G", None), ("seed", -1), ("seed", 2**64), ("seed", 1.5),
                   ("seed", "0"), ("seed", None), ("device", "cuda:7"), ("device", "tpu"), ("device", 0), ("device", ["cpu"]),
                   ("dtype", torch.int64), ("dtype", "float32")):
    def _sample(g, k=key, v=value):
        d = _an("rewards", "make_distribution")(g)("bernoulli")
        kw = dict(B=2, G=4)
        kw[k] = v
        return d.sample(kw.pop("B"), kw.pop("G"), **kw)
    case(f"sample {key}={value!r}", _sample, raises(key))
case("sample device cpu", lambda g: _an("rewards", "make_distribution")(g)("gaussian").sample(2, 3, device="cpu").shape == (2, 3),
     ok(lambda r: r is True))
case("categorical_kl not summing", lambda g: _an("kl_analysis", "categorical_kl")(g)([0.5, 0.6], [0.5, 0.5]), raises("probs"))
case("categorical_kl NaN", lambda g: _an("kl_analysis", "categorical_kl")(g)([0.5, 0.5], [NAN, 0.5]), raises("ref_probs"))
case("categorical_kl None", lambda g: _an("kl_analysis", "categorical_kl")(g)(None, [0.5, 0.5]), raises("probs"))
case("gaussian_kl sigma 0", lambda g: _an("kl_analysis", "gaussian_kl")(g)(0.0, 0.0, 0.0, 1.0), raises("sigma"))
case("gaussian_kl ref_sigma NaN", lambda g: _an("kl_analysis", "gaussian_kl")(g)(0.0, 1.0, 0.0, NAN), raises("ref_sigma"))
case("gaussian_kl mu '0'", lambda g: _an("kl_analysis", "gaussian_kl")(g)("0", 1.0, 0.0, 1.0), raises("mu"))
case("sample_gaussian_pair n 0", lambda g: _an("kl_analysis", "sample_gaussian_pair")(g)(0, 2, 0.0, 1.0), raises("n"))
case("sample_gaussian_pair seed -1", lambda g: _an("kl_analysis", "sample_gaussian_pair")(g)(4, 2, 0.0, 1.0, seed=-1), raises("seed"))
case("sample_gaussian_pair seed '1'", lambda g: _an("kl_analysis", "sample_gaussian_pair")(g)(4, 2, 0.0, 1.0, seed="1"), raises("seed"))
case("sample_categorical_pair seed None", lambda g: _an("kl_analysis", "sample_categorical_pair")(g)([0.5, 0.5], [0.5, 0.5], 4, 2,
                                                                                                    seed=None), raises("seed"))
case("sample_categorical_pair reps 0", lambda g: _an("kl_analysis", "sample_categorical_pair")(g)([0.5, 0.5], [0.5, 0.5], 4, 0),
     raises("reps"))
case("monte_carlo_kl NaN", lambda g: _an("kl_analysis", "monte_carlo_kl")(g)(torch.tensor([[NAN, 0.0]]), torch.zeros(1, 2), 0.0),
     raises("logp"))
case("monte_carlo_kl exact NaN", lambda g: _an("kl_analysis", "monte_carlo_kl")(g)(torch.zeros(1, 2), torch.zeros(1, 2), NAN),
     raises("exact"))
case("monte_carlo_kl None", lambda g: _an("kl_analysis", "monte_carlo_kl")(g)(None, torch.zeros(1, 2), 0.0), raises("logp"))
case("kl_regularised_optimum beta 0 is the limit", lambda g: _an("kl_analysis", "kl_regularised_optimum")(g)(
    [0.5, 0.5], [1.0, 0.0], 0.0).tolist(), ok(lambda r: r == [1.0, 0.0]))
case("kl_regularised_optimum beta -1", lambda g: _an("kl_analysis", "kl_regularised_optimum")(g)([0.5, 0.5], [1.0, 0.0], -1.0),
     raises("beta"))
case("kl_regularised_optimum rewards NaN", lambda g: _an("kl_analysis", "kl_regularised_optimum")(g)([0.5, 0.5], [1.0, NAN], 0.1),
     raises("rewards"))
case("kl_regularised_optimum rewards shape", lambda g: _an("kl_analysis", "kl_regularised_optimum")(g)([0.5, 0.5], [1.0], 0.1),
     raises("rewards"))
case("beta_for_kl kl -1", lambda g: _an("kl_analysis", "beta_for_kl")(g)([0.5, 0.5], [1.0, 0.0], -1.0), raises("kl"))
case("k3_loss_fixed_point beta NaN", lambda g: _an("kl_analysis", "k3_loss_fixed_point")(g)([0.5, 0.5], [1.0, 0.0], NAN), raises("beta"))
case("expected_estimator_gradient kind list", lambda g: _an("kl_analysis", "expected_estimator_gradient")(g)(
    torch.zeros(3), torch.zeros(3), ["k3"]), raises("kind"))
case("expected_estimator_gradient logits NaN", lambda g: _an("kl_analysis", "expected_estimator_gradient")(g)(
    torch.tensor([NAN, 0.0]), torch.zeros(2)), raises("logits"))
case("expected_estimator_gradient weighted 'yes'", lambda g: _an("kl_analysis", "expected_estimator_gradient")(g)(
    torch.zeros(3), torch.zeros(3), "k3", "yes"), raises("weighted"))
case("score_function actions out of range", lambda g: _an("policy_gradient", "score_function")(g)(torch.zeros(3), [0, 3]),
     raises("actions"))
case("score_function actions float", lambda g: _an("policy_gradient", "score_function")(g)(torch.zeros(3), [0.0, 1.0]),
     raises("actions"))
case("score_function logits None", lambda g: _an("policy_gradient", "score_function")(g)(None, [0]), raises("logits"))
case("score_function actions None", lambda g: _an("policy_gradient", "score_function")(g)(torch.zeros(3), None), raises("actions"))
case("exact_policy_gradient rewards NaN", lambda g: _an("policy_gradient", "exact_policy_gradient")(g)(torch.zeros(2), [NAN, 0.0]),
     raises("rewards"))
case("policy_gradient_estimate adv shape", lambda g: _an("policy_gradient", "policy_gradient_estimate")(g)(torch.zeros(3), [0, 1],
                                                                                                          [1.0]), raises("advantages"))
case("two_token_logprobs None", lambda g: _an("policy_gradient", "two_token_logprobs")(g)(None, torch.zeros(2, 2)), raises("logits1"))
case("enumerated_surrogates rewards shape", lambda g: _an("policy_gradient", "enumerated_surrogates")(g)(
    torch.log(torch.full((2, 1), 0.5)), torch.log(torch.full((2, 1), 0.5)), [1.0]), raises("rewards"))
case("notes_advantage_variance G 1", lambda g: _an("variance", "notes_advantage_variance")(g)(1, 0.0), raises("G"))
case("notes_advantage_variance kurtosis NaN", lambda g: _an("variance", "notes_advantage_variance")(g)(4, NAN), raises("kurtosis"))
case("sample_variance_relvar G '4'", lambda g: _an("variance", "sample_variance_relvar")(g)("4", 0.0), raises("G"))
case("advantage_variance_study dist None", lambda g: _an("variance", "advantage_variance_study")(g)(None, 4), raises("dist"))
case("advantage_variance_study seed -1", lambda g: _an("variance", "advantage_variance_study")(g)(
    _an("rewards", "make_distribution")(g)("bernoulli"), 4, 100, seed=-1), raises("seed"))
case("advantage_variance_study n_groups 0", lambda g: _an("variance", "advantage_variance_study")(g)(
    _an("rewards", "make_distribution")(g)("bernoulli"), 4, 0), raises("n_groups"))
case("gae_variance gamma 2", lambda g: _an("variance", "gae_variance")(g)(1.0, 2.0, 0.9), raises("gamma"))
case("gae_variance sigma -1", lambda g: _an("variance", "gae_variance")(g)(-1.0, 0.9, 0.9), raises("sigma"))
case("gae_variance horizon 0", lambda g: _an("variance", "gae_variance")(g)(1.0, 0.9, 0.9, 0), raises("horizon"))
case("make_prompt_bandits seed -1", lambda g: _an("variance", "make_prompt_bandits")(g)(seed=-1), raises("seed"))
case("make_prompt_bandits success 1.5", lambda g: _an("variance", "make_prompt_bandits")(g)(success=(1.5,)), raises("success"))
case("make_prompt_bandits n_correct > n_answers", lambda g: _an("variance", "make_prompt_bandits")(g)(n_answers=4, n_correct=5),
     raises("n_correct"))
case("make_prompt_bandits success empty", lambda g: _an("variance", "make_prompt_bandits")(g)(success=()), raises("success"))
case("expected_gradient_weight estimator list", lambda g: _an("variance", "expected_gradient_weight")(g)([0.5], 4, ["grpo"]),
     raises("estimator"))
case("expected_gradient_weight G 1", lambda g: _an("variance", "expected_gradient_weight")(g)([0.5], 1), raises("G"))
case("expected_gradient_weight success NaN", lambda g: _an("variance", "expected_gradient_weight")(g)([NAN], 4), raises("success"))
case("exact_estimator_moments estimator unknown", lambda g: _an("variance", "exact_estimator_moments")(g)(
    _an("variance", "make_prompt_bandits")(g)(), 4, "ppo-gae"), raises("estimator"))
case("exact_estimator_moments prompts None", lambda g: _an("variance", "exact_estimator_moments")(g)(None, 4, "grpo"),
     raises("prompts"))
case("true_gradient prompts dict", lambda g: _an("variance", "true_gradient")(g)({}), raises("prompts"))
case("estimator_summary NaN truth", lambda g: _an("variance", "estimator_summary")(g)(torch.zeros(2), 0.0, torch.tensor([NAN, 0.0])),
     raises("truth"))
case("excess_kurtosis None", lambda g: _an("variance", "excess_kurtosis")(g)(None), raises("dist"))


# ------------------------------------------------------------------------------ the test


@pytest.mark.parametrize("c", CASES, ids=[c.id for c in CASES])
def test_hostile_case(c):
    kind, detail = outcome(c, grpo_core)
    assert kind == "right", f"{c.id}: {kind} ({detail})"


def test_table_is_large_and_ids_unique():
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids)), sorted({i for i in ids if ids.count(i) > 1})
    assert len(CASES) > 300


# ------------------------------------------------------- documented exceptions (issue 18, item 6)


def test_presets_keep_the_frameworks_float_residue_on_equal_rewards():
    """The advantage presets reproduce their implementation's rounding on purpose (PRESETS' comment):
    exactly 0 for a group of equal rewards only with zero_equal_groups=True, or where the mean is exact."""
    tenths = torch.full((8,), 0.1, dtype=torch.float32)
    residue = {p: float(grpo_core.preset_advantages(tenths, 8, p).abs().max()) for p in grpo_core.PRESETS}
    assert residue["deepseekmath"] == residue["dr-grpo"] == 0.0
    assert float(grpo_core.group_advantages(tenths, 8).abs().max()) == 0.0
    assert 1e-3 < residue["verl"] < 1e-2 and 1e-5 < residue["trl"] < 1e-4
    assert float(grpo_core.verl_grpo_advantages(tenths, 8).abs().max()) == residue["verl"]
    assert 1e-5 < float(grpo_core.trl_advantages(tenths, 8).abs().max()) < 1e-4
    assert 0.5 < float(grpo_core.preset_advantages(torch.full((8,), 0.3), 8, "seed-notes").abs().max()) < 1.0
    for p in grpo_core.PRESETS:  # binary fractions, and float64 for these rewards: the mean is exact, so exactly 0
        assert float(grpo_core.preset_advantages(torch.full((8,), 0.5), 8, p).abs().max()) == 0.0
        assert float(grpo_core.preset_advantages(tenths.double(), 8, p).abs().max()) == 0.0


def test_overflow_messages_say_the_fix():
    with pytest.raises(ValueError, match=r"`logp` makes the policy loss overflow .*dual_clip, delta"):
        grpo_core.grpo_loss(torch.zeros(1, 1), torch.full((1, 1), -100.0), None, torch.tensor([-1.0]), torch.ones(1, 1), beta=0)
    with pytest.raises(TypeError, match=r"`mode` must be a name \(a str\)"):
        grpo_core.aggregate(torch.ones(1, 1), torch.ones(1, 1), ["token-mean"])
    with pytest.raises(ValueError, match=r"`max_len`=1 is below the longest answer of the mask \(2 tokens\)"):
        grpo_core.aggregate(torch.ones(1, 2), torch.ones(1, 2), "seq-mean-token-sum-norm", max_len=1)
