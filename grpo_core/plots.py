"""Plotly helpers for the book: a default layout and the renderer of the built HTML.

In a live kernel (Jupyter, Colab, VS Code) plotly keeps the renderer it picks for
itself; nothing here changes it. Only the book build sets ``GRPO_BOOK_BUILD=1``
(the local Sphinx extension ``_ext/grpo_book.py`` does it before any kernel
starts), and then :func:`_maybe_use_book_renderer`, called when ``grpo_core``
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

import os
import uuid

import plotly.io as pio
from plotly.io.base_renderers import MimetypeRenderer

__all__ = ["BOOK_BUILD_ENV", "BOOK_RENDERER", "BookRenderer", "style", "use_book_renderer"]

#: Environment variable that marks a book build; set to "1" by the Sphinx extension.
BOOK_BUILD_ENV = "GRPO_BOOK_BUILD"
#: Name under which :class:`BookRenderer` is registered in ``plotly.io.renderers``.
BOOK_RENDERER = "grpo_book"
#: Prefix of the id of every figure ``<div>``; the build counts figures by it.
DIV_ID_PREFIX = "grpo-plotly-"

_DEFAULT_HEIGHT = 450  # px, plotly.js's own default height

# The figure is drawn as soon as ``window.Plotly`` exists. Sphinx may load
# plotly.min.js with ``defer`` (then it runs after this inline script, before
# DOMContentLoaded), so if Plotly is not there yet we wait for DOMContentLoaded
# and, as a last resort, for ``load``; ``done`` makes sure we draw only once.
_SCRIPT = """\
(function () {
  var id = "%(div_id)s";
  var fig = %(fig_json)s;
  var done = false;
  function draw() {
    if (done || !window.Plotly) { return; }
    var el = document.getElementById(id);
    if (!el) { return; }
    done = true;
    window.Plotly.newPlot(el, fig);
  }
  if (window.Plotly) {
    draw();
  } else {
    document.addEventListener("DOMContentLoaded", draw);
    window.addEventListener("load", draw);
  }
})();"""


def _to_script_json(obj) -> str:
    """JSON of ``obj`` that is safe inside an inline ``<script>`` element."""
    text = pio.to_json(obj, validate=False, remove_uids=False)
    # "</script>" or "<!--" inside a string must not end the element:
    # write every "<", ">" and "&" as a JSON unicode escape instead.
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


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
            f'<div id="{div_id}" class="grpo-plotly" '
            f'style="width:{width};height:{height}px;"></div>\n'
            f'<script type="text/javascript">\n'
            f"{_SCRIPT % {'div_id': div_id, 'fig_json': _to_script_json(figure)}}\n"
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


def _maybe_use_book_renderer() -> bool:
    """Switch to the book renderer if and only if ``GRPO_BOOK_BUILD=1``.

    Called by ``grpo_core/__init__.py`` at import. Returns whether it switched.
    """
    if os.environ.get(BOOK_BUILD_ENV) == "1":
        use_book_renderer()
        return True
    return False


def style(fig, *, height: int = 400, title: str | None = None):
    """Apply the book's default layout to ``fig`` in place and return it.

    White template, small margins, fixed ``height`` in px; ``title`` if given.
    """
    fig.update_layout(
        template="plotly_white",
        height=height,
        margin=dict(l=50, r=20, t=70 if title else 30, b=45),
    )
    if title is not None:
        fig.update_layout(title=title)
    return fig
