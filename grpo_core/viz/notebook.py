"""The first cell of every chapter: :func:`notebook_setup`.

After ``import grpo_core`` (installed from the repository by the same cell when missing), it prints
what the chapter runs on: the versions of the libraries that matter for its numbers, whether a GPU
is present, and, in Colab, how the explorers are shown.

In Colab the explorers are static (plotly sliders over precomputed frames) and the trainer's live
view uses display handles, so nothing needs Colab's custom widget manager and this cell does not
turn it on (see :mod:`grpo_core.viz._compat` for why). ``Explorer.show(mode="live")`` turns it on
when a reader asks for the widgets.
"""

from __future__ import annotations

__all__ = ["notebook_setup", "environment"]


def _version(module) -> str:
    return str(getattr(module, "__version__", "?")).split("+")[0]  # "2.13.0+cpu" -> "2.13.0"


def environment() -> dict:
    """Versions (without local build tags such as ``+cpu``), the GPU's name or None, and whether
    this is Colab."""
    import ipywidgets
    import plotly
    import torch

    from .. import __version__
    from .interactive import in_colab

    return {
        "grpo_core": __version__,
        "torch": _version(torch),
        "plotly": _version(plotly),
        "ipywidgets": _version(ipywidgets),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "colab": in_colab(),
    }


def notebook_setup(verbose: bool = True) -> None:
    """Print :func:`environment` in one line.

    Returns None, so that the first cell of a chapter shows the printed line only."""
    env = environment()
    if verbose:
        libs = ", ".join(f"{k} {env[k]}" for k in ("grpo_core", "torch", "plotly", "ipywidgets"))
        gpu = f"GPU: {env['gpu']}" if env["gpu"] else "no GPU (the CPU runs everything in this book)"
        where = "Colab (explorers static; show(mode='live') for widgets)" if env["colab"] else "not Colab"
        print(f"{libs} | {gpu} | {where}")
