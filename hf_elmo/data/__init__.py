"""Data utilities that are not part of any model definition (corpora, batching)."""
