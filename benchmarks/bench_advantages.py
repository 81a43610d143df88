"""Benchmark: vectorised `group_advantages` against the source notes' per-group Python loop.

The loop is written the way the notes' `train_step` does it: take the batch's rewards as Python
floats, cut them into groups of G, and for each group build a tensor and normalise it with
`safe_normalize_rewards` (population std, zeros if std < 1e-8, else divide by std + 1e-8).
Both start from the same rewards and must give the same advantages.

Run: python benchmarks/bench_advantages.py [--n 1048576] [--group-size 8]
Prints the time of each (best of several repeats) and the speed-up. Target: >= 100x.
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

from grpo_core import preset_advantages


def safe_normalize_rewards(rewards: list[float]) -> torch.Tensor:
    """One group at a time, as in the source notes (restated, same arithmetic)."""
    t = torch.tensor(rewards, dtype=torch.float32)
    if len(t) == 1:
        return torch.zeros_like(t)
    mean = t.mean()
    std = t.std(unbiased=False)
    if std < 1e-8:
        return torch.zeros_like(t)
    return (t - mean) / (std + 1e-8)


def loop_advantages(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    values = rewards.tolist()  # the notes hold rewards as Python floats on each Sample
    out = []
    for start in range(0, len(values), group_size):
        group = values[start : start + group_size]
        if len(group) < group_size:
            continue
        out.append(safe_normalize_rewards(group))
    return torch.cat(out)


def best_time(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2**20, help="number of rewards (default 2**20)")
    parser.add_argument("--group-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3, help="repeats of the loop (the vectorised one gets 10x more)")
    args = parser.parse_args()

    gen = torch.Generator().manual_seed(0)
    # Bernoulli(0.5) rewards, as from a verifier: about 1 group in 128 has zero spread at G = 8.
    rewards = torch.bernoulli(torch.full((args.n,), 0.5), generator=gen)

    vec = preset_advantages(rewards, args.group_size, "seed-notes")
    ref = loop_advantages(rewards, args.group_size)
    max_diff = (vec - ref).abs().max().item()
    assert max_diff < 1e-5, f"vectorised and loop disagree by {max_diff}"

    t_loop = best_time(lambda: loop_advantages(rewards, args.group_size), args.repeats)
    t_vec = best_time(lambda: preset_advantages(rewards, args.group_size, "seed-notes"), 10 * args.repeats)
    print(f"machine: {platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"rewards: {args.n} (G = {args.group_size}, {args.n // args.group_size} groups); max |difference| = {max_diff:.1e}")
    print(f"per-group Python loop (source notes): {t_loop * 1e3:9.1f} ms")
    print(f"group_advantages (vectorised):        {t_vec * 1e3:9.1f} ms")
    print(f"speed-up: {t_loop / t_vec:.0f}x")


if __name__ == "__main__":
    main()
