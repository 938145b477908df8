"""The quickstart's text: the standard library's docstrings by default, or the user's own file."""

from __future__ import annotations

import random
from pathlib import Path

from ..data import tabular
from ..data.stdlib_corpus import stdlib_sentences


def read_texts(path: Path | None, text_column: str = "text", limit: int | None = None) -> list[str]:
    """Texts from ``path`` (.txt, .csv/.tsv, .jsonl or a ``datasets`` name, see ``hf_elmo.data.tabular``), or the
    standard library's docstring sentences when ``path`` is None."""
    texts = stdlib_sentences(limit=limit) if path is None else tabular.read_texts(path, text_column)
    return texts[:limit] if limit else texts


def split(texts: list[str], valid_fraction: float = 0.05, seed: int = 0) -> tuple[list[str], list[str]]:
    """A reproducible train/validation split."""
    order = list(range(len(texts)))
    random.Random(seed).shuffle(order)
    n_valid = max(1, int(len(texts) * valid_fraction))
    return [texts[i] for i in order[n_valid:]], [texts[i] for i in order[:n_valid]]
