"""What differs between the places a chapter runs, in one module.

- :func:`default_show_mode`: how :meth:`grpo_core.viz.interactive.Explorer.show` shows an explorer
  when the caller does not say: ``"static"`` in the book build and in Colab, ``"live"`` elsewhere
  (``GRPO_EXPLORER_MODE=static|live`` overrides it outside the book build).
- :class:`StaticView`: the static explorer (a plotly figure with its own sliders and dropdowns
  over precomputed frames) as self-contained HTML for a notebook: it loads plotly.js itself and
  needs no widget, no widget manager and no kernel once drawn.
- :func:`version_tuple`, :func:`major`: versions as numbers, for the few places where ipywidgets 7
  and 8 or plotly 5 and 6+ differ.

Why static in Colab: Colab draws only its built-in ipywidgets unless its custom widget manager is
on, and that manager has open failures for exactly what the live explorers use (a plotly figure
re-rendered into an ``ipywidgets.Output``: "Plotly is not defined", colabtools#5889; plotly's
``FigureWidget``: colab-cdn-widget-manager#51). A plain ``text/html`` output that loads plotly.js
is what plotly's own ``colab`` renderer emits, so it is the path Colab supports.
"""

from __future__ import annotations

import os
import re
import uuid

__all__ = ["MODE_ENV", "SHOW_MODES", "default_show_mode", "StaticView", "Bundle", "version_tuple", "major"]

#: Environment variable that picks the explorers' display mode outside the book build.
MODE_ENV = "GRPO_EXPLORER_MODE"
#: The modes of :meth:`Explorer.show`.
SHOW_MODES = ("static", "live")


def version_tuple(version: str) -> tuple[int, ...]:
    """``"8.1.9"`` -> ``(8, 1, 9)``; ``"2.11.0+cu128"`` -> ``(2, 11, 0)``; ``"7.0.0rc1"`` -> ``(7, 0, 0)``."""
    nums = []
    for part in str(version).split("+")[0].split("."):
        m = re.match(r"\d+", part)
        if not m:
            break
        nums.append(int(m.group()))
        if m.group() != part:
            break
    if not nums:
        raise ValueError(f"`version`={version!r} does not start with a number.")
    return tuple(nums)


def major(module) -> int:
    """The major version of an imported module (``major(ipywidgets)`` -> 7 or 8)."""
    return version_tuple(getattr(module, "__version__", "0"))[0]


def default_show_mode(*, colab: bool, book_build: bool) -> str:
    """``"static"`` in the book build and in Colab, else ``"live"``; ``GRPO_EXPLORER_MODE``
    (``static`` or ``live``) overrides it outside the book build. The caller says where it runs
    (:func:`grpo_core.viz.interactive.in_colab`, :func:`~grpo_core.viz.interactive.in_book_build`),
    so this module imports nothing of the explorers."""
    if book_build:
        return "static"
    env = os.environ.get(MODE_ENV, "").strip().lower()
    if env:
        if env not in SHOW_MODES:
            raise ValueError(f"`{MODE_ENV}`={env!r} is not known; choose 'static' or 'live'.")
        return env
    return "static" if colab else "live"


def plotlyjs_url() -> str:
    """The CDN address of the plotly.js that the installed plotly bundles (what plotly's own
    ``colab`` and ``notebook_connected`` renderers load)."""
    from plotly.offline import get_plotlyjs_version

    return f"https://cdn.plot.ly/plotly-{get_plotlyjs_version()}.min.js"


# The book renderer's script (plots._SCRIPT) draws the figure and wires the explorer's sliders once
# window.Plotly exists. In a notebook nobody has loaded plotly.js, so load it first: through
# require.js where the page has it (classic Notebook), else with a <script> element (Colab,
# JupyterLab, VS Code), then run the book's script.
_LOADER = """\
(function () {
  function run() {
%(script)s
  }
  if (window.Plotly) { run(); return; }
  var src = "%(src)s";
  if (window.require && window.define && window.define.amd) {
    window.require.config({paths: {plotly: src.replace(/\\.js$/, "")}});
    window.require(["plotly"], function (P) { window.Plotly = window.Plotly || P; run(); });
    return;
  }
  var s = document.createElement("script");
  s.src = src;
  s.onload = run;
  document.head.appendChild(s);
})();"""

#: Prefix of the id of a :class:`StaticView`'s ``<div>`` (the book's own figures use plots.DIV_ID_PREFIX).
STATIC_DIV_PREFIX = "grpo-static-"


class StaticView:
    """``fig`` (e.g. :meth:`Explorer.static_figure`) as a ``text/html`` output that draws itself.

    The HTML is a ``<div>`` and one script: it loads plotly.js from plotly's CDN (the version the
    installed plotly bundles) unless the page has it, then draws the figure with the book's script,
    which also wires the explorer's sliders and dropdowns to its frames.
    """

    def __init__(self, fig):
        self.figure = fig

    def html(self) -> str:
        from .plots import _SCRIPT, _alt_text, _figure_json

        fig = self.figure.to_plotly_json() if hasattr(self.figure, "to_plotly_json") else dict(self.figure)
        div_id = STATIC_DIV_PREFIX + uuid.uuid4().hex
        layout = fig.get("layout", {}) or {}
        figure = {
            "data": fig.get("data", []),
            "layout": layout,
            "frames": fig.get("frames", []) or [],
            "config": {"responsive": True, "displaylogo": False},
        }
        height = layout.get("height") or 450
        script = _SCRIPT % {"div_id": div_id, "fig_json": _figure_json(figure)}
        return (
            f'<div id="{div_id}" class="grpo-plotly" role="img" aria-label="{_alt_text(layout)}" '
            f'style="width:100%;height:{height}px;"></div>\n'
            f'<script type="text/javascript">\n{_LOADER % {"script": script, "src": plotlyjs_url()}}\n</script>'
        )

    def _repr_html_(self) -> str:
        return self.html()

    def _repr_mimebundle_(self, include=None, exclude=None):
        title = (self.figure.layout.title.text if hasattr(self.figure, "layout") else None) or "explorer"
        return {"text/html": self.html(), "text/plain": f"<static explorer: {title}>"}


class Bundle:
    """``fig`` as a plain rich output, for ``display(..., display_id=True)`` and ``handle.update``.

    A plotly figure has ``_ipython_display_`` (plotly 5.24 through 7.x): IPython then lets the
    figure show itself and drops ``display_id``, so a later ``handle.update(fig)`` appends a new
    figure instead of replacing the shown one. This wrapper offers only the mime bundle of the
    figure under plotly's current renderer (``colab`` in Colab), which IPython tags with the id.
    """

    def __init__(self, fig):
        self.figure = fig

    def _repr_mimebundle_(self, include=None, exclude=None):
        bundle = self.figure._repr_mimebundle_()
        return bundle or {"text/plain": repr(self.figure)}
