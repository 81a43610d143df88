"""Load a module of the repository that is not part of the package (the Sphinx extension, tools/)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def load_source(relpath: str):
    """The module at ``ROOT / relpath``, executed afresh (e.g. ``"_ext/grpo_book.py"``)."""
    path = ROOT / relpath
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
