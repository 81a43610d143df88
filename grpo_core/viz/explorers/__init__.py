"""The book's explorers, one module per chapter; importing this package registers them all in
:data:`grpo_core.viz.interactive.EXPLORERS`."""

from ..interactive import EXPLORERS, Explorer
from . import collapse, extensions, kl, normalisation, objective, variance  # noqa: F401

__all__ = ["all_explorers", "get_explorer", "collapse", "extensions", "kl", "normalisation", "objective", "variance"]


def all_explorers() -> dict[str, Explorer]:
    """Every explorer of the book, by name (the modules above registered them on import)."""
    return EXPLORERS


def get_explorer(name: str) -> Explorer:
    """The explorer called ``name``; a ValueError lists the names when there is none."""
    if name not in EXPLORERS:
        raise ValueError(f"No explorer named {name!r}; choose one of {sorted(EXPLORERS)}.")
    return EXPLORERS[name]
