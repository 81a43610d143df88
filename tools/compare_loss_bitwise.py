"""Compare grpo_loss of this tree with grpo_loss of another checkout, bitwise, on random batches.

    PYTHONPATH=$PWD python tools/compare_loss_bitwise.py /path/to/other/checkout [n_batches]

Both trees' grpo_core are imported side by side (the other one under a fresh module name); every
preset and a grid of grpo_loss settings runs on the same random batches (ordinary inputs: finite,
gaps up to +-3 so that many tokens are clipped), and the loss, the gradient of logp and every metric
must be identical bit for bit. Prints the number of comparisons and exits 1 on the first mismatch.
"""

import importlib.util
import itertools
import sys

import torch


def load(root):
    spec = importlib.util.spec_from_file_location("grpo_core_other", f"{root}/grpo_core/__init__.py",
                                                  submodule_search_locations=[f"{root}/grpo_core"])
    mod = importlib.util.module_from_spec(spec)
    sys.modules["grpo_core_other"] = mod
    spec.loader.exec_module(mod)
    return mod


def batch(gen, dtype, B=4, T=6, per_token_adv=False):
    lp = -torch.rand(B, T, generator=gen, dtype=torch.float64) * 3
    old = lp + (torch.rand(B, T, generator=gen, dtype=torch.float64) - 0.5) * 6
    ref = lp + (torch.rand(B, T, generator=gen, dtype=torch.float64) - 0.5) * 2
    roll = old + (torch.rand(B, T, generator=gen, dtype=torch.float64) - 0.5) * 2
    ent = torch.rand(B, T, generator=gen, dtype=torch.float64) * 2
    lengths = torch.randint(0, T + 1, (B,), generator=gen)
    mask = (torch.arange(T)[None, :] < lengths[:, None]).to(dtype)
    adv = torch.randn(B, T, generator=gen, dtype=torch.float64) if per_token_adv else torch.randn(B, generator=gen, dtype=torch.float64)
    adv[0] = 0.0
    return [x.to(dtype) for x in (lp, old, ref, roll, ent, adv)] + [mask]


def run(mod, name_or_kw, tensors, preset):
    lp, old, ref, roll, ent, adv, mask = [t.clone() for t in tensors]
    lp.requires_grad_(True)
    kw = dict(name_or_kw)
    args = dict(ref=ref if kw.pop("_ref", True) else None)
    if kw.pop("_roll", False):
        kw["rollout_logp"] = roll
    if kw.pop("_ent", False):
        kw["entropy"] = ent
    if preset:
        loss, met = mod.preset_loss(preset, lp, old, args["ref"], adv, mask, **kw)
    else:
        loss, met = mod.grpo_loss(lp, old, args["ref"], adv, mask, **kw)
    loss.backward()
    return loss.detach(), lp.grad, met


def same(a, b):
    if isinstance(a, float):
        return (a == b) or (a != a and b != b)
    return a.dtype == b.dtype and a.shape == b.shape and bool(((a == b) | (a.isnan() & b.isnan())).all())


def settings():
    for loss, agg, ratio_level, beta, kl in itertools.product(
        ["clip", "cispo", "sapo", "gmpo", "gspo"], ["seq-mean-token-mean", "token-mean", "seq-mean-token-sum",
                                                    "seq-mean-token-sum-norm"],
        ["token", "sequence"], [0.0, 0.04], ["k3", "k1+", "k3+"]):
        if ratio_level == "sequence" and loss in ("gmpo", "gspo"):
            continue
        yield None, dict(loss=loss, agg=agg, ratio_level=ratio_level, beta=beta, kl=kl, _ref=beta > 0)
    for extra in [dict(delta=2.0), dict(dual_clip=3.0), dict(eps_high=0.28), dict(log_ratio_clamp=20.0),
                  dict(log_ratio_clamp=(None, 1.0)), dict(kl_bias_correction=True, beta=0.1),
                  dict(kl_clamp="verl", beta=0.1), dict(_roll=True), dict(_roll=True, is_level="sequence", is_mode="mask",
                                                                          is_max=2.0),
                  dict(_ent=True, top_entropy_quantile=0.5), dict(framework_metrics="trl"),
                  dict(framework_metrics="verl", dual_clip=3.0), dict(max_len=8, agg="seq-mean-token-sum-norm"),
                  dict(num_processes=2, grad_accum_steps=4)]:
        extra.setdefault("_ref", extra.get("beta", 0.04) > 0)
        yield None, extra


def main():
    other = load(sys.argv[1])
    import grpo_core as mine
    n_batches = int(sys.argv[2]) if len(sys.argv) > 2 else 20
    gen = torch.Generator().manual_seed(1234)
    count = 0
    for b in range(n_batches):
        for dtype in (torch.float64, torch.float32, torch.bfloat16):
            tensors = batch(gen, dtype, per_token_adv=(b % 2 == 1))
            cases = list(settings()) + [(p, dict(_ref=False)) for p in mine.LOSS_PRESETS] + \
                [(p, dict(_ref=True, beta=0.05)) for p in mine.LOSS_PRESETS] + \
                [(p, dict(_ref=False, _roll=True)) for p in mine.LOSS_PRESETS]
            for preset, kw in cases:
                out = []
                for mod in (mine, other):
                    try:
                        out.append(run(mod, kw, tensors, preset))
                    except ValueError as err:
                        out.append(("error", str(err)))
                a, o = out
                if a[0] == "error" or o[0] == "error":
                    if not (a[0] == o[0] == "error"):
                        print("MISMATCH (error)", preset, kw, dtype, a if a[0] == "error" else "", o if o[0] == "error" else "")
                        sys.exit(1)
                    continue
                ok = same(a[0], o[0]) and same(a[1], o[1]) and a[2].keys() == o[2].keys() and all(
                    same(a[2][k], o[2][k]) for k in a[2])
                if not ok:
                    print("MISMATCH", preset, kw, dtype, a[0], o[0], [k for k in a[2] if not same(a[2][k], o[2][k])])
                    sys.exit(1)
                count += 1
    print(f"{count} comparisons, all bitwise identical (loss, gradient of logp, metrics)")


if __name__ == "__main__":
    main()
