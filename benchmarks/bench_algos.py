"""Benchmark: GRPO, RLOO and PPO on the trainer's default task and budget, over several seeds.

Each run starts from the same base model of its seed (the supervised warm-up, cached on disk) and
draws the same number of completions per step (32 prompts x G = 8 for GRPO and RLOO; 256
prompts x 1 for PPO). Prints, per run, held-out success before and after, training wall time
(warm-up and evaluations excluded), the first sample count at which held-out success reached 0.9,
bytes of model state (weights of every model, gradients, Adam moments) and trainable parameters;
then the mean over seeds. Runs are not cached: every figure is measured now.

Run: python benchmarks/bench_algos.py [--seeds 0 1 2 3 4] [--steps 80]
Target (issue 6): GRPO reaches >= 0.9 held-out success within 90 s on 2 cores for >= 4 of 5 seeds.
"""

from __future__ import annotations

import argparse
import resource
import statistics

import torch

from grpo_core.training.runs import run
from grpo_core.training.trainer import GRPOConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--steps", type=int, default=GRPOConfig().steps)
    parser.add_argument("--algos", nargs="+", default=["grpo", "rloo", "ppo"])
    parser.add_argument("--device", default=None)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {args.steps} steps of the default config")
    print(f"{'algo':5s} {'seed':>4s} {'before':>7s} {'after':>6s} {'wall s':>7s} {'samples to 0.9':>15s} "
          f"{'state MB':>9s} {'trainable':>10s}")
    table: dict[str, list] = {a: [] for a in args.algos}
    for seed in args.seeds:
        for algo in args.algos:
            res = run(GRPOConfig(algo=algo, seed=seed, steps=args.steps, device=args.device), cache=False)
            hit = res.first_reaching(0.9)
            table[algo].append((res, hit))
            print(f"{algo:5s} {seed:4d} {res.before:7.3f} {res.after:6.3f} {res.wall_s:7.1f} "
                  f"{hit['samples'] if hit else '-':>15} {res.state['total'] / 2**20:9.2f} {res.trainable_params:10,d}",
                  flush=True)
    print("\nmean over seeds")
    for algo, rows in table.items():
        after = statistics.mean(r.after for r, _ in rows)
        wall = statistics.mean(r.wall_s for r, _ in rows)
        reached = sum(r.after >= 0.9 and r.wall_s <= 90 for r, _ in rows)
        hits = [h["samples"] for _, h in rows if h]
        print(f"{algo:5s} after {after:.3f}  wall {wall:5.1f} s  >= 0.9 within 90 s: {reached}/{len(rows)}  "
              f"median samples to 0.9: {statistics.median(hits) if hits else '-'}  "
              f"state {rows[0][0].state['total'] / 2**20:.2f} MB")
    print(f"peak RSS of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
