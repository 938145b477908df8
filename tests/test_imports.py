"""The package's import structure: the model folders are self-contained remote code, nothing imports back up into
the package root, the version lives in a leaf module, and importing the package or its models opens no socket."""

from __future__ import annotations

import ast
import subprocess
import sys
import re
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "hf_elmo"
MODEL_FOLDERS = sorted(p for p in (PACKAGE / "models").iterdir() if (p / "__init__.py").is_file())
# What a model folder's files may import besides the standard library and their siblings: what transformers' remote
# code loads them with (numpy and safetensors are install requirements of transformers itself: every environment
# that loads the folder has them, safetensors being how from_pretrained reads model.safetensors).
MODEL_DEPENDENCIES = {"torch", "transformers", "numpy", "safetensors"}
# ... and what a folder may need only for some of its models, imported inside a ``try`` (transformers' remote-code
# check skips those imports, so a folder that does not use them loads without them): the SentencePiece AWD-LSTM
# tokenizer's package.
OPTIONAL_DEPENDENCIES = {"sentencepiece"}


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> list[tuple[int, str, list[str]]]:
    """(level, module, names) of every import statement in the file (level 0: absolute)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(0, alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            found.append((node.level, node.module or "", [alias.name for alias in node.names]))
    return found


def resolve(path: Path, level: int, module: str) -> str:
    """The absolute name of a (relative) import in ``path``."""
    if level == 0:
        return module
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    base = package[: len(package) - (level - 1)]
    return ".".join(base + ([module] if module else []))


def imports_in_try(path: Path) -> set[str]:
    """The top-level packages imported inside a ``try`` block of the file."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Try):
            for inner in (n for statement in node.body for n in ast.walk(statement)):
                if isinstance(inner, ast.Import):
                    found |= {alias.name.split(".")[0] for alias in inner.names}
    return found


@pytest.mark.parametrize("folder", MODEL_FOLDERS, ids=lambda p: p.name)
def test_model_folders_import_only_torch_transformers_and_siblings(folder: Path):
    for path in sorted(folder.glob("*.py")):
        optional = imports_in_try(path) & OPTIONAL_DEPENDENCIES
        for level, module, _ in imports_of(path):
            where = f"{path.relative_to(REPO)}: import {'.' * level}{module}"
            if level:
                assert level == 1, f"{where} climbs out of the model folder (remote code copies siblings only)"
                continue
            top = module.split(".")[0]
            assert top != "hf_elmo", f"{where}: the folder must not import the package it ships in"
            assert (top in sys.stdlib_module_names or top in MODEL_DEPENDENCIES or top in optional
                    or top == "__future__"), where


def test_nothing_imports_from_the_package_root():
    """``from hf_elmo import X`` / ``from .. import X`` inside the package would run the root's imports (and its
    ``__getattr__``, which imports hf_elmo.onnx) from below: only the root itself names its contents."""
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == PACKAGE / "__init__.py":
            continue
        for level, module, names in imports_of(path):
            if resolve(path, level, module) != "hf_elmo":
                continue
            submodules = [n for n in names if (PACKAGE / n).is_dir() or (PACKAGE / f"{n}.py").is_file()]
            assert submodules == names, f"{path.relative_to(REPO)} imports {names} from the package root"


def test_version_is_a_leaf_module_matching_pyproject():
    from hf_elmo import __version__
    from hf_elmo.version import __version__ as leaf

    assert imports_of(PACKAGE / "version.py") == []
    declared = re.search(r'^version = "([^"]+)"$', (REPO / "pyproject.toml").read_text(), re.M)
    assert declared and __version__ == leaf == declared.group(1)


NO_SOCKET = textwrap.dedent("""
    import socket, sys

    class NoSocket(socket.socket):
        def __init__(self, *args, **kwargs):
            raise AssertionError("a socket was opened while importing")

    socket.socket = NoSocket
    def no_connection(*args, **kwargs):
        raise AssertionError("a connection was opened while importing")
    socket.create_connection = no_connection
    socket.getaddrinfo = no_connection

    import hf_elmo
    import hf_elmo.cli
    import hf_elmo.models.elmo.modeling_elmo, hf_elmo.models.elmo.tokenization_elmo
    import hf_elmo.models.awd_lstm.modeling_awd_lstm, hf_elmo.models.awd_lstm.tokenization_awd_lstm
    import hf_elmo.conversion.allennlp_elmo, hf_elmo.conversion.fastai_awd_lstm
    from hf_elmo import ElmoTokenizer, AWDLSTMConfig
    ElmoTokenizer()
    print("imported without a socket")
""")


def test_importing_opens_no_socket():
    proc = subprocess.run([sys.executable, "-c", NO_SOCKET], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "imported without a socket" in proc.stdout


def test_model_code_does_not_import_the_tokenizer_module_of_its_family():
    """A remote-code copy of a model (transformers copies each file's relative imports, and 4.57 one level only when
    it loads a model) must not need the tokenizer's siblings: modeling files import configuration and their own
    helpers, and ELMo's tokenization module (which has no siblings) for its pipeline declaration only."""
    for path in sorted((PACKAGE / "models").glob("*/modeling_*.py")):
        siblings = {module for level, module, _ in imports_of(path) if level == 1}
        tokenizers = {m for m in siblings if m.startswith("tokenization_")}
        for module in tokenizers:
            tokenizer_file = path.parent / f"{module}.py"
            assert not [m for level, m, _ in imports_of(tokenizer_file) if level == 1], (
                f"{path.relative_to(REPO)} imports {module}, which imports siblings of its own")
