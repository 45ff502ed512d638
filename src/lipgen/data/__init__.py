"""Corpora, preprocessing into a cache, and the Dataset over that cache."""
