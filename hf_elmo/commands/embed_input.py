"""``hf-elmo embed``'s input, read lazily: a text file of one sentence per line, never held whole in memory.

The file is read twice, line by line: once before the model loads (``scan_sentences``: every empty line and the
first undecodable one are reported before anything runs, as when the whole file was read up front, and the count
sizes the progress bar), then while embedding (``iter_sentences``). Lines end at ``\\n`` only (a ``\\r\\n`` ending is
stripped): a ``\\r`` inside a line is whitespace, not a line break, so that dataset ``i`` is line ``i + 1`` as every
other tool counts lines. Files are therefore read as bytes (Python's text mode would also break lines at ``\\r``).
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import Iterable, Iterator, TypeVar

T = TypeVar("T")
SHOWN_EMPTY_LINES = 10


def _stripped_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, stripped line) of each line of ``path``, 1-based; a leading byte-order mark is dropped."""
    if not path.is_file():
        raise FileNotFoundError(f"input file not found: {path}")
    with open(path, "rb") as f:
        for number, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as e:
                raise ValueError(f"{path} is not UTF-8 text: line {number}: {e}") from None
            yield number, line.strip()


def scan_sentences(path: str | os.PathLike) -> int:
    """How many sentences ``path`` holds, read line by line in constant memory. Raises FileNotFoundError, or
    ValueError for an undecodable line, empty lines (naming up to ten line numbers, as AllenNLP refuses them) or an
    empty file."""
    path = Path(path)
    empty: list[int] = []
    n_empty = count = 0
    for number, sentence in _stripped_lines(path):
        count = number
        if not sentence:
            n_empty += 1
            if len(empty) < SHOWN_EMPTY_LINES:
                empty.append(number)
    if n_empty:
        raise _empty_lines(path, empty, n_empty)
    if not count:
        raise ValueError(f"{path} holds no sentences")
    return count


def iter_sentences(path: str | os.PathLike) -> Iterator[str]:
    """The stripped lines of ``path``, one at a time (check the file with ``scan_sentences`` first: an empty line
    met here, in a file changed since, is refused by number all the same)."""
    path = Path(path)
    for number, sentence in _stripped_lines(path):
        if not sentence:
            raise _empty_lines(path, [number], 1)
        yield sentence


def _empty_lines(path: Path, shown: list[int], n_empty: int) -> ValueError:
    plural = "s" if n_empty > 1 else ""
    numbers = ", ".join(map(str, shown)) + (", ..." if n_empty > len(shown) else "")
    return ValueError(f"{path}: empty line{plural} at line number{plural} {numbers}: give one sentence per line and "
                      f"remove empty lines")


def read_sentences(path: str | os.PathLike) -> list[str]:
    """Every sentence of ``path`` as a list (for small files and callers that want them all; ``embed`` streams)."""
    scan_sentences(path)
    return list(iter_sentences(path))


def windows(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """``items`` in consecutive lists of ``size`` (the last one shorter), pulling only one list's worth at a time."""
    iterator = iter(items)
    while window := list(itertools.islice(iterator, size)):
        yield window
