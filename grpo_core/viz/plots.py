"""Plotly helpers for the book: a default layout and the renderer of the built HTML.

In a live kernel (Jupyter, Colab, VS Code) plotly keeps the renderer it picks for
itself; nothing here changes it. Only the book build sets ``GRPO_BOOK_BUILD=1``
(the local Sphinx extension ``_ext/grpo_book.py`` does it before any kernel
starts), and then :func:`maybe_use_book_renderer`, called when ``grpo_core.viz``
is imported, switches to :class:`BookRenderer`.

Why a renderer of our own: under ipykernel, plotly >= 6.1 emits only
``application/vnd.plotly.v1+json``, a mime type myst-nb does not render, so
the figure would vanish from the page. ``BookRenderer`` emits only ``text/html``:
an empty ``<div>`` and a short script that draws the figure with
``Plotly.newPlot``. plotly.js itself is not in the output; the extension ships
it once as ``_static/plotly.min.js`` and links it from the pages that have a
figure, so the book needs no network.
"""

from __future__ import annotations

import json
import math
import os
import uuid

import plotly.io as pio
from plotly.io.base_renderers import MimetypeRenderer

__all__ = [
    "BOOK_BUILD_ENV",
    "BOOK_RENDERER",
    "BookRenderer",
    "style",
    "note",
    "annotation",
    "fast_figure",
    "message_figure",
    "use_book_renderer",
    "maybe_use_book_renderer",
]

#: Environment variable that marks a book build; set to "1" by the Sphinx extension.
BOOK_BUILD_ENV = "GRPO_BOOK_BUILD"
#: Name under which :class:`BookRenderer` is registered in ``plotly.io.renderers``.
BOOK_RENDERER = "grpo_book"
#: Prefix of the id of every figure ``<div>``; the build counts figures by it.
DIV_ID_PREFIX = "grpo-plotly-"

_DEFAULT_HEIGHT = 450  # px, plotly.js's own default height

# The figure is drawn at once where ``window.Plotly`` exists. In the book it does not: the page
# loads the small ``_static/grpo-plotly-loader.js`` (``_ext/static/``), which draws each figure
# when it nears the viewport and fetches plotly.min.js for the first one
# (``window.grpoPlotly.whenVisible``). On any other page without Plotly yet, the figure waits for
# DOMContentLoaded and, as a last resort, for ``load``; ``done`` makes sure we draw only once.
_SCRIPT = """\
(function () {
  var id = "%(div_id)s";
  var fig = %(fig_json)s;
  var done = false;
  var base = null;
  function draw() {
    if (done || !window.Plotly) { return; }
    var el = document.getElementById(id);
    if (!el) { return; }
    done = true;
    var meta = fig.layout.meta && fig.layout.meta.grpo_explorer;
    if (meta && meta.delta) {
      // frames hold what differs from the first figure; keep an untouched copy of it to expand them
      base = JSON.parse(JSON.stringify({data: fig.data, layout: fig.layout}));
      window.Plotly.newPlot(el, {data: fig.data, layout: fig.layout, config: fig.config}).then(function () { wireExplorer(el); });
    } else {
      window.Plotly.newPlot(el, fig).then(function () { wireExplorer(el); });
    }
  }
  // A frame of a delta explorer figure (see _delta_frames in grpo_core/viz/plots.py): each trace
  // and the layout are the first figure's, with the frame's keys set and its "_grpo_unset" removed.
  function expand(part, from) {
    var out = part._grpo_new ? {} : Object.assign({}, from || {});
    Object.keys(part).forEach(function (k) { if (k !== "_grpo_new" && k !== "_grpo_unset") { out[k] = part[k]; } });
    (part._grpo_unset || []).forEach(function (k) { delete out[k]; });
    return out;
  }
  function frameOf(frame) {
    if (!base) { return frame; }
    return {
      data: frame.data.map(function (t, i) { return expand(t, base.data[i]); }),
      layout: expand(frame.layout || {}, base.layout)
    };
  }
  // Explorer figures (grpo_core.viz.interactive): one frame per distinct grid point; every slider
  // and dropdown is a control whose step index picks a coordinate of the grid.
  function wireExplorer(el) {
    var meta = fig.layout.meta && fig.layout.meta.grpo_explorer;
    if (!meta) { return; }
    var state = meta.active.slice();
    var which = {slider: {}, menu: {}};
    meta.controls.forEach(function (c, k) { which[c[0]][c[1]] = k; });
    function redraw() {
      var flat = 0;
      for (var k = 0; k < meta.shape.length; k++) { flat = flat * meta.shape[k] + state[k]; }
      var frame = frameOf(fig.frames[meta.frame_of[flat]]);
      var layout = Object.assign({}, frame.layout);
      ["template", "margin", "height", "width", "meta"].forEach(function (key) {
        if (fig.layout[key] !== undefined) { layout[key] = fig.layout[key]; }
      });
      layout.sliders = (fig.layout.sliders || []).map(function (s, i) {
        return Object.assign({}, s, {active: state[which.slider[i]]});
      });
      layout.updatemenus = (fig.layout.updatemenus || []).map(function (m, i) {
        return Object.assign({}, m, {active: state[which.menu[i]]});
      });
      el.setAttribute("data-grpo-frame", String(meta.frame_of[flat]));
      // plotly.js 2.x (plotly 5.24, Colab's) may redo the plot inside react and drop the
      // listeners with it: bind them again, once, after every redraw.
      window.Plotly.react(el, frame.data, layout, fig.config).then(bind);
    }
    function onSlider(e) {
      state[which.slider[e.slider._index]] = e.step._index;
      redraw();
    }
    function onMenu(e) {
      state[which.menu[e.menu._index]] = e.active;
      redraw();
    }
    function bind() {
      el.removeListener("plotly_sliderchange", onSlider);
      el.removeListener("plotly_buttonclicked", onMenu);
      el.on("plotly_sliderchange", onSlider);
      el.on("plotly_buttonclicked", onMenu);
    }
    bind();
  }
  var el = document.getElementById(id);
  if (window.Plotly) {
    draw();
  } else if (window.grpoPlotly && el) {
    window.grpoPlotly.whenVisible(el, draw);
  } else {
    document.addEventListener("DOMContentLoaded", draw);
    window.addEventListener("load", draw);
  }
})();"""


#: Significant digits kept of every float of a figure in the book's HTML (hover labels show at
#: most this many; a figure's pixels cannot show more). Halves the weight of a page of explorers.
HTML_DIGITS = 6


def _round_floats(obj, digits: int = HTML_DIGITS):
    """``obj`` with every float rounded to ``digits`` significant digits (ints, strings untouched)."""
    if isinstance(obj, float):
        return float(f"{obj:.{digits}g}") if math.isfinite(obj) else None  # plotly.js: a gap
    if isinstance(obj, list):
        return [_round_floats(v, digits) for v in obj]
    if isinstance(obj, dict):
        return {k: _round_floats(v, digits) for k, v in obj.items()}
    return obj


def _plain(obj):
    """``obj`` as plain JSON values (plotly's encoder: NumPy arrays, dates, NaN as null)."""
    return json.loads(pio.to_json(obj, validate=False, remove_uids=False))


_MISSING = object()
# layout keys the page's script always takes from the figure itself, never from a frame
_FIGURE_LAYOUT_KEYS = ("template", "margin", "height", "width", "sliders", "updatemenus", "meta")


def _delta(part: dict, ref: dict | None) -> dict:
    """What ``part`` (a trace or a layout, as JSON) changes in ``ref``: the keys whose value
    differs, plus ``_grpo_unset``, the keys of ``ref`` it lacks (``_grpo_new``: no ``ref``)."""
    if ref is None:
        return {"_grpo_new": True, **part}
    out = {k: v for k, v in part.items() if ref.get(k, _MISSING) != v}
    unset = [k for k in ref if k not in part]
    if unset:
        out["_grpo_unset"] = unset
    return out


def _expand(part: dict, ref: dict | None) -> dict:
    """The inverse of :func:`_delta`; the page's script does the same (``expand``)."""
    out = {} if part.get("_grpo_new") or ref is None else dict(ref)
    out.update({k: v for k, v in part.items() if k not in ("_grpo_new", "_grpo_unset")})
    for k in part.get("_grpo_unset", []):
        out.pop(k, None)
    return out


def _delta_frames(figure: dict) -> dict:
    """An explorer figure (``layout.meta.grpo_explorer``, plain JSON) with each frame stored as its
    difference from the figure's first state: a slider usually changes some y values and a title,
    and the rest (x grids, styles, axes) need not be repeated 100 times. Marks
    ``meta.grpo_explorer.delta``; the page's script expands a frame before drawing it. Any other
    figure is returned unchanged."""
    layout = figure.get("layout") or {}
    meta = layout.get("meta")
    explorer = meta.get("grpo_explorer") if isinstance(meta, dict) else None
    if not explorer or not figure.get("frames"):
        return figure
    base_data = figure.get("data") or []
    base_layout = {k: v for k, v in layout.items() if k not in _FIGURE_LAYOUT_KEYS}
    frames = []
    for frame in figure["frames"]:
        data = []
        for i, trace in enumerate(frame.get("data") or []):
            same_kind = i < len(base_data) and base_data[i].get("type") == trace.get("type")
            data.append(_delta(trace, base_data[i] if same_kind else None))
        frame_layout = {k: v for k, v in (frame.get("layout") or {}).items() if k not in _FIGURE_LAYOUT_KEYS}
        rest = {k: v for k, v in frame.items() if k not in ("data", "layout")}
        frames.append({**rest, "data": data, "layout": _delta(frame_layout, base_layout)})
    layout = {**layout, "meta": {**meta, "grpo_explorer": {**explorer, "delta": True}}}
    return {**figure, "layout": layout, "frames": frames}


def _figure_json(figure: dict) -> str:
    """The figure ``{data, layout, frames, config}`` as the inline JSON of :data:`_SCRIPT`
    (explorer frames stored as differences, floats rounded, safe inside ``<script>``)."""
    return _to_script_json(_delta_frames(_plain(figure)))


def _to_script_json(obj) -> str:
    """Compact JSON of ``obj`` (floats to :data:`HTML_DIGITS` significant digits) that is safe
    inside an inline ``<script>`` element."""
    text = json.dumps(_round_floats(_plain(obj)), separators=(",", ":"), allow_nan=False)
    # "</script>" or "<!--" inside a string must not end the element:
    # write every "<", ">" and "&" as a JSON unicode escape instead.
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _title_text(title) -> str:
    text = title.get("text", "") if isinstance(title, dict) else (title or "")
    return str(text)


def _alt_text(layout: dict) -> str:
    """A text alternative for a figure: its title and the titles of its axes (HTML-escaped)."""
    import html as _html
    import re

    parts = [_title_text(layout.get("title"))]
    for key in sorted(k for k in layout if k.startswith(("xaxis", "yaxis"))):
        axis = layout.get(key) or {}
        if isinstance(axis, dict) and _title_text(axis.get("title")):
            parts.append(f"{key[0]}: {_title_text(axis.get('title'))}")
    text = "; ".join(p for p in parts if p) or "figure"
    text = re.sub(r"<[^>]+>", " ", text)  # plotly titles may hold <br> or <sup>
    return _html.escape("Interactive figure. " + " ".join(text.split()), quote=True)


class BookRenderer(MimetypeRenderer):
    """Render a figure as ``text/html`` that draws itself with a page-level plotly.js.

    The HTML is a ``<div id="grpo-plotly-...">`` plus an inline script calling
    ``Plotly.newPlot(div, {data, layout, frames, config})``; frames are kept,
    so sliders and animations defined in the figure work in the static page.
    plotly.js must be loaded by the page (the book does it; see module doc).

    Parameters
    ----------
    config : dict, optional
        plotly.js config merged over the defaults (``responsive=True``,
        ``displaylogo=False``).
    """

    def __init__(self, config=None):
        self.config = dict(config) if config else {}

    def to_mimebundle(self, fig_dict):
        div_id = DIV_ID_PREFIX + uuid.uuid4().hex
        config = {"responsive": True, "displaylogo": False}
        config.update(fig_dict.get("config") or {})
        config.update(self.config)
        figure = {
            "data": fig_dict.get("data", []),
            "layout": fig_dict.get("layout", {}),
            "frames": fig_dict.get("frames", []),
            "config": config,
        }
        layout = figure["layout"]
        height = layout.get("height") or _DEFAULT_HEIGHT
        width = f"{layout['width']}px" if layout.get("width") else "100%"
        html = (
            f'<div id="{div_id}" class="grpo-plotly" role="img" aria-label="{_alt_text(layout)}" '
            f'style="width:{width};height:{height}px;"></div>\n'
            f'<script type="text/javascript">\n'
            f"{_SCRIPT % {'div_id': div_id, 'fig_json': _figure_json(figure)}}\n"
            f"</script>"
        )
        return {"text/html": html}


def use_book_renderer() -> None:
    """Register :class:`BookRenderer` as ``"grpo_book"`` and make it plotly's default.

    Meant for the book build only; notebooks should not call it (a live
    kernel has no page-level plotly.js, so figures would stay blank).
    """
    pio.renderers[BOOK_RENDERER] = BookRenderer()
    pio.renderers.default = BOOK_RENDERER


def maybe_use_book_renderer() -> bool:
    """Switch to the book renderer if and only if ``GRPO_BOOK_BUILD=1``.

    Called by ``grpo_core/viz/__init__.py`` at import. Returns whether it switched.
    """
    if os.environ.get(BOOK_BUILD_ENV) == "1":
        use_book_renderer()
        return True
    return False


#: The book's look, as plain layout keys (no plotly template object: resolving a template costs
#: tens of milliseconds per figure, too slow for live widgets, and the static book must carry it
#: in every frame).
GRID = "#e5e9f0"
BASE_LAYOUT = dict(
    paper_bgcolor="white",
    plot_bgcolor="white",
    font=dict(family="Helvetica, Arial, sans-serif", size=13, color="#2a3f5f"),
    colorway=["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c"],
    hoverlabel=dict(namelength=-1),
)
_AXIS = dict(gridcolor=GRID, zerolinecolor="#c8d0dc", linecolor="#c8d0dc", automargin=True)


def _layout(layout: dict, height: int, title: str | None) -> dict:
    out = {**BASE_LAYOUT, **layout}
    out["height"] = height
    out["margin"] = {**dict(l=55, r=20, t=75 if title else 30, b=50), **layout.get("margin", {})}
    if title is not None:
        out["title"] = dict(text=title, x=0.02, xanchor="left", font=dict(size=15))
    for key in list(out):
        if key.startswith(("xaxis", "yaxis")):
            out[key] = {**_AXIS, **out[key]}
    out.setdefault("xaxis", dict(_AXIS))
    out.setdefault("yaxis", dict(_AXIS))
    return out


def annotation(text: str, *, y: float = 0.5) -> dict:
    """An explanation written across the plot area, as a layout annotation."""
    return dict(
        text=text,
        xref="paper",
        yref="paper",
        x=0.5,
        y=y,
        showarrow=False,
        align="center",
        font=dict(size=14),
        bgcolor="rgba(255,255,255,0.9)",
        bordercolor="#888",
        borderwidth=1,
        borderpad=6,
    )


def fast_figure(data: list[dict], layout: dict | None = None, *, height: int = 400, title: str | None = None, notes=()):
    """A ``go.Figure`` from trace and layout dicts, in the book's look, without plotly's validation.

    For explorers, whose figure functions run on every slider move: building through the
    validating constructors costs 10-100 ms, this about 2 ms. The tests rebuild every explorer
    figure with validation on, so a misspelt property still fails there. ``notes`` are texts
    written across the plot (:func:`annotation`).
    """
    import plotly.graph_objects as go

    lay = _layout(dict(layout or {}), height, title)
    lay["annotations"] = list(lay.get("annotations", [])) + [annotation(t) if isinstance(t, str) else annotation(t[0], y=t[1]) for t in notes]
    return go.Figure(dict(data=data, layout=lay), _validate=False)


def style(fig, *, height: int = 400, title: str | None = None):
    """Apply the book's default layout to ``fig`` in place and return it: the look of
    :data:`BASE_LAYOUT`, small margins, fixed ``height`` in px, ``title`` if given."""
    fig.update_layout(
        **BASE_LAYOUT,
        height=height,
        margin=dict(l=55, r=20, t=75 if title else 30, b=50),
    )
    fig.update_xaxes(**_AXIS)
    fig.update_yaxes(**_AXIS)
    if title is not None:
        fig.update_layout(title=dict(text=title, x=0.02, xanchor="left", font=dict(size=15)))
    return fig


def note(fig, text: str, *, y: float = 0.5):
    """Write ``text`` across the middle of ``fig``'s plot area (an explanation where a plot
    would mislead or be empty: ``G`` too small, every reward equal, ...). Returns ``fig``."""
    fig.add_annotation(**annotation(text, y=y))
    return fig


def message_figure(text: str, *, height: int = 400):
    """An empty figure whose only content is the explanation ``text`` (wrapped to lines)."""
    import textwrap

    wrapped = "<br>".join(textwrap.wrap(text, 70)) or text
    return fast_figure([], dict(xaxis=dict(visible=False), yaxis=dict(visible=False)), height=height, notes=[wrapped])
