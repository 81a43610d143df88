"""Command line: ``python -m grpo_core.train [--algo grpo|rloo|ppo] [--task sort] [--steps 80] [--seed 0] [--device cpu] [--gpu-config] [--set key=value ...]``.

Trains the base model on the task with GRPO, RLOO (leave-one-out baseline) or PPO (critic and
GAE), prints progress to stderr, and ends with one JSON line on stdout: held-out success before
and after, wall seconds (warm-up excluded), peak memory, bytes of model state, samples and tokens
drawn, parameter counts, and the configuration. ``--gpu-config`` starts from the larger
configuration of :func:`grpo_core.training.trainer.gpu_config` (chosen automatically when CUDA is present
and ``--cpu-config`` is not given).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import sys
import time

import torch

from .trainer import ALGOS, GRPOConfig, gpu_config, make_trainer, pick_device, pretrain_base, state_bytes


class _Parser(argparse.ArgumentParser):
    """argparse, but an error is one line on stderr (no usage block) and exit code 2."""

    def error(self, message):
        _fail(message)


def _fail(message: str):
    print(f"python -m grpo_core.train: error: {' '.join(str(message).split())}", file=sys.stderr)
    raise SystemExit(2)


def _parse_value(key: str, text: str, current):
    """The value of ``--set key=text`` in the type of the field's current value."""
    low = text.strip().lower()
    if isinstance(current, bool):
        if low in ("1", "true", "yes"):
            return True
        if low in ("0", "false", "no"):
            return False
        raise ValueError(f"--set {key}={text!r}: expected true or false")
    if low == "none":
        return None
    kinds = {int: "an int", float: "a number", str: "a string"}
    if current is None:  # an optional field: an int if it reads as one, else a float, else text
        for kind in (int, float):
            try:
                return kind(text)
            except ValueError:
                pass
        return text
    for kind in (int, float):
        if type(current) is kind:
            try:
                return kind(text)
            except ValueError:
                raise ValueError(f"--set {key}={text!r}: expected {kinds[kind]}") from None
    return text


def config_from_args(argv=None) -> tuple[GRPOConfig, argparse.Namespace]:
    """The configuration the command line asks for, checked: any problem exits with one line."""
    parser = _Parser(prog="python -m grpo_core.train", description=__doc__.splitlines()[0])
    parser.add_argument("--task", default=None, help="sort or add (default: sort)")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda if available)")
    parser.add_argument("--algo", default="grpo", choices=sorted(ALGOS))
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--gpu-config", action="store_true", help="the larger configuration (default when CUDA is present)")
    size.add_argument("--cpu-config", action="store_true", help="the default small configuration even on a GPU")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a GRPOConfig field")
    parser.add_argument("--quiet", action="store_true", help="print only the final JSON line")
    args = parser.parse_args(argv)
    try:
        use_gpu_config = args.gpu_config or (not args.cpu_config and pick_device(args.device).type == "cuda")
        cfg = gpu_config() if use_gpu_config else GRPOConfig()
        cfg.seed, cfg.device, cfg.algo = args.seed, args.device, args.algo
        if args.task is not None:
            cfg.task = args.task
            if args.task != "sort":
                cfg.task_size = None
        if args.steps is not None:
            cfg.steps = args.steps
        fields = {f.name for f in dataclasses.fields(GRPOConfig)}
        for item in args.set:
            key, sep, value = item.partition("=")
            key = key.strip()
            if not sep or key not in fields:
                raise ValueError(f"--set {item!r}: expected KEY=VALUE with KEY one of {sorted(fields)}")
            setattr(cfg, key, _parse_value(key, value, getattr(cfg, key)))
        cfg.check()
    except (ValueError, TypeError) as err:
        _fail(err)
    return cfg, args


def main(argv=None) -> dict:
    """Train as the command line asks; print one JSON line. Any error is one line on stderr and
    exit code 2, never a traceback (Ctrl-C exits 130)."""
    cfg, args = config_from_args(argv)
    try:
        return _train(cfg, args)
    except KeyboardInterrupt:
        print("python -m grpo_core.train: interrupted", file=sys.stderr)
        raise SystemExit(130) from None
    except (ValueError, TypeError, RuntimeError, OSError, MemoryError) as err:
        _fail(f"{type(err).__name__}: {err}")


def _train(cfg: GRPOConfig, args) -> dict:
    say = (lambda *a: None) if args.quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))
    base = pretrain_base(cfg, log=say)
    trainer = make_trainer(cfg, base=base, log=say)
    if trainer.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    before = trainer.evaluate()
    say(f"{cfg.algo} on {cfg.task}: base model held-out success {before:.3f} on {trainer.device}")
    t0 = time.perf_counter()

    def progress(rec):
        if rec["step"] % 10 == 0 or rec["step"] == cfg.steps:
            say(f"step {rec['step']:4d}  reward {rec['reward_mean']:.3f}  zero-std {rec['zero_std_frac']:.2f}  "
                f"entropy {rec['entropy']:.3f}  {time.perf_counter() - t0:6.1f} s")

    trainer.train(callback=progress)
    wall = time.perf_counter() - t0
    after = trainer.evaluate()
    peak = (torch.cuda.max_memory_allocated() if trainer.device.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    result = {
        "task": cfg.task,
        "algo": cfg.algo,
        "seed": cfg.seed,
        "device": str(trainer.device),
        "heldout_before": round(before, 4),
        "heldout_after": round(after, 4),
        "wall_s": round(wall, 2),
        "peak_memory_mb": round(peak / 2**20, 1),
        "peak_memory_kind": "cuda allocated" if trainer.device.type == "cuda" else "process max RSS",
        "state_mb": round(state_bytes(trainer)["total"] / 2**20, 3),
        "samples": trainer.samples,
        "rollout_tokens": trainer.tokens["rollout"],
        "steps": cfg.steps,
        "params": trainer.policy.n_params(),
        "trainable_params": trainer.n_trainable(),
        "config": dataclasses.asdict(cfg),
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
