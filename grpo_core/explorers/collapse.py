"""Explorers of the chapter 'collapse' (being written)."""
