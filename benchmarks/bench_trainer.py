"""Benchmark: rollout and update throughput of the trainer on its default configuration.

For each algorithm (GRPO, and PPO with its critic), runs ``--warmup`` steps that are not timed,
then ``--steps`` timed steps, and prints completion tokens per second in the rollout (batched
generation of all B x G answers, the reward, and the pi_old / pi_ref log-probabilities) and in the
update (mu passes of forward, backward and optimiser step; PPO's include the critic's), plus the
share of a step spent in the rollout. The base model comes from the on-disk cache (trained once).

Run: python benchmarks/bench_trainer.py [--steps 10] [--device cpu]
"""

from __future__ import annotations

import argparse
import time

import torch

from grpo_core.training.trainer import GRPOConfig, make_trainer, pretrain_base


def measure(algo: str, steps: int, warmup: int, device: str | None) -> dict:
    cfg = GRPOConfig(algo=algo, device=device)
    trainer = make_trainer(cfg, base=pretrain_base(cfg))
    for _ in range(warmup):
        trainer.step()
    roll_tok0, upd_tok0 = trainer.tokens["rollout"], trainer.tokens["update"]
    t0 = time.perf_counter()
    records = [trainer.step() for _ in range(steps)]
    wall = time.perf_counter() - t0
    rollout_s = sum(r["rollout_s"] for r in records)
    update_s = sum(r["step_s"] - r["rollout_s"] for r in records)
    return {
        "algo": algo,
        "device": str(trainer.device),
        "rollout_tok_s": (trainer.tokens["rollout"] - roll_tok0) / rollout_s,
        "update_tok_s": (trainer.tokens["update"] - upd_tok0) / update_s,
        "rollout_share": rollout_s / (rollout_s + update_s),
        "step_ms": 1000 * wall / steps,
        "samples_per_step": cfg.prompts_per_step * cfg.G,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--device", default=None)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; default GRPOConfig "
          f"({GRPOConfig().prompts_per_step} prompts x G={GRPOConfig().G}, mu={GRPOConfig().mu})")
    print(f"{'algo':5s} {'device':6s} {'rollout tok/s':>14s} {'update tok/s':>13s} {'rollout share':>14s} {'ms/step':>8s}")
    for algo in ("grpo", "ppo"):
        m = measure(algo, args.steps, args.warmup, args.device)
        print(f"{m['algo']:5s} {m['device']:6s} {m['rollout_tok_s']:14,.0f} {m['update_tok_s']:13,.0f} "
              f"{m['rollout_share']:14.0%} {m['step_ms']:8.0f}")


if __name__ == "__main__":
    main()
