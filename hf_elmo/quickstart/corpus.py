"""The quickstart's text: the standard library's docstrings by default, or the user's own file."""

from __future__ import annotations

import random
import sys
from pathlib import Path
from typing import Sequence, TypeVar

from ..data import tabular
from ..data.stdlib_corpus import stdlib_sentence_sources

T = TypeVar("T")


def read_texts(path: Path | None, text_column: str = "text", limit: int | None = None) -> list[str]:
    """Texts from ``path`` (.txt, .csv/.tsv, .jsonl or a ``datasets`` name, see ``hf_elmo.data.tabular``), or the
    standard library's docstring sentences when ``path`` is None."""
    return read_labelled_texts(path, text_column, None, limit)[0]


def read_labelled_texts(path: Path | None, text_column: str = "text", label_column: str | None = None,
                        limit: int | None = None) -> tuple[list[str], list[str] | None]:
    """(texts, labels): the standard library's docstring sentences with the top-level module each comes from when
    ``path`` is None; else the texts of ``path`` with the values of ``label_column`` (as strings), or None without
    one."""
    if path is None:
        pairs = stdlib_sentence_sources(limit=limit)
        return [text for text, _ in pairs], [source for _, source in pairs]
    if label_column is None:
        texts = tabular.read_texts(path, text_column)
        return texts[:limit] if limit else texts, None
    texts, labels = tabular.read_labelled(path, text_column, label_column)
    kept = [(text.strip(), str(label)) for text, label in zip(texts, labels) if text.strip()]
    if not kept:
        raise ValueError(f"{path}: no text found in column {text_column!r}")
    kept = kept[:limit] if limit else kept
    return [text for text, _ in kept], [label for _, label in kept]


def describe(path: Path | None, n_texts: int) -> str:
    """What the quickstart trains on, for the printed summary and the model cards."""
    if path is None:
        version = f"{sys.version_info.major}.{sys.version_info.minor}"
        return f"{n_texts:,} prose sentences from the docstrings of the Python {version} standard library"
    return f"{n_texts:,} texts of `{Path(path).name}`"


def split(items: Sequence[T], valid_fraction: float = 0.05, seed: int = 0) -> tuple[list[T], list[T]]:
    """A reproducible train/validation split."""
    order = list(range(len(items)))
    random.Random(seed).shuffle(order)
    n_valid = max(1, int(len(items) * valid_fraction))
    return [items[i] for i in order[n_valid:]], [items[i] for i in order[:n_valid]]
