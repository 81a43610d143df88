"""Explorers of the chapter 'variance' (being written)."""
