"""Explorers of the chapter 'kl' (being written)."""
