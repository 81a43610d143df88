#!/usr/bin/env python
"""Re-execute the book's notebooks in place and strip what must not be committed.

Usage: python tools/refresh_notebooks.py [--strip-only] [NOTEBOOK ...]
(default: every book/*.ipynb; `make notebooks` runs it.)

Each notebook runs top to bottom with nbclient in a kernel of the current Python
(the venv's), in the notebook's folder, with GRPO_BOOK_BUILD removed from the
environment, so the stored outputs are those a reader's Jupyter produces and
nbval compares against. Then, from every cell, outputs that show a figure or a
widget are removed (rule: tools/notebook_outputs.py), and so are the notebook's
widget state and per-cell timing metadata. Text outputs (text/plain, stream,
errors) stay: they carry the numbers nbval checks.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

sys.path.insert(0, str(Path(__file__).resolve().parent))
from notebook_outputs import (  # noqa: E402
    CELL_TIMING_KEYS,
    NOTEBOOK_WIDGET_KEYS,
    is_figure_output,
)

ROOT = Path(__file__).resolve().parent.parent
CELL_TIMEOUT_S = 900
EXTRA_TIMING_KEYS = ("ExecuteTime",)  # jupyterlab-execute-time / nbextensions


def strip(nb) -> int:
    """Remove figure/widget outputs and volatile metadata in place; return outputs removed."""
    removed = 0
    for key in NOTEBOOK_WIDGET_KEYS:
        nb.metadata.pop(key, None)
    for cell in nb.cells:
        for key in CELL_TIMING_KEYS + EXTRA_TIMING_KEYS:
            cell.metadata.pop(key, None)
        if cell.cell_type != "code":
            continue
        kept = [out for out in cell.outputs if not is_figure_output(out)]
        removed += len(cell.outputs) - len(kept)
        cell.outputs = kept
    return removed


def execute(nb, path: Path) -> None:
    env_had = os.environ.pop("GRPO_BOOK_BUILD", None)  # kernels inherit os.environ
    try:
        NotebookClient(
            nb,
            timeout=CELL_TIMEOUT_S,
            kernel_name="python3",  # jupyter_client launches "python" as sys.executable
            resources={"metadata": {"path": str(path.parent)}},
            record_timing=False,
            store_widget_state=False,
        ).execute()
    finally:
        if env_had is not None:
            os.environ["GRPO_BOOK_BUILD"] = env_had


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path)
    parser.add_argument("--strip-only", action="store_true", help="strip, do not execute")
    args = parser.parse_args(argv)
    paths = args.notebooks or sorted((ROOT / "book").glob("*.ipynb"))
    if not paths:
        print("no notebooks found under book/", file=sys.stderr)
        return 1
    for path in paths:
        start = time.perf_counter()
        nb = nbformat.read(path, as_version=4)
        if not args.strip_only:
            execute(nb, path)
        removed = strip(nb)
        nbformat.validate(nb)
        nbformat.write(nb, path)
        size_kb = path.stat().st_size / 1024
        print(
            f"{path}: {removed} figure/widget output(s) stripped, {size_kb:.0f} KB, "
            f"{time.perf_counter() - start:.1f} s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
