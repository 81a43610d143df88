"""The book's explorers, one module per chapter; importing this package registers them all
in :data:`grpo_core.interactive.EXPLORERS`."""

from . import kl, normalisation, objective  # noqa: F401

__all__ = ["kl", "normalisation", "objective"]
