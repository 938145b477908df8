"""``OnnxModel``: an exported folder run with ONNX Runtime, called like the PyTorch model.

    from hf_elmo.onnx import OnnxModel
    model = OnnxModel.from_pretrained("path/or/repo-id")
    out = model(**tokenizer(["A sentence ."], padding=True, return_tensors="pt"))
    out.last_hidden_state, out.hidden_states  # torch tensors (numpy arrays when given numpy arrays)

The output is the PyTorch model's own output class (``ElmoModelOutput``, ``ElmoClassifierOutput``, ...) with the
fields the exported graph computes.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import AutoConfig, PretrainedConfig
from transformers.modeling_outputs import ModelOutput

from .config import HfElmoOnnxConfig, get_onnx_config

logger = logging.getLogger(__name__)

ONNX_FILE_NAME = "model.onnx"
CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
# ONNX Runtime's NCHWc layout transformer dereferences a null pointer on the Cast nodes it inserts around float16
# ops that have no CPU kernel (microsoft/onnxruntime#28392, x86-64, ORT >= 1.24): it is left out for float16 models.
FP16_DISABLED_OPTIMIZERS = ("NchwcTransformer",)
# Keyword arguments of the PyTorch models that the exported graph does not take and that change nothing there.
_IGNORED_INPUTS = ("token_ids", "token_type_ids", "num_items_in_batch")


def import_onnxruntime() -> Any:
    """The ``onnxruntime`` module, or an ImportError naming the extra to install."""
    try:
        import onnxruntime
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("hf_elmo.onnx needs ONNX Runtime: pip install 'hf-elmo[onnx]' (or "
                          "'hf-elmo[onnx-gpu]')") from e
    return onnxruntime


def cuda_device_usable() -> bool:
    """Whether a CUDA device can be used: through torch when it is a CUDA build, else by asking the CUDA driver."""
    try:
        if torch.cuda.is_available():
            return True
    except Exception:  # pragma: no cover - a broken CUDA setup
        pass
    for name in ("libcuda.so.1", "libcuda.so", "nvcuda.dll"):
        try:
            driver = ctypes.CDLL(name)
        except OSError:
            continue
        try:
            if driver.cuInit(0) != 0:
                return False
            count = ctypes.c_int(0)
            return driver.cuDeviceGetCount(ctypes.byref(count)) == 0 and count.value > 0
        except AttributeError:  # pragma: no cover
            return False
    return False


def choose_providers(provider: str | None = None) -> list[str]:
    """The execution providers to ask for: ``provider`` (with the CPU as fallback), else CUDA when ONNX Runtime has
    it (onnxruntime-gpu) and a CUDA device is usable, else the CPU."""
    available = import_onnxruntime().get_available_providers()
    if provider is not None:
        if provider not in available:
            raise ValueError(f"execution provider {provider!r} is not available in this ONNX Runtime; available: "
                             f"{available}")
        return [provider] if provider == CPU else [provider, CPU]
    if CUDA in available and cuda_device_usable():
        return [CUDA, CPU]
    return [CPU]


def make_session(path: str | os.PathLike, providers: list[str] | None = None, dtype: str | None = None,
                 session_options: Any = None) -> Any:
    """An ``InferenceSession`` of ``path`` (float16 models leave out FP16_DISABLED_OPTIMIZERS)."""
    ort = import_onnxruntime()
    options = session_options if session_options is not None else ort.SessionOptions()
    kwargs: dict[str, Any] = {}
    if dtype == "float16":
        kwargs["disabled_optimizers"] = list(FP16_DISABLED_OPTIMIZERS)
    return ort.InferenceSession(str(path), options, providers=providers or [CPU], **kwargs)


def _looks_like_repo_id(name: str) -> bool:
    return bool(re.fullmatch(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?", name)) and ".." not in name


def resolve_folder(path_or_repo: str | os.PathLike, revision: str | None = None, token: str | bool | None = None,
                   cache_dir: str | os.PathLike | None = None, local_files_only: bool = False) -> Path:
    """A local folder as is; a Hub repository id through ``huggingface_hub.snapshot_download``."""
    path = Path(path_or_repo)
    if path.is_dir():
        return path
    if path.exists():
        raise NotADirectoryError(f"{path} is a file: give the exported folder (it holds config.json and the .onnx "
                                 "file)")
    name = str(path_or_repo)
    if not _looks_like_repo_id(name):
        raise FileNotFoundError(f"exported ONNX folder not found: {path}")
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(name, revision=revision, token=token, cache_dir=cache_dir,
                                      local_files_only=local_files_only))
    except Exception as e:  # RepositoryNotFoundError, offline, ...
        raise FileNotFoundError(f"{name!r} is neither a local folder nor a Hub repository that could be "
                                f"downloaded: {e}") from e


def read_onnx_section(folder: Path) -> dict[str, Any]:
    """The ``onnx`` section of ``folder/config.json`` (what ``export_onnx`` recorded)."""
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"no config.json in {folder}: not an exported ONNX folder (export one with "
                                "hf_elmo.onnx.export_onnx or `hf-elmo export`)")
    try:
        raw = json.loads(config_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{config_path} is not valid JSON: {e}") from None
    section = raw.get("onnx")
    if not isinstance(section, dict) or "task" not in section:
        raise ValueError(f"{config_path} has no 'onnx' section: {folder} is not an exported ONNX folder (export it "
                         "with hf_elmo.onnx.export_onnx or `hf-elmo export`)")
    return section


def _file_in_folder(folder: Path, name: Any, what: str) -> Path:
    """``folder / name`` when ``name`` is a relative path that stays inside ``folder`` (symbolic links resolved);
    ValueError naming ``what`` otherwise: a downloaded config.json must not make the runtime load a file from
    elsewhere on the machine ("../../elsewhere/model.onnx", "/tmp/x.onnx")."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"{what} must be a file name, got {name!r}")
    path = folder / name
    root = folder.resolve()
    if Path(name).is_absolute() or root not in path.resolve().parents:
        raise ValueError(f"{what} {name!r} is not a file inside {folder}: refused")
    return path


class OnnxModel:
    """An exported model run by ONNX Runtime; called like the PyTorch model it was exported from.

    Attributes:
        config: the model's configuration (``config.onnx`` holds what the export recorded).
        task: the export's task (``feature-extraction``, ``text-classification``, ...).
        session: the ``onnxruntime.InferenceSession``.
        provider: the execution provider the session runs on.
        model_path: the .onnx file.
    """

    def __init__(self, session: Any, config: PretrainedConfig, exporter_config: HfElmoOnnxConfig,
                 model_path: Path, onnx_info: dict[str, Any]) -> None:
        self.session = session
        self.config = config
        self.exporter_config = exporter_config
        self.model_path = model_path
        self.onnx_info = onnx_info
        self.task = exporter_config.task
        self.input_names = [i.name for i in session.get_inputs()]
        self.output_names = [o.name for o in session.get_outputs()]
        self._output_shapes = {o.name: list(o.shape) for o in session.get_outputs()}
        self.provider = session.get_providers()[0]

    @classmethod
    def from_pretrained(
        cls,
        path_or_repo: str | os.PathLike,
        provider: str | None = None,
        file_name: str | None = None,
        *,
        session_options: Any = None,
        revision: str | None = None,
        token: str | bool | None = None,
        cache_dir: str | os.PathLike | None = None,
        local_files_only: bool = False,
    ) -> "OnnxModel":
        """Loads an exported folder (``export_onnx`` / ``hf-elmo export``) or a Hub repository holding one.

        Args:
            path_or_repo: the folder, or a Hub repository id (downloaded with ``huggingface_hub.snapshot_download``).
            provider: an ONNX Runtime execution provider; default: CUDA when onnxruntime-gpu and a usable GPU are
                present, else the CPU.
            file_name: the .onnx file of the folder to run (default: the one config.json names, ``model.onnx``).
            session_options: ``onnxruntime.SessionOptions`` (threads, optimisation level, ...).
        """
        folder = resolve_folder(path_or_repo, revision=revision, token=token, cache_dir=cache_dir,
                                local_files_only=local_files_only)
        onnx_info = read_onnx_section(folder)
        name = file_name or onnx_info.get("file_name") or ONNX_FILE_NAME
        model_path = _file_in_folder(folder, name, "file_name" if file_name else f"{folder / 'config.json'}'s "
                                     "onnx.file_name")
        if not model_path.is_file():
            present = sorted(p.name for p in folder.glob("*.onnx"))
            raise FileNotFoundError(
                f"no ONNX model file {name!r} in {folder}"
                + (f" (it holds {present}; pass file_name=...)" if present else " (it holds no .onnx file)")
            )
        config = AutoConfig.from_pretrained(folder)
        exporter_config = get_onnx_config(config, onnx_info["task"])
        providers = choose_providers(provider)
        session = make_session(model_path, providers, dtype=onnx_info.get("dtype"), session_options=session_options)
        model = cls(session, config, exporter_config, model_path, onnx_info)
        if providers[0] != model.provider:
            logger.warning("hf_elmo ONNX: %s was asked for but could not be used; running %s on %s",
                           providers[0], model_path.name, model.provider)
        else:
            logger.info("hf_elmo ONNX: running %s (%s, %s) on %s", model_path.name, model.task,
                        onnx_info.get("dtype", "float32"), model.provider)
        return model

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(model_path={str(self.model_path)!r}, task={self.task!r}, "
                f"provider={self.provider!r})")

    # ---- calling ---------------------------------------------------------------------------------------------------
    def __call__(self, input_ids: Any = None, attention_mask: Any = None, **kwargs: Any) -> ModelOutput | tuple:
        """Runs the model on the tokenizer's output; returns the PyTorch model's output class.

        ``input_ids`` (batch, words, max_characters_per_token) integer character ids and ``attention_mask`` (batch,
        words) as torch tensors (the outputs are torch tensors then, on the inputs' device), numpy arrays (numpy
        outputs) or nested lists (numpy outputs); a ``BatchEncoding`` or dict may be passed as ``input_ids`` or
        unpacked (``model(**inputs)``). Without ``attention_mask`` the words that are all-zero are padding, as in the
        PyTorch model. An empty batch gives empty outputs of the right shape. ``return_dict=False`` gives a tuple and
        ``output_hidden_states=False`` leaves ``hidden_states`` out, as in the PyTorch model.
        """
        if isinstance(input_ids, Mapping):
            if attention_mask is not None or kwargs:
                raise TypeError("pass either the tokenizer's output (a mapping) or input_ids=..., attention_mask=...")
            kwargs = dict(input_ids)
            input_ids = kwargs.pop("input_ids", None)
            attention_mask = kwargs.pop("attention_mask", None)
        for name in _IGNORED_INPUTS:
            kwargs.pop(name, None)
        return_dict = kwargs.pop("return_dict", None)
        output_hidden_states = kwargs.pop("output_hidden_states", None)
        if output_hidden_states and not any(n.startswith("hidden_states.") for n in self.output_names):
            raise ValueError(f"this {self.task} export computes {self.output_names} only: output_hidden_states=True "
                             "needs the feature-extraction export")
        if kwargs:
            raise TypeError(f"{type(self).__name__} got unexpected arguments: {sorted(kwargs)} (the exported graph "
                            f"takes {self.input_names})")
        if input_ids is None:
            raise ValueError(f"input_ids is required (the exported graph takes {self.input_names})")
        as_torch = isinstance(input_ids, torch.Tensor)
        device = input_ids.device if as_torch else None
        ids = _as_array(input_ids, "input_ids")
        mask = None if attention_mask is None else _as_array(attention_mask, "attention_mask")
        # the model family's checks (dtype, shape, value range) -> the graph's int64 inputs
        feeds = self.exporter_config.prepare_inputs(ids, mask)
        options = (return_dict, output_hidden_states)
        batch, width = ids.shape[0], ids.shape[1]
        if batch == 0:  # ONNX Runtime fails on an empty batch: empty outputs of the right shape
            return self._finish(self._empty_outputs(width), as_torch, device, *options)
        if width == 0:
            raise ValueError(f"input_ids has no {self.exporter_config.SEQUENCE_AXIS} (shape {tuple(ids.shape)}): every "
                             "sequence needs at least one position")
        outputs = self.session.run(self.output_names, {name: feeds[name] for name in self.input_names})
        return self._finish(dict(zip(self.output_names, outputs)), as_torch, device, *options)

    forward = __call__

    def _empty_outputs(self, width: int) -> dict[str, np.ndarray]:
        sizes = {self.exporter_config.BATCH_AXIS: 0, self.exporter_config.SEQUENCE_AXIS: width}
        named = {}
        for name, shape in self._output_shapes.items():
            dims = [d if isinstance(d, int) else sizes.get(d) for d in shape]
            if any(d is None for d in dims):
                raise ValueError(f"cannot run an empty batch: the size of output {name!r} {shape} is not known")
            named[name] = np.zeros(dims, dtype=np.float32)
        return named

    def _finish(self, named: dict[str, np.ndarray], as_torch: bool, device: Any, return_dict: bool | None = None,
                output_hidden_states: bool | None = None) -> ModelOutput | tuple:
        if as_torch:
            named = {k: torch.from_numpy(np.ascontiguousarray(v)).to(device) for k, v in named.items()}
        if output_hidden_states is False:
            named = {k: v for k, v in named.items() if not k.startswith("hidden_states.")}
        output = self.exporter_config.build_output(named)
        return output.to_tuple() if return_dict is False else output


def _as_array(value: Any, name: str) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        return value
    try:
        return np.asarray(value)
    except (TypeError, ValueError) as e:
        raise TypeError(f"{name} must be a torch tensor, a numpy array or nested lists, got "
                        f"{type(value).__name__}: {e}") from None
