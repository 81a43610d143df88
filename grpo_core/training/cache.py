"""The on-disk cache of the training layer: base models and finished runs.

Both live under :func:`cache_dir` (``$GRPO_CORE_CACHE``, default ``~/.cache/grpo_core``). A base
model is keyed by the settings that shape it; a run (:func:`grpo_core.training.runs.run`) by its
configuration and :func:`source_digest`, a hash of every module that can change a training result:
all of grpo_core except the figures and widgets of :mod:`grpo_core.viz`, so that editing a figure
never retrains.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch

__all__ = ["cache_dir", "source_digest", "PRESENTATION_ONLY"]

#: Folders of grpo_core (relative to the package) left out of :func:`source_digest`: they only
#: present results.
PRESENTATION_ONLY = ("viz/",)


def cache_dir() -> Path:
    """Where base models and runs are cached: ``$GRPO_CORE_CACHE``, default ``~/.cache/grpo_core``."""
    return Path(os.environ.get("GRPO_CORE_CACHE", Path.home() / ".cache" / "grpo_core"))


def source_digest() -> str:
    """A hash of grpo_core's ``.py`` files that can change a training result (all but
    :data:`PRESENTATION_ONLY`) and of the torch version: part of every run's cache key."""
    root = Path(__file__).resolve().parent.parent
    h = hashlib.sha256(torch.__version__.encode())
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        if rel.startswith(PRESENTATION_ONLY):
            continue
        h.update(rel.encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]
