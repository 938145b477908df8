"""The quickstart's text: the standard library's docstrings by default, or the user's own file."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

from ..data.stdlib_corpus import stdlib_sentences


def read_texts(path: Path | None, text_column: str = "text", limit: int | None = None) -> list[str]:
    """Texts from ``path`` (.txt: one per line; .csv/.tsv: ``text_column``; .jsonl: ``text_column`` of each object),
    or the standard library's docstring sentences when ``path`` is None."""
    if path is None:
        return stdlib_sentences(limit=limit)
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"data file not found: {path}")
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        with path.open(encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f, delimiter="\t" if suffix == ".tsv" else ",")
            if reader.fieldnames is None or text_column not in reader.fieldnames:
                raise ValueError(f"{path}: no column {text_column!r} (columns: {reader.fieldnames})")
            texts = [row[text_column] for row in reader]
    elif suffix in (".jsonl", ".json"):
        texts = []
        with path.open(encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as e:
                    raise ValueError(f"{path}:{n}: not a JSON object per line: {e}") from None
                if not isinstance(record, dict) or text_column not in record:
                    raise ValueError(f"{path}:{n}: no field {text_column!r}")
                texts.append(str(record[text_column]))
    else:
        texts = path.read_text(encoding="utf-8").splitlines()
    texts = [t.strip() for t in texts if t and t.strip()]
    if not texts:
        raise ValueError(f"{path}: no text found")
    return texts[:limit] if limit else texts


def split(texts: list[str], valid_fraction: float = 0.05, seed: int = 0) -> tuple[list[str], list[str]]:
    """A reproducible train/validation split."""
    order = list(range(len(texts)))
    random.Random(seed).shuffle(order)
    n_valid = max(1, int(len(texts) * valid_fraction))
    return [texts[i] for i in order[n_valid:]], [texts[i] for i in order[:n_valid]]
