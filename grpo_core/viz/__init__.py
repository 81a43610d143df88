"""The figures and widgets of the book: the only layer of grpo_core that imports plotly,
ipywidgets or IPython (install them with ``pip install grpo_core[book]``).

- :mod:`~grpo_core.viz.plots`: the book's plot style and the renderer of the built HTML;
- :mod:`~grpo_core.viz.interactive`: explorers (controls plus a figure function), live with
  ipywidgets in a kernel and static (plotly sliders over precomputed frames) in the book;
- :mod:`~grpo_core.viz.explorers`: every chapter's explorers, by name (:func:`get_explorer`);
- :mod:`~grpo_core.viz.curves`: figures of training runs and the live view while training;
- :mod:`~grpo_core.viz.notebook`: :func:`notebook_setup`, the first cell of every chapter.

Importing this package switches plotly to the book's renderer during a book build
(``GRPO_BOOK_BUILD=1``) and changes nothing elsewhere.
"""

from . import plots
from .curves import curves_figure, success_figure, train_live
from .explorers import all_explorers, get_explorer
from .interactive import Choice, Explorer, Slider, enable_colab_widgets, in_book_build, in_colab
from .notebook import environment, notebook_setup
from .plots import fast_figure, message_figure, note, style

plots.maybe_use_book_renderer()

__all__ = [
    "notebook_setup",
    "environment",
    "style",
    "note",
    "fast_figure",
    "message_figure",
    "Explorer",
    "Slider",
    "Choice",
    "get_explorer",
    "all_explorers",
    "curves_figure",
    "success_figure",
    "train_live",
    "in_colab",
    "in_book_build",
    "enable_colab_widgets",
]
