"""What the converters (``allennlp_elmo``, ``fastai_awd_lstm``) and the ONNX exporter share, public on purpose:
the output folder's check, a seeded model, the ``save_pretrained`` of a converted folder, a file's digest, and
``ConversionError``.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import torch


class ConversionError(RuntimeError):
    """The converted folder does not reproduce the converted model (a bug, not a problem with the input files)."""


def check_output_dir(output_dir: str | os.PathLike, what: str = "the converted checkpoint") -> None:
    """Raises ValueError unless ``output_dir`` is new or an empty folder (stale files would be mixed into ``what``)."""
    output_dir = Path(output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise ValueError(f"output path exists and is not a directory: {output_dir}")
    if output_dir.is_dir() and any(output_dir.iterdir()):
        raise ValueError(f"output directory {output_dir} is not empty: give a new or empty directory (stale files "
                         f"would be mixed into {what})")


def seeded_model(model_class: type, config: Any) -> Any:
    """``model_class(config)`` initialised from seed 0, without touching the caller's random state: whatever the
    conversion does not overwrite is then the same in every conversion."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return model_class(config)


def save_folder(model: Any, tokenizer: Any, output_dir: str | os.PathLike) -> None:
    """``save_pretrained`` of the model (safetensors, checked) and of its tokenizer into ``output_dir``."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    # safetensors is the default format (transformers 4.x) and the only one (5.x), hence no safe_serialization=True,
    # which transformers 5 no longer takes; the check below makes sure of it.
    model.save_pretrained(output_dir)
    if not (output_dir / "model.safetensors").is_file():
        raise ConversionError(f"save_pretrained did not write {output_dir / 'model.safetensors'}")
    tokenizer.save_pretrained(output_dir)


def file_sha256(path: str | os.PathLike) -> str:
    """The SHA-256 of a file's bytes, as hex (read in 1 MiB blocks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
