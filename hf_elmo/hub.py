"""Publishing a converted folder on the Hugging Face Hub.

The whole folder goes up as ONE commit (``HfApi.create_commit`` with one ``CommitOperationAdd`` per file), so that a
repository never shows a half-uploaded checkpoint (e.g. weights without the remote code that reads them), and the
commit lists exactly the files of the folder.
"""

from __future__ import annotations

import os
from pathlib import Path

from huggingface_hub import CommitOperationAdd, HfApi
from huggingface_hub.utils import HFValidationError, validate_repo_id

# Never uploaded: version-control and cache folders (huggingface_hub's own download cache is ``.cache/``) and
# Python byte code.
_SKIPPED_PARTS = ("__pycache__",)


def is_hub_repo_id(name: str | os.PathLike) -> bool:
    """Whether ``name`` reads as a Hub repository id (``user/model`` or ``model``) rather than a local folder: no such
    path exists here and it is a valid id. (A card's ``base_model`` must be one.)"""
    text = str(name)
    if os.path.exists(text) or os.path.isabs(text):
        return False
    try:
        validate_repo_id(text)
    except HFValidationError:
        return False
    return True


def folder_files(folder: str | os.PathLike) -> list[str]:
    """The files of ``folder`` that a push uploads, as sorted POSIX paths relative to it (hidden entries and
    ``__pycache__`` are left out)."""
    root = Path(folder)
    files = []
    for path in root.rglob("*"):
        rel = path.relative_to(root)
        if any(part.startswith(".") or part in _SKIPPED_PARTS for part in rel.parts):
            continue
        if path.is_file():
            files.append(rel.as_posix())
    return sorted(files)


def push_folder(
    folder: str | os.PathLike,
    repo_id: str,
    private: bool = False,
    revision: str | None = None,
    commit_message: str | None = None,
    token: str | None = None,
) -> str:
    """Uploads every file of ``folder`` to the model repository ``repo_id`` in one commit; returns the commit's URL.

    The repository is created when it does not exist (``private`` only applies then), and so is the branch
    ``revision`` when one is given (from the default branch's head).
    """
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"folder to push not found: {root}")
    files = folder_files(root)
    if not files:
        raise ValueError(f"folder to push holds no files: {root}")
    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
    if revision:
        api.create_branch(repo_id, branch=revision, exist_ok=True, repo_type="model")
    operations = [CommitOperationAdd(path_in_repo=rel, path_or_fileobj=str(root / rel)) for rel in files]
    info = api.create_commit(
        repo_id,
        operations,
        commit_message=commit_message or f"Upload {root.name} with hf-elmo",
        revision=revision,
        repo_type="model",
    )
    return info.commit_url
