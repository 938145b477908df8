"""What the converters (``allennlp_elmo``, ``fastai_awd_lstm``) and the ONNX exporter share, public on purpose:
the output folder's check, a seeded model, the ``save_pretrained`` of a converted folder, a file's digest, the
NaN-aware comparisons of their checks (``max_abs_difference``, ``check_close``, ``check_finite``), and
``ConversionError``.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np
import torch


class ConversionError(RuntimeError):
    """The converted folder does not reproduce the converted model (a bug, not a problem with the input files)."""


class NonFiniteWeightsError(ValueError):
    """Weights holding NaN or infinite values: every output would be NaN, and no check that compares numbers with
    ``<`` or ``max`` could tell (a NaN compares false with everything). A ValueError: the input is at fault."""


def max_abs_difference(got: Any, want: Any) -> float:
    """The largest ``|got - want|`` (tensors or arrays of one shape) in float64; NaN when either side holds a NaN
    where the other does not hold the same value, so that ``not diff <= tolerance`` refuses it. (Python's
    ``max(0.0, nan)`` is 0.0 and ``nan > tol`` is False: checks written that way let a NaN model pass.)"""
    a = np.asarray(got.detach().cpu().numpy() if isinstance(got, torch.Tensor) else got, dtype=np.float64)
    b = np.asarray(want.detach().cpu().numpy() if isinstance(want, torch.Tensor) else want, dtype=np.float64)
    if not a.size:
        return 0.0
    with np.errstate(invalid="ignore"):
        diff = np.where(a == b, 0.0, np.abs(a - b))  # the same infinity on both sides is no difference
    return float(diff.max())  # numpy's max propagates NaN


def nan_max(values: Any, initial: float = 0.0) -> float:
    """``max(initial, *values)`` that is NaN when any value is (Python's ``max`` keeps whichever comes first)."""
    return float(np.max(np.asarray([initial, *values], dtype=np.float64)))


def nan_min(values: Any, initial: float = 1.0) -> float:
    """``min(initial, *values)`` that is NaN when any value is."""
    return float(np.min(np.asarray([initial, *values], dtype=np.float64)))


def check_close(where: str, what: str, got: Any, want: Any, atol: float) -> float:
    """``max_abs_difference(got, want)``, raising [`ConversionError`] naming ``where`` and ``what`` when the shapes
    differ or the difference is above ``atol`` or NaN."""
    if tuple(got.shape) != tuple(want.shape):
        raise ConversionError(f"{where}: {what} has shape {tuple(got.shape)}, expected {tuple(want.shape)}")
    diff = max_abs_difference(got, want)
    if not diff <= atol:
        raise ConversionError(f"{where} differs from the converted model: {what} max abs difference {diff:.3g} > "
                              f"{atol}")
    return diff


def non_finite(tensors: Mapping[str, Any]) -> list[str]:
    """The names of the floating-point tensors or arrays of ``tensors`` that hold a NaN or an infinity."""
    bad = []
    for name, value in tensors.items():
        if isinstance(value, torch.Tensor):
            if (value.is_floating_point() or value.is_complex()) and not bool(torch.isfinite(value).all()):
                bad.append(name)
        elif np.issubdtype(np.asarray(value).dtype, np.inexact) and not np.isfinite(value).all():
            bad.append(name)
    return bad


def check_finite(tensors: Mapping[str, Any], where: str, what: str = "tensors") -> None:
    """Raises [`NonFiniteWeightsError`] naming ``where`` and (at most ten of) the ``tensors`` holding NaN or inf."""
    bad = non_finite(tensors)
    if bad:
        shown = ", ".join(bad[:10]) + (f", ... ({len(bad)} in all)" if len(bad) > 10 else "")
        raise NonFiniteWeightsError(f"{where}: {what} with NaN or infinite values: {shown}")


def check_output_dir(output_dir: str | os.PathLike, what: str = "the converted checkpoint") -> None:
    """Raises ValueError unless ``output_dir`` is new or an empty folder (stale files would be mixed into ``what``)."""
    output_dir = Path(output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise ValueError(f"output path exists and is not a directory: {output_dir}")
    if output_dir.is_dir() and any(output_dir.iterdir()):
        raise ValueError(f"output directory {output_dir} is not empty: give a new or empty directory (stale files "
                         f"would be mixed into {what})")


PARTIAL_MARK = ".partial-"


@contextlib.contextmanager
def staged_output(output_dir: str | os.PathLike, what: str = "the converted checkpoint") -> Iterator[Path]:
    """A folder to write ``output_dir``'s contents into, renamed to ``output_dir`` only when the block completes.

    The folder is a hidden sibling, ``.<name>.partial-<pid>-<random>``: a run that fails, is interrupted (SIGINT,
    or SIGTERM/SIGHUP, which the commands turn into the same exception) or raises leaves nothing at ``output_dir``
    (nor a half-written folder a rerun would call "not empty"), and the sibling is removed. A sibling left by a run
    that was killed outright (SIGKILL, a power cut) is named after a process that no longer exists: the next run
    removes it, and it never blocks one (its name is not ``output_dir``'s). Two runs writing the same output each
    have their own sibling; the second to finish finds ``output_dir`` taken and says so.
    """
    output_dir = Path(output_dir)
    check_output_dir(output_dir, what)
    parent = output_dir.parent
    parent.mkdir(parents=True, exist_ok=True)
    remove_stale_partials(output_dir)
    work = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}{PARTIAL_MARK}{os.getpid()}-", dir=parent))
    try:
        yield work
        if output_dir.is_dir() and not any(output_dir.iterdir()):
            output_dir.rmdir()  # the empty folder the user gave (a rename does not replace one on every system)
        try:
            os.rename(work, output_dir)
        except OSError as e:
            raise ValueError(f"{output_dir} appeared while {what} was being written (another run?): it is left as "
                             f"it is ({e.strerror})") from None
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)


def remove_stale_partials(output_dir: Path) -> None:
    """Removes the ``staged_output`` siblings of ``output_dir`` whose process is gone (killed before it could)."""
    for path in output_dir.parent.glob(f".{glob.escape(output_dir.name)}{PARTIAL_MARK}*"):
        pid = path.name[len(f".{output_dir.name}{PARTIAL_MARK}"):].split("-", 1)[0]
        if pid.isdigit() and not _process_alive(int(pid)):
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


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
