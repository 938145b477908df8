"""``# Copied from`` markers kept honest, as transformers' ``utils/check_copies.py`` keeps its own.

The two model folders ship to the Hub as remote code, each self-contained (torch, transformers and its siblings only),
so where both families need the same piece (the sequence-classification loss) one holds it and the other a copy under

    # Copied from hf_elmo.models.awd_lstm.modeling_awd_lstm.sequence_classification_loss [with Old->New, ...]

directly above the copy's ``def``/``class``. The copy must equal the original's source exactly, after the optional
``Old->New`` replacements (names that differ between the families). Run as a script to check the package
(``python tests/check_copies.py``); tests/test_copied_from.py runs it in the suite.
"""

from __future__ import annotations

import ast
import re
import sys
from dataclasses import dataclass
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "hf_elmo"
MARKER = re.compile(r"^[ \t]*# Copied from (?P<target>[\w.]+)(?:\s+with\s+(?P<swaps>.+))?\s*$")


@dataclass(frozen=True)
class Copy:
    """One marker: the file and line of the copy, what it names as the original, and its replacements."""
    file: Path
    line: int  # 1-based line of the marker
    target: str
    swaps: tuple[tuple[str, str], ...]


def find_copies(root: Path = PACKAGE) -> list[Copy]:
    """Every ``# Copied from`` marker in the ``.py`` files under ``root``."""
    copies = []
    for file in sorted(root.rglob("*.py")):
        for number, text in enumerate(file.read_text(encoding="utf-8").splitlines(), 1):
            match = MARKER.match(text)
            if match:
                swaps = []
                for swap in (match["swaps"] or "").split(","):
                    if swap.strip():
                        old, sep, new = swap.strip().partition("->")
                        if not sep:
                            raise ValueError(f"{file}:{number}: replacement {swap.strip()!r} is not Old->New")
                        swaps.append((old.strip(), new.strip()))
                copies.append(Copy(file, number, match["target"], tuple(swaps)))
    return copies


def _definition(source: str, name: str, file: Path) -> tuple[ast.AST, str]:
    """The (possibly nested, ``Class.method``) def/class ``name`` of a module's source, and its source text."""
    scope: list[ast.stmt] = ast.parse(source).body
    node = None
    for part in name.split("."):
        node = next((n for n in scope if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                     and n.name == part), None)
        if node is None:
            raise LookupError(f"{file}: no definition {name!r}")
        scope = node.body
    return node, _segment(source, node)


def _segment(source: str, node: ast.AST) -> str:
    """The node's source lines (decorators included), whole lines, so that indentation is compared too."""
    first = min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", []))])
    return "\n".join(source.splitlines()[first - 1:node.end_lineno])


def _module_file(target: str, root: Path) -> tuple[Path, str]:
    """``hf_elmo.a.b.name`` → (the file of the longest module prefix that exists under ``root``'s parent, the rest)."""
    parts = target.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        file = root.parent.joinpath(*parts[:cut]).with_suffix(".py")
        if file.is_file():
            return file, ".".join(parts[cut:])
    raise LookupError(f"no module of {target!r} under {root.parent}")


def check_copy(copy: Copy, root: Path = PACKAGE) -> str | None:
    """``None`` when the copy is the original after its replacements, else a message naming both and the first
    differing line."""
    source = copy.file.read_text(encoding="utf-8")
    nodes = [n for n in ast.walk(ast.parse(source))
             if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
             and min([n.lineno, *(d.lineno for d in n.decorator_list)]) == copy.line + 1]
    where = f"{copy.file.relative_to(root.parent)}:{copy.line}"
    if not nodes:
        return f"{where}: '# Copied from {copy.target}' is not directly above a def or class"
    mine = _segment(source, nodes[0])
    file, name = _module_file(copy.target, root)
    _, original = _definition(file.read_text(encoding="utf-8"), name, file)
    indent = len(mine) - len(mine.lstrip(" "))
    original = "\n".join(line[len(original) - len(original.lstrip(" ")):] for line in original.splitlines())
    original = "\n".join((" " * indent + line) if line else line for line in original.splitlines())
    for old, new in copy.swaps:
        original = original.replace(old, new)
    # the copy's own name may differ only through a replacement; compare all but nothing else
    if mine == original:
        return None
    for number, (a, b) in enumerate(zip(mine.splitlines(), original.splitlines()), copy.line + 1):
        if a != b:
            return f"{where}: copy differs from {copy.target} at line {number}:\n  copy:     {a}\n  original: {b}"
    return f"{where}: copy and {copy.target} differ in length ({len(mine.splitlines())} vs " \
           f"{len(original.splitlines())} lines)"


def check_copies(root: Path = PACKAGE) -> list[str]:
    """The messages of every copy under ``root`` that is not its original."""
    return [message for copy in find_copies(root) if (message := check_copy(copy, root)) is not None]


if __name__ == "__main__":
    problems = check_copies()
    print("\n".join(problems) or f"{len(find_copies())} copies, all identical to their originals")
    sys.exit(1 if problems else 0)
