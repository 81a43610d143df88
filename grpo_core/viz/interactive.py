"""Explorers: one definition of an interactive figure, shown live in a kernel and static in the book.

An :class:`Explorer` is a list of named controls (:class:`Slider`, :class:`Choice`) and a pure
function from control values to a plotly figure. :meth:`Explorer.show` picks how to show it:

- **in the built book** (``GRPO_BOOK_BUILD=1``, set by ``_ext/grpo_book.py``):
  :meth:`Explorer.static_figure`, a plotly figure with its own sliders and dropdowns over a
  precomputed grid of the control values. Every grid point is a frame of the figure; a few lines
  of JavaScript in the book renderer (:mod:`grpo_core.viz.plots`) swap in the frame of the current
  combination when a control moves. No kernel, no network, no ipywidgets on the page.
- **in Colab**, and anywhere with ``show(mode="static")``: the same static figure as a ``text/html``
  output that loads plotly.js itself (:class:`grpo_core.viz._compat.StaticView`), because Colab's
  custom widget manager fails on what the live form needs (see :mod:`grpo_core.viz._compat`).
- **in a live kernel** (Jupyter, JupyterLab, VS Code; Colab with ``mode="live"``): :meth:`Explorer.live`, ipywidgets
  controls that rebuild the figure on every change. Outside Colab the figure is a
  ``go.FigureWidget`` updated in place inside ``batch_update``; in Colab, where third-party
  widgets need the custom widget manager (enabled here) and ``FigureWidget`` is unreliable, the
  figure is re-rendered into an ``ipywidgets.Output``.

Every explorer is registered in :data:`EXPLORERS` (:func:`register`), so tests and
``benchmarks/bench_explorers.py`` iterate over all of them; :func:`grpo_core.viz.explorers.all_explorers`
imports the modules that define them.

A figure function must not raise for any value its controls allow: extreme settings should give
a figure with an annotation that explains (see :func:`grpo_core.viz.plots.note`). As a safety net,
a ``ValueError`` from ``grpo_core``'s input checks becomes such a figure too.
"""

from __future__ import annotations

import itertools
import json
import math
import os
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import plotly.graph_objects as go
import plotly.io as pio

from .plots import BOOK_BUILD_ENV, message_figure

__all__ = [
    "Slider",
    "Choice",
    "Explorer",
    "LiveExplorer",
    "EXPLORERS",
    "register",
    "in_colab",
    "in_book_build",
    "enable_colab_widgets",
]

#: Layout keys that belong to the whole static figure, not to one grid point.
_FRAME_LAYOUT_DROP = ("template", "margin", "height", "width", "sliders", "updatemenus", "meta")

#: The errors a figure function may raise at an extreme setting; :meth:`Explorer.build` turns them
#: into a figure that explains. (Anything else is a bug and should fail loudly in the tests.)
FIGURE_ERRORS = (ValueError, TypeError, ArithmeticError, IndexError, KeyError, RuntimeError)

_SLIDER_BAND_PX = 80  # vertical space one static slider needs under the plot
_MENU_BAND_PX = 45  # vertical space the row of dropdowns needs above the plot


def in_book_build() -> bool:
    """True while the book is being built (the Sphinx extension sets ``GRPO_BOOK_BUILD=1``)."""
    return os.environ.get(BOOK_BUILD_ENV) == "1"


def in_colab() -> bool:
    """True inside Google Colab (``google.colab`` importable)."""
    try:
        import google.colab  # noqa: F401
    except ImportError:
        return False
    return True


_colab_manager_enabled = False


def enable_colab_widgets() -> None:
    """Turn on Colab's custom widget manager (once): Colab renders only its built-in widgets
    unless it is on. Outside Colab this raises ImportError (``google.colab`` is missing)."""
    global _colab_manager_enabled
    if _colab_manager_enabled:
        return
    from google.colab import output

    output.enable_custom_widget_manager()
    _colab_manager_enabled = True


# --------------------------------------------------------------------------------------- controls


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


#: Live controls' sizes in px: a slider's track and its value readout, a dropdown's box. The
#: label's width comes on top (:func:`control_layout`), so no label can squeeze a track.
TRACK_PX = 240
READOUT_PX = 70
MENU_PX = 200
_CHAR_PX = 7.5  # a generous width of one character of the widgets' 13 px sans-serif font


def label_px(label: str) -> int:
    """A width in px that holds ``label`` in the widgets' font (with room to spare)."""
    return int(math.ceil(len(label) * _CHAR_PX)) + 12


def control_layout(label: str, body_px: int):
    """``(style, layout)`` of a live control: the description gets :func:`label_px` of its
    label, the whole control that plus ``body_px`` (the track and readout, or the dropdown)."""
    import ipywidgets as w

    lab = label_px(label)
    return {"description_width": f"{lab}px"}, w.Layout(width=f"{lab + body_px}px", min_width=f"{lab + body_px}px")


@dataclass(frozen=True)
class Slider:
    """A numeric control: ``min..max`` in steps of ``step`` live; ``grid`` values in the static book.

    ``grid`` defaults to every step when that is at most 11 values, else 9 evenly spaced values
    snapped to the step; the default is always on the grid. ``live_on_grid=True`` makes the live
    widget a selection slider over the grid values only (for uneven grids such as 0, 0.01, 0.1, 1,
    or for figure functions slow enough that their results are cached per grid point).
    """

    name: str
    min: float
    max: float
    step: float
    default: float
    label: str | None = None
    grid: Sequence[float] | None = None
    live_on_grid: bool = False

    def __post_init__(self):
        if not (self.min <= self.default <= self.max):
            raise ValueError(f"Slider `{self.name}`: default {self.default} is outside [{self.min}, {self.max}].")
        if self.step <= 0:
            raise ValueError(f"Slider `{self.name}`: step must be > 0; got {self.step}.")

    @property
    def integer(self) -> bool:
        return all(isinstance(v, int) and not isinstance(v, bool) for v in (self.min, self.max, self.step, self.default))

    def _snap(self, v: float):
        k = round((v - self.min) / self.step)
        out = self.min + k * self.step
        return int(out) if self.integer else round(out, 10)

    def values(self) -> list:
        """The static grid, sorted, containing the default."""
        if self.grid is not None:
            vals = list(self.grid)
        else:
            n_steps = int(round((self.max - self.min) / self.step))
            if n_steps + 1 <= 11:
                vals = [self._snap(self.min + k * self.step) for k in range(n_steps + 1)]
            else:
                vals = [self._snap(self.min + (self.max - self.min) * k / 8) for k in range(9)]
        if self.default not in vals:
            vals.append(self.default)
        return sorted(set(vals))

    def ends(self) -> list:
        return [self.min, self.max]

    def problem(self, value) -> str | None:
        """Why ``value`` is not a setting of this slider (None if it is one)."""
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"it takes a number from {_fmt(self.min)} to {_fmt(self.max)}"
        if not math.isfinite(value) or not self.min <= value <= self.max:
            return f"it takes values from {_fmt(self.min)} to {_fmt(self.max)}"
        if self.integer and value != int(value):
            return f"it takes whole numbers from {self.min} to {self.max}"
        return None

    def widget(self, continuous_update: bool):
        """The live control; its label gets its own measured width, so the track keeps
        :data:`TRACK_PX` whatever the label's length (:func:`control_layout`)."""
        import ipywidgets as w

        label = self.label or self.name
        style, layout = control_layout(label, TRACK_PX + READOUT_PX)
        if self.live_on_grid:
            return w.SelectionSlider(
                options=[(_fmt(v), v) for v in self.values()],
                value=self.default,
                description=label,
                                continuous_update=continuous_update,
                style=style,
                layout=layout,
            )
        cls = w.IntSlider if self.integer else w.FloatSlider
        kwargs = dict(
            min=self.min,
            max=self.max,
            step=self.step,
            value=self.default,
            description=label,
            continuous_update=continuous_update,
            style=style,
            layout=layout,
        )
        if not self.integer:
            digits = max(0, -math.floor(math.log10(self.step))) if self.step < 1 else 0
            kwargs["readout_format"] = f".{digits}f"
        return cls(**kwargs)


@dataclass(frozen=True)
class Choice:
    """A control with named options; ``options`` maps a shown label to the value passed on."""

    name: str
    options: dict[str, Any]
    default: str
    label: str | None = None

    def __post_init__(self):
        if self.default not in self.options:
            raise ValueError(f"Choice `{self.name}`: default {self.default!r} is not one of {list(self.options)}.")

    def values(self) -> list:
        return list(self.options.values())

    def ends(self) -> list:
        return self.values()

    def problem(self, value) -> str | None:
        """Why ``value`` is not one of this control's options (None if it is one)."""
        try:
            if value in self.values():
                return None
        except TypeError:  # an unhashable or incomparable value
            pass
        return "choose one of " + ", ".join(self.options)

    @property
    def default_value(self):
        return self.options[self.default]

    def label_of(self, value) -> str:
        for k, v in self.options.items():
            if v == value:
                return k
        return _fmt(value)

    def widget(self, continuous_update: bool):
        import ipywidgets as w

        style, layout = control_layout(self.label or self.name, MENU_PX)
        return w.Dropdown(
            options=list(self.options.items()),
            value=self.default_value,
            description=self.label or self.name,
            style=style,
            layout=layout,
        )


def _default(control) -> Any:
    return control.default_value if isinstance(control, Choice) else control.default


# --------------------------------------------------------------------------------------- explorer


@dataclass
class Explorer:
    """Controls plus a pure function ``figure(**values) -> go.Figure``.

    Args:
        name: registry key, e.g. ``"normalisation"``.
        title: one line saying what the reader explores.
        controls: the controls, in the order they are shown.
        figure: builds the figure from one value per control (keyword arguments named like the
            controls). Must be fast (the live widgets call it on every move) and must not raise
            for values the controls allow.
        continuous_update: live sliders redraw while dragging (True) or on release (False).
            Explorers whose figure function trains something (hundreds of milliseconds) set
            False; ``benchmarks/bench_explorers.py`` holds them to a looser target.
    """

    name: str
    title: str
    controls: list
    figure: Callable[..., go.Figure]
    continuous_update: bool = True
    description: str = ""

    def __post_init__(self):
        names = [c.name for c in self.controls]
        if len(set(names)) != len(names):
            raise ValueError(f"Explorer `{self.name}`: control names must be unique; got {names}.")

    def defaults(self) -> dict:
        return {c.name: _default(c) for c in self.controls}

    def build(self, **values) -> go.Figure:
        """The figure for ``values`` (missing controls take their defaults).

        Never raises for a value of a control: a value outside the control's range (or not one of
        its options) gives a figure that says which values it takes, and an error of the figure
        function (``grpo_core``'s input checks, or arithmetic at an extreme setting) becomes a
        figure whose annotation states the message, so a widget never shows a traceback. Only an
        unknown control name is an error (a bug in the caller, not a setting).
        """
        unknown = set(values) - {c.name for c in self.controls}
        if unknown:
            raise ValueError(f"Explorer `{self.name}` has no control(s) {sorted(unknown)}; controls: {[c.name for c in self.controls]}.")
        for control in self.controls:
            if control.name in values:
                problem = control.problem(values[control.name])
                if problem:
                    return message_figure(f"No figure for {control.label or control.name} = {values[control.name]!r}: {problem}")
        args = {**self.defaults(), **values}
        try:
            return self.figure(**args)
        except FIGURE_ERRORS as err:
            return message_figure(f"These settings have no figure: {err}")

    # ------------------------------------------------------------------------------- static

    def grid_shape(self) -> list[int]:
        return [len(c.values()) for c in self.controls]

    def static_figure(self) -> go.Figure:
        """A plotly figure with sliders/dropdowns over the precomputed grid of every control.

        Each distinct figure of the grid is stored once as a frame; ``layout.meta.grpo_explorer``
        maps every combination of control indices to its frame. The book renderer's script reads
        that map and redraws on ``plotly_sliderchange`` / ``plotly_buttonclicked``.
        """
        grids = [c.values() for c in self.controls]
        names = [c.name for c in self.controls]
        active = [grid.index(_default(c)) for c, grid in zip(self.controls, grids)]

        default_combo = tuple(grid[i] for grid, i in zip(grids, active))
        frames: list[dict] = []
        frame_of: list[int] = []
        seen: dict[str, int] = {}
        base = None
        for combo in itertools.product(*grids):
            fig_json = json.loads(pio.to_json(self.build(**dict(zip(names, combo))), validate=False))
            if combo == default_combo:
                base = fig_json
            layout = {k: v for k, v in fig_json.get("layout", {}).items() if k not in _FRAME_LAYOUT_DROP}
            frame = {"data": fig_json.get("data", []), "layout": layout}
            key = json.dumps(frame, sort_keys=True)
            if key not in seen:
                seen[key] = len(frames)
                frames.append({"name": str(len(frames)), **frame})
            frame_of.append(seen[key])

        fig = go.Figure(base)
        sliders, menus, kinds = [], [], []
        n_menus = sum(isinstance(c, Choice) for c in self.controls)
        for k, (control, grid) in enumerate(zip(self.controls, grids)):
            if isinstance(control, Choice):
                kinds.append(["menu", len(menus)])
                menus.append(
                    dict(
                        type="dropdown",
                        direction="down",
                        active=active[k],
                        buttons=[
                            dict(label=f"{control.label or control.name}: {control.label_of(v)}", method="skip", args=[None])
                            for v in grid
                        ],
                        x=len(menus) / n_menus,
                        xanchor="left",
                        y=1.0,
                        yanchor="bottom",
                        pad=dict(t=0, b=6),
                        showactive=True,
                    )
                )
            else:
                kinds.append(["slider", len(sliders)])
                sliders.append(
                    dict(
                        active=active[k],
                        currentvalue=dict(prefix=f"{control.label or control.name}: "),
                        steps=[dict(label=_fmt(v), method="skip", args=[None]) for v in grid],
                        pad=dict(t=40 + _SLIDER_BAND_PX * len(sliders), b=0),
                        len=1.0,
                        x=0.0,
                        y=0.0,
                        yanchor="top",
                    )
                )
        height = (fig.layout.height or 450) + _SLIDER_BAND_PX * len(sliders) + (_MENU_BAND_PX if menus else 0)
        margin = fig.layout.margin.to_plotly_json() if fig.layout.margin else {}
        margin["b"] = (margin.get("b") or 45) + _SLIDER_BAND_PX * len(sliders)
        margin["t"] = (margin.get("t") or 30) + (_MENU_BAND_PX if menus else 0)
        fig.update_layout(
            sliders=sliders,
            updatemenus=menus,
            height=height,
            margin=margin,
            meta=dict(grpo_explorer=dict(name=self.name, shape=[len(g) for g in grids], controls=kinds, active=active, frame_of=frame_of)),
        )
        fig.frames = [go.Frame(f) for f in frames]
        return fig

    # ------------------------------------------------------------------------------- live

    def live(self, mode: str | None = None) -> "LiveExplorer":
        """ipywidgets controls bound to the figure; ``mode`` is ``"figurewidget"`` or ``"rerender"``
        (default: ``"rerender"`` in Colab, ``"figurewidget"`` elsewhere)."""
        return LiveExplorer(self, mode)

    def show(self, mode: str | None = None) -> None:
        """Display the explorer: ``mode="static"`` (the book's static explorer, plotly sliders over
        precomputed frames, no widgets), ``"live"`` (:meth:`live`), or None for the default of
        :func:`grpo_core.viz._compat.default_show_mode`: static in Colab, live elsewhere. The book
        build always shows the static figure, drawn by the book's renderer (see the module doc)."""
        from IPython.display import display

        from ._compat import SHOW_MODES, StaticView, default_show_mode

        if mode is not None and mode not in SHOW_MODES:
            raise ValueError(f"`mode`={mode!r} is not known; choose 'static', 'live' or None.")
        if in_book_build():
            display(self.static_figure())  # drawn by the book renderer (plots.BookRenderer)
        elif (mode or default_show_mode(colab=in_colab(), book_build=False)) == "static":
            display(StaticView(self.static_figure()))
        else:
            display(self.live().container)


class LiveExplorer:
    """The live form of an :class:`Explorer`: ``controls`` (name -> widget), ``container`` to display,
    ``figure`` (the ``FigureWidget``, or the last built ``go.Figure`` in re-render mode).

    In ``figurewidget`` mode a control move costs one message to the front end, with only what
    changed (:func:`_replace_figure`); the figure of each visited combination of control values
    is kept (up to :data:`CACHE_SIZE` of them), so going back costs no figure function call; and
    while the front end has not yet drawn the last update, further moves only record their values:
    the latest is drawn when the front end reports the update done (intermediate values of a fast
    drag are dropped, never queued). ``updates`` counts the figures sent, ``dropped`` the values
    skipped that way, ``built`` the figure function calls.
    """

    #: how many figures (per explorer shown) the live form keeps
    CACHE_SIZE = 256
    #: an update the front end has not confirmed after this many seconds no longer holds back
    #: the next one (a closed view, or a front end that never answers)
    IN_FLIGHT_S = 1.0

    def __init__(self, explorer: Explorer, mode: str | None = None):
        import ipywidgets as w

        colab = in_colab()
        if mode is None:
            mode = "rerender" if colab else "figurewidget"
        if mode not in ("figurewidget", "rerender"):
            raise ValueError(f"`mode`={mode!r} is not known; choose 'figurewidget' or 'rerender'.")
        if colab:
            enable_colab_widgets()
        self.explorer = explorer
        self.mode = mode
        self.controls = {c.name: c.widget(explorer.continuous_update) for c in explorer.controls}
        self.updates = 0
        self.dropped = 0
        self.built = 0
        self._cache: dict = {}
        self._pending: dict | None = None
        self._sent_at = None  # time.monotonic() of the last update not yet confirmed
        self._frontend = False  # a front end has drawn the figure at least once
        first = self._build(self.values())
        if mode == "figurewidget":
            self._shown = _figure_json(first)
            self.figure = go.FigureWidget(first)
            self.figure._config = {**(self.figure._config or {}), "responsive": True}
            self.figure.observe(self._on_frontend_done, names=["_js2py_layoutDelta"])
            views = [self.figure, _fit_width_widget()]
        else:
            self.figure = first
            self.output = w.Output(layout=w.Layout(width="100%"))
            views = [self.output]
            self._render()
        controls = w.HBox(list(self.controls.values()), layout=w.Layout(flex_flow="row wrap", width="100%"))
        controls.add_class("grpo-live-controls")
        self.container = w.VBox([w.HTML(f"<b>{explorer.title}</b>"), controls, *views], layout=w.Layout(width="100%"))
        self.container.add_class("grpo-live")
        for widget in self.controls.values():
            widget.observe(self._on_change, names="value")

    def values(self) -> dict:
        return {name: widget.value for name, widget in self.controls.items()}

    def _key(self, values: dict):
        try:
            key = tuple(values[c.name] for c in self.explorer.controls)
            hash(key)
            return key
        except TypeError:  # an unhashable option value: not cached
            return None

    def _build(self, values: dict) -> go.Figure:
        key = self._key(values)
        if key is not None and key in self._cache:
            return self._cache[key]
        fig = self.explorer.build(**values)
        self.built += 1
        if key is not None:
            if len(self._cache) >= self.CACHE_SIZE:
                self._cache.pop(next(iter(self._cache)))
            self._cache[key] = fig
        return fig

    def _in_flight(self) -> bool:
        import time

        if not self._frontend or self._sent_at is None or not self.figure._layout_edit_in_process:
            return False
        if time.monotonic() - self._sent_at > self.IN_FLIGHT_S:
            self._sent_at = None
            return False
        return True

    def _on_frontend_done(self, change=None) -> None:
        # plotly's front end answers every update with the layout it drew (``_js2py_layoutDelta``,
        # tagged with the update's id); plotly.py's own handler, which runs first, then clears
        # ``_layout_edit_in_process`` if it was the answer to the latest update
        if not (change and change.get("new")):
            return
        self._frontend = True
        if self.figure._layout_edit_in_process:
            return
        self._sent_at = None
        self._flush()

    def _flush(self) -> None:
        if self._pending is not None:
            values, self._pending = self._pending, None
            self._draw(values)

    def _flush_later(self) -> None:
        """Draw the held-back values after :attr:`IN_FLIGHT_S` even if the front end never
        answers (when the kernel's event loop runs; without one, the next move draws them)."""
        import asyncio

        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            try:
                loop = asyncio.get_event_loop_policy().get_event_loop()
            except RuntimeError:
                return
            if not loop.is_running():
                return

        def late():
            if self._pending is not None and not self._in_flight():
                self._flush()

        loop.call_later(self.IN_FLIGHT_S + 0.05, late)

    def _on_change(self, _change=None) -> None:
        values = self.values()
        if self.mode == "figurewidget" and self._in_flight():
            if self._pending is not None:
                self.dropped += 1
            else:
                self._flush_later()
            self._pending = values
            return
        self._draw(values)

    def _draw(self, values: dict) -> None:
        import time

        new = self._build(values)
        self.updates += 1
        if self.mode == "figurewidget":
            self._shown = _replace_figure(self.figure, new, self._shown)
            self._sent_at = time.monotonic()
        else:
            self.figure = new
            self._render()

    def _render(self) -> None:
        from IPython.display import display

        self.output.clear_output(wait=True)
        with self.output:
            display(self.figure)


def _figure_json(fig: go.Figure) -> dict:
    """``fig`` as plain JSON data (lists, dicts, numbers): comparable with ``==``."""
    out = _plain(fig.to_plotly_json())
    out.setdefault("data", [])
    out.setdefault("layout", {})
    return out


def _plain(obj):
    """``obj`` with numpy arrays and scalars turned into lists and Python numbers (a plotly
    JSON encoder would turn arrays into base64 blobs, which plotly.py cannot read back)."""
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    tolist = getattr(obj, "tolist", None)  # numpy arrays and scalars, torch tensors
    if tolist is not None and not isinstance(obj, (str, bytes)):
        return _plain(tolist())
    return obj


def _changed(old: dict, new: dict) -> dict:
    """The top-level keys of ``new`` whose value differs from ``old``'s, and ``None`` (plotly's
    "remove") for every key of ``old`` that ``new`` lacks."""
    out = {k: v for k, v in new.items() if k not in old or old[k] != v}
    out.update({k: None for k in old if k not in new})
    return out


def _replace_figure(target: go.FigureWidget, new: go.Figure, shown: dict | None = None) -> dict:
    """Make ``target`` show ``new``; return ``new`` as JSON (pass it as ``shown`` next time).

    ``shown`` is the JSON of what ``target`` shows now (default: read from ``target``). When the
    traces keep their number and types, one ``Plotly.update`` message carries only what changed:
    the trace properties and top-level layout keys whose value differs, and a removal for every
    property and layout key the new figure lacks, so no annotation, shape, axis range or title of
    the old figure stays behind. Otherwise the traces are replaced, then the layout likewise.
    """
    from plotly.basedatatypes import Undefined

    fresh = _figure_json(new)
    if shown is None:
        shown = _figure_json(go.Figure(target.to_dict()))
    old_data, new_data = shown["data"], fresh["data"]
    same = len(old_data) == len(new_data) and all(a.get("type", "scatter") == b.get("type", "scatter") for a, b in zip(old_data, new_data))
    relayout = _changed(shown["layout"], fresh["layout"])
    restyle: dict = {}
    if same:
        edits = [_changed(a, b) for a, b in zip(old_data, new_data)]
        indexes = [i for i, e in enumerate(edits) if e]
        for pos, i in enumerate(indexes):
            for prop, value in edits[i].items():
                restyle.setdefault(prop, [Undefined] * len(indexes))[pos] = value
        if restyle or relayout:
            target.plotly_update(restyle_data=restyle, relayout_data=relayout, trace_indexes=indexes or None)
        for i in indexes:
            _forget_children(target.data[i], edits[i])
    else:
        with target.batch_update():
            target.data = ()
            target.add_traces(new_data)
        if relayout:
            target.plotly_update(relayout_data=relayout)
    _forget_children(target.layout, relayout)
    return fresh


def _forget_children(obj, keys) -> None:
    """Drop plotly.py's cached child objects of ``obj`` for ``keys`` (``plotly_update`` rewrites
    the underlying dict but not these caches, so ``layout.annotations`` would still list the old
    notes); they are rebuilt from the dict on the next access."""
    for key in keys:
        obj._compound_props.pop(key, None)
        obj._compound_array_props.pop(key, None)


_FIT_JS = """
function attach(box) {
  // plotly.js resizes a responsive plot without a fixed width to its container on a window
  // resize event: send one whenever the explorer's box gets a new width (first: when it is laid out)
  let width = 0;
  const watch = new ResizeObserver(() => {
    if (box.offsetWidth && box.offsetWidth !== width) { width = box.offsetWidth; window.dispatchEvent(new Event("resize")); }
  });
  watch.observe(box);
  return watch;
}
export default {
  render({ el }) {
    el.style.display = "none";
    let tries = 0, watch = null, timer = null;
    const again = () => {
      const box = el.closest(".grpo-live");
      if (box) watch = attach(box);
      else if (tries++ < 600) timer = setTimeout(again, 50);
    };
    again();
    return () => { clearTimeout(timer); if (watch) watch.disconnect(); };
  },
};
"""


_FIT_WIDTH_CLASS = None


def _fit_width_widget():
    """A hidden widget that makes the explorer's ``FigureWidget`` fill the output area (plotly's
    widget draws before it is attached to the page, at plotly's 700 px; this resizes it once it
    is attached, and again when the output area changes width)."""
    global _FIT_WIDTH_CLASS
    if _FIT_WIDTH_CLASS is None:
        import anywidget

        class FitWidth(anywidget.AnyWidget):
            _esm = _FIT_JS

        _FIT_WIDTH_CLASS = FitWidth
    return _FIT_WIDTH_CLASS()


# --------------------------------------------------------------------------------------- registry

#: Every explorer of the book, by name.
EXPLORERS: dict[str, Explorer] = {}


def register(explorer: Explorer) -> Explorer:
    """Add ``explorer`` to :data:`EXPLORERS` (names must be unique) and return it."""
    if explorer.name in EXPLORERS and EXPLORERS[explorer.name] is not explorer:
        raise ValueError(f"An explorer named {explorer.name!r} is already registered.")
    EXPLORERS[explorer.name] = explorer
    return explorer
