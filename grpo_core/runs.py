"""Training runs for the trainer chapter: run, cache, watch live, plot and compare.

- :func:`run`: train one configuration (GRPO, RLOO or PPO) and return a :class:`RunResult`: the
  per-step log, held-out success every ``eval_every`` steps against samples drawn and wall time,
  model-state bytes and parameter counts. Results can be cached on disk under a hash of the
  configuration *and of grpo_core's source code*, so a chapter executed twice (by nbval, then by
  the book build) trains once, and any change to the code trains again.
- :func:`train_live`: :func:`run` with a progress bar and curves that update every step in
  Jupyter (re-drawn every few steps in Colab); in the book build and outside a kernel it just runs.
- :func:`curves_figure`, :func:`success_figure`: the figures of the chapter.
- :func:`sweep`: one knob of the configuration over several values.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ._checks import check_int
from .trainer import GRPOConfig, _cache_dir, make_trainer, pretrain_base, state_bytes

__all__ = ["RunResult", "run", "train_live", "sweep", "source_digest", "curves_figure", "success_figure", "CURVES"]

#: The per-step metrics :func:`curves_figure` draws, with their axis titles.
CURVES = {
    "reward_mean": "mean reward (training batch)",
    "entropy": "entropy per token (nats)",
    "kl": "KL(pi_old || pi_ref) per token",
    "zero_std_frac": "share of groups with no spread",
    "clip_frac": "share of tokens clipped",
    "grad_norm": "gradient norm (before clipping)",
}


@dataclass
class RunResult:
    """One training run. ``evals``: dicts with ``step``, ``samples``, ``wall_s`` (training time
    so far, evaluations excluded) and ``heldout`` (success on the held-out set), starting at step 0.
    ``state``: :func:`grpo_core.trainer.state_bytes` at the end. ``cached``: loaded from disk."""

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


#: Modules that only present results (figures, widgets, the setup cell): left out of
#: :func:`source_digest`, so that editing them does not retrain every cached run.
PRESENTATION_ONLY = ("plots.py", "interactive.py", "notebook.py", "explorers/")


def source_digest() -> str:
    """A hash of grpo_core's ``.py`` files that can change a training result (all but
    :data:`PRESENTATION_ONLY`) and of the torch version: part of every cache key."""
    root = Path(__file__).parent
    h = hashlib.sha256(torch.__version__.encode())
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        if rel.startswith(PRESENTATION_ONLY):
            continue
        h.update(rel.encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def _cache_path(cfg: GRPOConfig, eval_every: int, device: str) -> Path:
    key = json.dumps(dict(cfg=dataclasses.asdict(cfg), eval_every=eval_every, device=device, src=source_digest()),
                     sort_keys=True)
    return _cache_dir() / "runs" / f"run-{hashlib.sha256(key.encode()).hexdigest()[:20]}.json"


def run(cfg: GRPOConfig, *, eval_every: int = 10, cache: bool = False, callback=None) -> RunResult:
    """Train ``cfg`` from its base model; evaluate on the held-out set at step 0, every
    ``eval_every`` steps and at the end. ``callback(record, trainer)`` after every step.
    With ``cache=True`` a result of the same configuration and the same grpo_core source is
    loaded instead (``callback`` is then not called)."""
    cfg = copy.deepcopy(cfg)
    cfg.check()
    check_int(eval_every, "eval_every")
    from .trainer import pick_device

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
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, allow_nan=True))
        tmp.replace(path)
    return result


def sweep(cfg: GRPOConfig, name: str, values, *, eval_every: int = 10, cache: bool = True) -> dict:
    """``{value: RunResult}``: ``cfg`` with field ``name`` set to each of ``values``."""
    if name not in {f.name for f in dataclasses.fields(GRPOConfig)}:
        raise ValueError(f"`name`={name!r} is not a GRPOConfig field.")
    return {v: run(dataclasses.replace(cfg, **{name: v}), eval_every=eval_every, cache=cache) for v in values}


# ------------------------------------------------------------------------------------- figures


def _finite(xs):
    return [None if (x is None or (isinstance(x, float) and math.isnan(x))) else x for x in xs]


def curves_figure(runs: dict, metrics=("reward_mean", "entropy", "zero_std_frac", "clip_frac"), *, title: str | None = None):
    """One panel per metric of :data:`CURVES` against the step, one line per run.
    ``runs``: ``{label: RunResult}`` (or a single RunResult)."""
    from plotly.subplots import make_subplots

    from .plots import style

    if isinstance(runs, RunResult):
        runs = {runs.algo: runs}
    for m in metrics:
        if m not in CURVES:
            raise ValueError(f"`metrics` has {m!r}; choose from {sorted(CURVES)}.")
    cols = 2
    rows = math.ceil(len(metrics) / cols)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[CURVES[m] for m in metrics],
                        horizontal_spacing=0.1, vertical_spacing=0.16)
    palette = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf", "#7f7f7f"]
    for k, (label, res) in enumerate(runs.items()):
        steps = [rec["step"] for rec in res.history]
        for j, m in enumerate(metrics):
            fig.add_scatter(x=steps, y=_finite(res.series(m)), mode="lines", name=str(label),
                            line=dict(color=palette[k % len(palette)], width=1.8), legendgroup=str(label),
                            showlegend=j == 0, row=j // cols + 1, col=j % cols + 1)
    for j in range(len(metrics)):
        fig.update_xaxes(title_text="step" if j >= len(metrics) - cols else None, row=j // cols + 1, col=j % cols + 1)
    return style(fig, height=260 * rows + 60, title=title)


def success_figure(runs: dict, *, x: str = "samples", title: str | None = None):
    """Held-out success against ``x`` ("samples", "wall_s" or "step"), one line per run."""
    from .plots import fast_figure

    if x not in ("samples", "wall_s", "step"):
        raise ValueError(f"`x`={x!r} is not known; choose 'samples', 'wall_s' or 'step'.")
    if isinstance(runs, RunResult):
        runs = {runs.algo: runs}
    names = {"samples": "completions sampled", "wall_s": "training wall time (s)", "step": "step"}
    data = [dict(type="scatter", x=[e[x] for e in res.evals], y=[e["heldout"] for e in res.evals],
                 mode="lines+markers", name=str(label)) for label, res in runs.items()]
    layout = dict(xaxis=dict(title=names[x]), yaxis=dict(title="held-out success", range=[0, 1.02]))
    return fast_figure(data, layout, height=360, title=title)


# ------------------------------------------------------------------------------------- live view


def train_live(cfg: GRPOConfig, *, eval_every: int = 10, metrics=("reward_mean", "entropy", "zero_std_frac", "clip_frac")) -> RunResult:
    """:func:`run` while showing a progress bar and the curves of ``metrics`` as they grow.

    In Jupyter the curves are a ``FigureWidget`` updated after every step; in Colab they are
    re-drawn every 5 steps. In the book build (or with no IPython kernel) nothing is shown while
    training; afterwards, call :func:`curves_figure` on the result for the static figure.
    """
    from .interactive import in_book_build, in_colab

    try:
        from IPython import get_ipython
        kernel = get_ipython() is not None and hasattr(get_ipython(), "kernel")
    except ImportError:
        kernel = False
    if in_book_build() or not kernel:
        return run(cfg, eval_every=eval_every)

    import ipywidgets as w
    import plotly.graph_objects as go
    from IPython.display import display

    from .interactive import _enable_colab_widgets

    colab = in_colab()
    if colab:
        _enable_colab_widgets()
    bar = w.IntProgress(value=0, min=0, max=cfg.steps, description="step 0", layout=w.Layout(width="60%"))
    label = w.Label("")
    partial = RunResult(config=dataclasses.asdict(cfg), history=[], evals=[], wall_s=0.0, state={}, params=0,
                        trainable_params=0, rollout_tokens=0, update_tokens=0)
    if colab:
        view = w.Output()
        fig = None
    else:
        fig = go.FigureWidget(curves_figure({cfg.algo: partial}, metrics))
        view = fig
    display(w.VBox([w.HBox([bar, label]), view]))
    t0 = time.perf_counter()

    def update(record, trainer):
        bar.value = record["step"]
        bar.description = f"step {record['step']}"
        label.value = f"reward {record['reward_mean']:.2f}   {time.perf_counter() - t0:.0f} s"
        partial.history = trainer.history
        if fig is not None:  # traces are in the order of ``metrics``
            steps = [rec["step"] for rec in trainer.history]
            with fig.batch_update():
                for trace, m in zip(fig.data, metrics):
                    trace.x, trace.y = steps, _finite(partial.series(m))
        elif record["step"] % 5 == 0 or record["step"] == cfg.steps:
            view.clear_output(wait=True)
            with view:
                display(curves_figure({cfg.algo: partial}, metrics))

    return run(cfg, eval_every=eval_every, callback=update)
