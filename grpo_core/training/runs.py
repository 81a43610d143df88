"""Training runs for the trainer chapter: run, cache and compare.

- :func:`run`: train one configuration (GRPO, RLOO or PPO) and return a :class:`RunResult`: the
  per-step log, held-out success every ``eval_every`` steps against samples drawn and wall time,
  model-state bytes and parameter counts. Results can be cached on disk under a hash of the
  configuration *and of grpo_core's source code* (:func:`grpo_core.training.cache.source_digest`,
  which leaves out the figures), so a chapter executed twice (by nbval, then by the book build)
  trains once, and any change to the code that trains trains again.
- :func:`sweep`: one knob of the configuration over several values.

The figures of runs and the live view while training are in :mod:`grpo_core.viz.curves`.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from .._checks import check_int
from .cache import cache_dir, source_digest
from .trainer import GRPOConfig, make_trainer, pick_device, pretrain_base, state_bytes

__all__ = ["RunResult", "run", "sweep", "CURVES"]

#: The per-step metrics that :func:`grpo_core.viz.curves_figure` can draw, with their axis titles.
CURVES = {
    "reward_mean": "mean reward (training batch)",
    "entropy": "entropy per token (nats)",
    "kl": "KL(pi_old || pi_ref) per token",
    "zero_std_frac": "share of groups with no spread",
    "clip_frac": "share of tokens clipped",
    "grad_norm": "gradient norm (before clipping)",
    "completion_len": "mean answer length (tokens)",
    "len_right": "mean length of the right answers (tokens)",
    "len_wrong": "mean length of the wrong answers (tokens)",
}


@dataclass
class RunResult:
    """One training run. ``evals``: dicts with ``step``, ``samples``, ``wall_s`` (training time
    so far, evaluations excluded) and ``heldout`` (success on the held-out set), starting at step 0.
    ``state``: :func:`grpo_core.training.trainer.state_bytes` at the end. ``cached``: loaded from disk."""

    config: dict
    history: list[dict]
    evals: list[dict]
    wall_s: float
    state: dict
    params: int
    trainable_params: int
    rollout_tokens: int
    update_tokens: int
    cached: bool = field(default=False, compare=False)

    @property
    def algo(self) -> str:
        return self.config["algo"]

    @property
    def before(self) -> float:
        return self.evals[0]["heldout"]

    @property
    def after(self) -> float:
        return self.evals[-1]["heldout"]

    def first_reaching(self, level: float) -> dict | None:
        """The first evaluation with held-out success >= ``level`` (None if never)."""
        return next((e for e in self.evals if e["heldout"] >= level), None)

    def trajectory(self) -> list[dict]:
        """The per-step log without its timings (NaN as None): equal for two runs that trained
        identically, whatever the machine's speed."""
        timing = ("rollout_s", "step_s", "wall_s")
        return [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in rec.items() if k not in timing}
                for rec in self.history]

    def series(self, key: str) -> list[float]:
        return [rec.get(key, float("nan")) for rec in self.history]


def _cache_path(cfg: GRPOConfig, eval_every: int, device: str) -> Path:
    key = json.dumps(dict(cfg=dataclasses.asdict(cfg), eval_every=eval_every, device=device, src=source_digest()),
                     sort_keys=True)
    return cache_dir() / "runs" / f"run-{hashlib.sha256(key.encode()).hexdigest()[:20]}.json"


def run(cfg: GRPOConfig, *, eval_every: int = 10, cache: bool = False, callback=None) -> RunResult:
    """Train ``cfg`` from its base model; evaluate on the held-out set at step 0, every
    ``eval_every`` steps and at the end. ``callback(record, trainer)`` after every step.
    With ``cache=True`` a result of the same configuration and the same grpo_core source is
    loaded instead (``callback`` is then not called)."""
    cfg = copy.deepcopy(cfg)
    cfg.check()
    check_int(eval_every, "eval_every")
    device = pick_device(cfg.device).type
    path = _cache_path(cfg, eval_every, device)
    if cache and path.is_file():
        data = json.loads(path.read_text())
        return RunResult(**data, cached=True)
    base = pretrain_base(cfg)
    trainer = make_trainer(cfg, base=base)
    evals = [dict(step=0, samples=0, wall_s=0.0, heldout=trainer.evaluate())]
    train_s = 0.0
    for _ in range(cfg.steps):
        t0 = time.perf_counter()
        record = trainer.step()
        train_s += time.perf_counter() - t0
        if record["step"] % eval_every == 0 or record["step"] == cfg.steps:
            evals.append(dict(step=record["step"], samples=trainer.samples, wall_s=train_s, heldout=trainer.evaluate()))
        if callback is not None:
            callback(record, trainer)
    result = RunResult(
        config=dataclasses.asdict(cfg),
        history=trainer.history,
        evals=evals,
        wall_s=train_s,
        state=state_bytes(trainer),
        params=trainer.policy.n_params(),
        trainable_params=trainer.n_trainable(),
        rollout_tokens=trainer.tokens["rollout"],
        update_tokens=trainer.tokens["update"],
    )
    if cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        data = {k: v for k, v in dataclasses.asdict(result).items() if k != "cached"}
        tmp = path.with_suffix(f".tmp{os.getpid()}")  # two chapters executed at once may write the same run
        tmp.write_text(json.dumps(data, allow_nan=True))
        tmp.replace(path)
    return result


def sweep(cfg: GRPOConfig, name: str, values, *, eval_every: int = 10, cache: bool = True) -> dict:
    """``{value: RunResult}``: ``cfg`` with field ``name`` set to each of ``values``."""
    if name not in {f.name for f in dataclasses.fields(GRPOConfig)}:
        raise ValueError(f"`name`={name!r} is not a GRPOConfig field.")
    return {v: run(dataclasses.replace(cfg, **{name: v}), eval_every=eval_every, cache=cache) for v in values}
