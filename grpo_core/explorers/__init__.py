"""The book's explorers, one module per chapter; importing this package registers them all
in :data:`grpo_core.interactive.EXPLORERS`."""

from . import collapse, extensions, kl, normalisation, objective, variance  # noqa: F401

__all__ = ["collapse", "extensions", "kl", "normalisation", "objective", "variance"]
