"""Explorers of the chapter 'objective' (being written)."""
