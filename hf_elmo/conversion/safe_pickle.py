"""Reading fastai's vocabulary pickles (``itos.pkl``, ``vocab.pkl``) without running them.

A pickle is a program: loading one with ``pickle.load`` can import and call anything (``os.system`` included). A
fastai vocabulary is only a list of strings, so ``read_itos_pickle`` unpickles with an unpickler that refuses every
global: plain lists, dicts, tuples, strings and numbers come through, and any pickle that names a class or a
function is rejected before anything of it runs.
"""

from __future__ import annotations

import io
import os
import pickle
import reprlib
from typing import Any

__all__ = ["read_itos_pickle", "RestrictedUnpickler"]


class _RefusedGlobal(pickle.UnpicklingError):
    def __init__(self, module: str, name: str) -> None:
        super().__init__(f"{module}.{name}")
        self.module, self.name = module, name


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves no global at all (no class, no function): only plain data survives."""

    def find_class(self, module: str, name: str) -> Any:  # noqa: D102
        raise _RefusedGlobal(module, name)

    def persistent_load(self, pid: Any) -> Any:  # noqa: D102
        raise pickle.UnpicklingError("persistent ids are not allowed")


def read_itos_pickle(path: str | os.PathLike) -> list[str]:
    """Reads fastai's vocabulary (``itos``: index → token) from a pickle, without executing it.

    Accepts a pickled list of strings (fastai 2's ``vocab.pkl``, fastai 1's ``itos.pkl``) or a dict holding one under
    ``'itos'``. Raises ``ValueError`` naming the file for anything else: a pickle that refers to any class or function
    (as every malicious pickle must), a corrupt one, or one whose data is not a list of strings.
    """
    path = os.fspath(path)
    with open(path, "rb") as f:
        data = f.read()
    try:
        obj = RestrictedUnpickler(io.BytesIO(data)).load()
    except _RefusedGlobal as e:
        raise ValueError(
            f"{path} is not a plain vocabulary pickle: it refers to {e.module}.{e.name}. A pickle is code, so only "
            "lists of strings are read from one (nothing of this file was run)"
        ) from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            RecursionError, OverflowError, UnicodeDecodeError, MemoryError) as e:
        raise ValueError(f"{path} is not a plain vocabulary pickle (it could not be read as plain data: {e})") from None
    itos = obj.get("itos") if isinstance(obj, dict) else obj
    if not isinstance(itos, list):
        raise ValueError(
            f"{path} is not a plain vocabulary: expected a list of strings (or a dict with an 'itos' list), "
            f"got {type(obj).__name__}"
        )
    for i, token in enumerate(itos):
        if not isinstance(token, str):
            # reprlib: a 100,000-deep nested list would exhaust the recursion limit in repr()
            raise ValueError(
                f"{path} is not a plain vocabulary: entry {i} is {type(token).__name__} {reprlib.repr(token)}, "
                "not a string"
            )
    if not itos:
        raise ValueError(f"{path} is not a plain vocabulary: the list is empty")
    return itos
