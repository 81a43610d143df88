"""grpo_loss against a straightforward reference on many random batches (nothing stored).

The reference below is DeepSeekMath's Eq. 3 written token by token with Python loops (PPO's clip
with DAPO's upper range, TRL's delta, verl's dual clip; the k1/k2/k3 KL term; the four
aggregations; one ratio per token or per answer; TRL's bias-corrected KL). It shares no code with
grpo_core. The hardening of issue 18 (masking before ``exp``, the clamp of the log-ratio where
the clip is certainly active) must leave the loss and its gradient what they were on ordinary
inputs: finite values, gaps up to +-3 so that many tokens sit beyond the clip.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from grpo_core import grpo_loss


def _reference(logp, old, ref, adv, mask, *, eps_low, eps_high, beta, kl, agg, max_len, delta, dual_clip, sequence,
               bias_corr):
    B, T = logp.shape
    lengths = [int(mask[b].sum()) for b in range(B)]
    seq_d = []
    for b in range(B):
        s = sum(logp[b, t] - old[b, t] for t in range(T) if mask[b, t] > 0)
        seq_d.append(s / max(lengths[b], 1))
    pol = [[None] * T for _ in range(B)]
    klt = [[None] * T for _ in range(B)]
    for b in range(B):
        for t in range(T):
            if mask[b, t] == 0:
                continue
            d = seq_d[b] if sequence else logp[b, t] - old[b, t]
            r = torch.exp(d)
            a = adv[b] if adv.dim() == 1 else adv[b, t]
            r1 = r if delta is None else torch.clamp(r, max=delta)
            obj = torch.minimum(r1 * a, torch.clamp(r, 1 - eps_low, 1 + eps_high) * a)
            if dual_clip is not None and a < 0:
                obj = torch.maximum(obj, dual_clip * a)
            pol[b][t] = -obj
            x = ref[b, t] - logp[b, t]
            k = {"k1": -x, "k2": 0.5 * x * x, "k3": torch.exp(x) - 1 - x}[kl]
            klt[b][t] = k * r if bias_corr else k

    def reduce(vals):
        tok = [vals[b][t] for b in range(B) for t in range(T) if mask[b, t] > 0]
        if agg == "token-mean":
            return sum(tok) / max(len(tok), 1)
        rows = [sum(vals[b][t] for t in range(T) if mask[b, t] > 0) for b in range(B)]
        if agg == "seq-mean-token-mean":
            return sum(rows[b] / max(lengths[b], 1) for b in range(B)) / B
        if agg == "seq-mean-token-sum":
            return sum(rows) / B
        return sum(rows) / (B * (T if max_len is None else max_len))

    out = reduce(pol)
    if beta:
        out = out + beta * reduce(klt)
    return torch.as_tensor(out, dtype=logp.dtype)


def _batch(gen, B, T, per_token_adv):
    lp = -torch.rand(B, T, generator=gen, dtype=torch.float64) * 3
    old = lp + (torch.rand(B, T, generator=gen, dtype=torch.float64) - 0.5) * 6
    ref = lp + (torch.rand(B, T, generator=gen, dtype=torch.float64) - 0.5) * 2
    adv = torch.randn((B, T) if per_token_adv else (B,), generator=gen, dtype=torch.float64)
    lengths = torch.randint(0, T + 1, (B,), generator=gen)
    lengths[0] = T
    mask = (torch.arange(T)[None, :] < lengths[:, None]).double()
    old = torch.where(mask > 0, old, torch.full_like(old, -1e4))  # a trainer's padding: huge negative log-probs
    return lp, old, ref, adv, mask


CONFIGS = [
    dict(eps_low=el, eps_high=eh, delta=de, dual_clip=dc, agg=ag, kl=kl, beta=be, sequence=sq, bias_corr=bc)
    for (el, eh), de, dc, ag, kl, be, sq, bc in itertools.product(
        [(0.2, 0.2), (0.2, 0.28)], [None, 2.0], [None, 3.0],
        ["seq-mean-token-mean", "token-mean", "seq-mean-token-sum", "seq-mean-token-sum-norm"],
        ["k1", "k3"], [0.0, 0.04], [False, True], [False, True])
    if not (de is not None and dc is not None) and not (bc and be == 0.0) and not (de is not None and sq)
]


@pytest.mark.parametrize("seed", range(6))
def test_grpo_loss_matches_the_reference(seed):
    gen = torch.Generator().manual_seed(seed)
    checked = 0
    for i, cfg in enumerate(CONFIGS):
        B, T = 1 + (i + seed) % 4, 1 + (3 * i + seed) % 5
        lp, old, ref, adv, mask = _batch(gen, B, T, per_token_adv=(i % 3 == 0))
        max_len = T + 2 if cfg["agg"] == "seq-mean-token-sum-norm" and i % 2 else None
        x = lp.clone().requires_grad_(True)
        loss, _ = grpo_loss(x, old, ref, adv, mask, eps_low=cfg["eps_low"], eps_high=cfg["eps_high"], beta=cfg["beta"],
                            kl=cfg["kl"], agg=cfg["agg"], max_len=max_len, delta=cfg["delta"], dual_clip=cfg["dual_clip"],
                            ratio_level="sequence" if cfg["sequence"] else "token",
                            kl_bias_correction=cfg["bias_corr"])
        (grad,) = torch.autograd.grad(loss, x)
        y = lp.clone().requires_grad_(True)
        want = _reference(y, old, ref, adv, mask, max_len=max_len, **cfg)
        (want_grad,) = torch.autograd.grad(want, y, allow_unused=True) if want.requires_grad else (torch.zeros_like(y),)
        want_grad = torch.zeros_like(y) if want_grad is None else want_grad
        assert math.isclose(float(loss.detach()), float(want.detach()), rel_tol=1e-12, abs_tol=1e-14), (cfg, loss, want)
        assert torch.allclose(grad, want_grad, rtol=1e-11, atol=1e-13), (cfg, grad, want_grad)
        checked += 1
    assert checked == len(CONFIGS) > 200
