"""Figures of training runs and the live view while one trains (the trainer chapter).

- :func:`curves_figure`: per-step metrics of one or several runs (:data:`grpo_core.training.runs.CURVES`);
- :func:`success_figure`: held-out success against samples, wall time or step;
- :func:`train_live`: :func:`grpo_core.training.runs.run` with a progress bar and curves that
  update while it trains (in the book build, or with no kernel, it just runs).
"""

from __future__ import annotations

import dataclasses
import math
import time

from ..training.runs import CURVES, RunResult, run
from ..training.trainer import GRPOConfig
from .interactive import in_book_build, in_colab
from .plots import fast_figure, style

__all__ = ["curves_figure", "success_figure", "train_live"]


def _finite(xs):
    return [None if (x is None or (isinstance(x, float) and math.isnan(x))) else x for x in xs]


def curves_figure(runs: dict, metrics=("reward_mean", "entropy", "zero_std_frac", "clip_frac"), *, title: str | None = None):
    """One panel per metric of :data:`CURVES` against the step, one line per run.
    ``runs``: ``{label: RunResult}`` (or a single RunResult)."""
    from plotly.subplots import make_subplots

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


def train_live(cfg: GRPOConfig, *, eval_every: int = 10, metrics=("reward_mean", "entropy", "zero_std_frac", "clip_frac"),
               redraw_every: int = 20) -> RunResult:
    """:func:`run` while showing its progress and the curves of ``metrics`` as they grow.

    - In Jupyter (not Colab): a progress bar and a ``FigureWidget`` updated after every step.
    - In Colab: no widgets (Colab's custom widget manager is what fails there, see
      :mod:`grpo_core.viz._compat`): a progress line and the curves as a plain plotly figure, two
      outputs updated in place through display handles, the figure every ``redraw_every`` steps
      and at the end.
    - In the book build (or with no IPython kernel) nothing is shown while training; afterwards,
      call :func:`curves_figure` on the result for the static figure.
    """
    if not (isinstance(redraw_every, int) and redraw_every >= 1):
        raise ValueError(f"`redraw_every` must be a whole number >= 1; got {redraw_every!r}.")
    try:
        from IPython import get_ipython
        kernel = get_ipython() is not None and hasattr(get_ipython(), "kernel")
    except ImportError:
        kernel = False
    if in_book_build() or not kernel:
        return run(cfg, eval_every=eval_every)
    if in_colab():
        return _train_handles(cfg, eval_every, metrics, redraw_every)

    import ipywidgets as w
    import plotly.graph_objects as go
    from IPython.display import display

    bar = w.IntProgress(value=0, min=0, max=cfg.steps, description="step 0", layout=w.Layout(width="60%"))
    label = w.Label("")
    partial = _partial(cfg)
    fig = go.FigureWidget(curves_figure({cfg.algo: partial}, metrics))
    display(w.VBox([w.HBox([bar, label]), fig]))
    t0 = time.perf_counter()

    def update(record, trainer):
        bar.value = record["step"]
        bar.description = f"step {record['step']}"
        label.value = f"reward {record['reward_mean']:.2f}   {time.perf_counter() - t0:.0f} s"
        partial.history = trainer.history
        steps = [rec["step"] for rec in trainer.history]
        with fig.batch_update():  # traces are in the order of ``metrics``
            for trace, m in zip(fig.data, metrics):
                trace.x, trace.y = steps, _finite(partial.series(m))

    return run(cfg, eval_every=eval_every, callback=update)


def _partial(cfg: GRPOConfig) -> RunResult:
    return RunResult(config=dataclasses.asdict(cfg), history=[], evals=[], wall_s=0.0, state={}, params=0,
                     trainable_params=0, rollout_tokens=0, update_tokens=0)


class _Line:
    """A progress line for a display handle (plain text, and HTML for notebook front ends)."""

    def __init__(self, text: str):
        self.text = text

    def _repr_mimebundle_(self, include=None, exclude=None):
        import html

        return {"text/plain": self.text, "text/html": f"<pre style='margin:0'>{html.escape(self.text)}</pre>"}


def _train_handles(cfg: GRPOConfig, eval_every: int, metrics, redraw_every: int) -> RunResult:
    """The Colab view of :func:`train_live`: two outputs updated through display handles."""
    from IPython.display import display

    from ._compat import Bundle

    partial = _partial(cfg)
    line = display(_Line(f"step 0/{cfg.steps}"), display_id=True)
    view = display(Bundle(curves_figure({cfg.algo: partial}, metrics)), display_id=True)
    t0 = time.perf_counter()

    def update(record, trainer):
        step = record["step"]
        line.update(_Line(f"step {step}/{cfg.steps}   reward {record['reward_mean']:.2f}   {time.perf_counter() - t0:.0f} s"))
        if step % redraw_every == 0 or step == cfg.steps:
            partial.history = trainer.history
            view.update(Bundle(curves_figure({cfg.algo: partial}, metrics)))

    return run(cfg, eval_every=eval_every, callback=update)
