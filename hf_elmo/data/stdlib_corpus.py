"""An English corpus that ships with every Python: the docstrings of the standard library.

Used by ``hf-elmo quickstart`` so that the main job runs anywhere without downloading data. The modules are parsed
with ``ast`` (never imported), so reading them has no side effects.
"""

from __future__ import annotations

import ast
import re
import sysconfig
from collections.abc import Iterator
from pathlib import Path

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")
_CODE_LIKE = re.compile(r"(>>>|\.\.\. |[{}\[\]=<>]|::|\w\(|\)\w|_\w|\w_)")


def stdlib_modules(root: Path | None = None) -> list[Path]:
    """The standard library's .py files (tests, idle and site-packages left out), sorted for reproducibility."""
    root = Path(root or sysconfig.get_paths()["stdlib"])
    skip = {"test", "tests", "idlelib", "site-packages", "lib2to3", "turtledemo", "__pycache__", "dist-packages"}
    return sorted(p for p in root.rglob("*.py") if not skip.intersection(p.relative_to(root).parts))


def docstrings(path: Path) -> Iterator[str]:
    """Every docstring of one source file (module, classes, functions)."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8", errors="replace"))
    except (SyntaxError, ValueError):
        return
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node)
            if doc:
                yield doc


def prose_sentences(text: str, min_words: int = 5, max_words: int = 40) -> Iterator[str]:
    """Sentences of plain prose from a docstring: paragraphs are joined, code-like lines and fragments dropped."""
    for paragraph in re.split(r"\n\s*\n", text):
        lines = [ln.strip() for ln in paragraph.splitlines()]
        if not lines or any(_CODE_LIKE.search(ln) for ln in lines):
            continue
        for sentence in _SENTENCE_END.split(" ".join(lines)):
            words = sentence.split()
            if min_words <= len(words) <= max_words and sentence[:1].isupper() and sentence[-1:] in ".!?":
                yield sentence


def stdlib_sentence_sources(limit: int | None = None, root: Path | None = None) -> list[tuple[str, str]]:
    """Distinct prose sentences from the standard library's docstrings, in a fixed order, each with the top-level
    module or package it comes from (``"email"`` for ``email/mime/text.py``, ``"difflib"`` for ``difflib.py``); a
    sentence found in several files is kept with the first."""
    root = Path(root or sysconfig.get_paths()["stdlib"])
    seen: dict[str, str] = {}
    for path in stdlib_modules(root):
        source = path.relative_to(root).parts[0].removesuffix(".py")
        for doc in docstrings(path):
            for sentence in prose_sentences(doc):
                seen.setdefault(sentence, source)
                if limit is not None and len(seen) >= limit:
                    return list(seen.items())
    return list(seen.items())


def stdlib_sentences(limit: int | None = None, root: Path | None = None) -> list[str]:
    """Distinct prose sentences from the standard library's docstrings, in a fixed order."""
    return [sentence for sentence, _ in stdlib_sentence_sources(limit, root)]
