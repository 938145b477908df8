"""Reading texts (and labels) from the files users have: CSV/TSV, JSON Lines, plain text, or a ``datasets`` name."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any


def read_records(source: str | Path, split: str = "train") -> list[dict[str, Any]]:
    """Rows of ``source``: a .csv/.tsv file (header row), a .jsonl/.json file (one JSON object per line), a .txt
    file (one ``{"text": line}`` per non-empty line), or, when no such file exists and the ``datasets`` library is
    installed, the ``split`` of the dataset of that name."""
    path = Path(source)
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix in (".csv", ".tsv"):
            with path.open(encoding="utf-8", newline="") as f:
                return list(csv.DictReader(f, delimiter="\t" if suffix == ".tsv" else ","))
        if suffix in (".jsonl", ".json"):
            rows = []
            with path.open(encoding="utf-8") as f:
                for n, line in enumerate(f, 1):
                    if not line.strip():
                        continue
                    try:
                        record = json.loads(line)
                    except json.JSONDecodeError as e:
                        raise ValueError(f"{path}:{n}: expected one JSON object per line: {e}") from None
                    if not isinstance(record, dict):
                        raise ValueError(f"{path}:{n}: expected a JSON object, got {type(record).__name__}")
                    rows.append(record)
            return rows
        return [{"text": line} for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if path.suffix.lower() in (".csv", ".tsv", ".jsonl", ".json", ".txt"):
        raise FileNotFoundError(f"data file not found: {source}")
    try:
        import datasets
    except ImportError:
        raise FileNotFoundError(
            f"{source} is not a file, and the `datasets` library (needed to load a dataset by name) is not installed"
        ) from None
    return [dict(row) for row in datasets.load_dataset(str(source), split=split)]


def column(rows: list[dict[str, Any]], name: str, source: str | Path) -> list[Any]:
    """The values of column ``name``; a clear error naming the source and its columns when it is missing."""
    if not rows:
        raise ValueError(f"{source}: no rows")
    missing = [i for i, row in enumerate(rows) if name not in row]
    if missing:
        raise ValueError(f"{source}: no column {name!r} in row {missing[0]} (columns: {sorted(rows[missing[0]])})")
    return [row[name] for row in rows]


def read_texts(source: str | Path, text_column: str = "text", split: str = "train") -> list[str]:
    """The non-empty texts of ``source`` (see :func:`read_records`; a .txt file's lines, whatever ``text_column``)."""
    if Path(source).suffix.lower() == ".txt":
        text_column = "text"
    texts = [str(t).strip() for t in column(read_records(source, split), text_column, source)]
    texts = [t for t in texts if t]
    if not texts:
        raise ValueError(f"{source}: no text found in column {text_column!r}")
    return texts


def read_labelled(source: str | Path, text_column: str, label_column: str,
                  split: str = "train") -> tuple[list[str], list[Any]]:
    """(texts, labels) of ``source``; rows whose text is empty are kept (an empty document is still a document)."""
    rows = read_records(source, split)
    return [str(t) for t in column(rows, text_column, source)], column(rows, label_column, source)
