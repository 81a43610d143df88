"""Which notebook outputs are figures: the one rule shared by the notebook tools.

Committed notebooks keep only outputs that carry numbers (``text/plain``,
``stream``, error tracebacks); figure and widget outputs are stripped before commit
(``tools/refresh_notebooks.py``), are forbidden in the repository
(``tests/test_notebooks_clean.py``) and are left out of nbval's comparison
(``conftest.py``), so a figure cell is executed but never compared.
"""

from __future__ import annotations

FIGURE_MIME_TYPES = frozenset(
    {
        "application/vnd.plotly.v1+json",
        "application/vnd.jupyter.widget-view+json",
        "application/vnd.jupyter.widget-state+json",
        "image/png",
        "image/jpeg",
        "image/gif",
        "image/svg+xml",
    }
)
# Substrings that mark a text/html or javascript output as a plotly figure or
# plotly.js itself: our book renderer, plotly's own HTML renderers, the bundle.
PLOTLY_HTML_MARKERS = ("grpo-plotly-", "plotly-graph-div", "Plotly.newPlot", "window.PlotlyConfig")
# Notebook metadata that timing or widgets leave behind.
CELL_TIMING_KEYS = ("execution",)
NOTEBOOK_WIDGET_KEYS = ("widgets",)


def _text(value) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


def is_figure_output(output) -> bool:
    """True for an output that shows a figure or a widget rather than numbers."""
    data = output.get("data") or {}
    if FIGURE_MIME_TYPES & set(data):
        return True
    for mime in ("text/html", "application/javascript"):
        if mime in data and any(m in _text(data[mime]) for m in PLOTLY_HTML_MARKERS):
            return True
    return False


def has_plotly_js(text: str) -> bool:
    """True if ``text`` (a whole .ipynb file) embeds the plotly.js bundle."""
    # Every build of the bundle carries this licence banner; prose about plotly does not.
    return "Copyright 2012-" in text and "Plotly, Inc." in text
