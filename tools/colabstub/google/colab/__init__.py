"""A stand-in for Colab's ``google.colab`` package, for ``make colab-check`` (tools/colab_check.py).

Only what grpo_core and plotly touch: importing ``google.colab`` succeeds (so
``grpo_core.viz.interactive.in_colab()`` and plotly's renderer choice see Colab), and
:func:`output.enable_custom_widget_manager` records that it was called. There is deliberately no
``google/__init__.py``: ``google`` stays a namespace package, as in Colab.
"""

from . import output  # noqa: F401

__all__ = ["output"]
