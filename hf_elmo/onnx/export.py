"""``export_onnx``: a model (or a saved folder / Hub repository) → a folder holding its ONNX export.

The model is traced once, at one shape, by torch's dynamo exporter (``torch.onnx.export(..., dynamo=True)``) with
dynamic batch and words axes, then checked against PyTorch at another shape. Optional steps follow, in this order:

* ``fp16``: weights and activations in float16 (onnxruntime.transformers' float16 converter, the LSTM loops' bodies
  included); inputs stay int64 and outputs float32.
* ``quantize="int8"``: dynamic quantisation (``onnxruntime.quantization.quantize_dynamic``) after ONNX Runtime's
  (hardware-independent) constant folding: the weights of every ``MatMul``/``Gemm`` as int8 (per tensor, 7-bit
  range), activations quantised to uint8 at run time, inside the ``Scan`` loops too (the recurrent and projection
  products). The character convolutions stay float32.
* ``optimize``: ONNX Runtime's graph optimisations (level "extended": constant folding, redundant node elimination,
  operator fusions) applied once, offline, and saved; the file is then meant for the CPU execution provider.

The folder holds ``model.onnx`` (+ ``model.onnx.data`` with external data), ``config.json`` with an ``onnx``
section (task, opset, dtype, input/output names and shapes, the steps applied, the check against PyTorch), the
tokenizer files (with their code, so ``AutoTokenizer.from_pretrained(folder, trust_remote_code=True)`` works without
hf_elmo) and a model card, ready for ``hf_elmo.hub.push_folder`` and ``OnnxModel.from_pretrained``.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import onnx
import torch
from transformers import AutoConfig, AutoTokenizer, PreTrainedModel

from ..conversion.common import (check_finite, check_output_dir, max_abs_difference, nan_max, nan_min,
                                 staged_output)
from ..model_folders import LM_HEAD_TRAINED, check_model_folder, from_pretrained_checked, lm_head_untrained
from ..version import __version__ as _hf_elmo_version
from .config import (HfElmoOnnxConfig, UnsupportedExportError, get_onnx_config, registered_model_types,
                     task_for_architecture, task_for_model)
from .runtime import ONNX_FILE_NAME, import_onnxruntime, make_session

logger = logging.getLogger(__name__)

QUANTIZE_CHOICES = ("int8",)
# Above this many bytes of parameters, the weights go to an external data file (protobuf's limit is 2 GiB).
EXTERNAL_DATA_THRESHOLD = 2**31 - 2**26
EXTERNAL_DATA_SUFFIX = ".data"
# int8 dynamic quantisation settings (recorded in config.json)
INT8_SETTINGS = {
    "method": "dynamic",
    "weight_type": "int8",
    "activation_type": "uint8",
    "per_channel": False,  # ORT's MatMulInteger takes no per-channel zero points for the loops' 3-D batched weights
    "reduce_range": True,  # 7-bit weights: no saturation of u8s8 products on x86 CPUs without VNNI
    "subgraphs": True,  # the Scan bodies too
    "prepared_with": "ONNX Runtime basic-level constant folding",
}
OPTIMIZATION_LEVEL = "extended"
# Tasks that export a language-model head, which a folder's config may flag as never trained (model_folders).
UNTRAINED_HEAD_TASKS = ("bidirectional-lm", "text-generation")


class OnnxExportError(RuntimeError):
    """The exported model does not reproduce the PyTorch model (a bug, not a problem with the inputs)."""


def export_onnx(
    model_or_path: PreTrainedModel | str | os.PathLike,
    output_dir: str | os.PathLike,
    task: str | None = None,
    fp16: bool = False,
    optimize: bool = False,
    quantize: str | None = None,
    opset: int | None = None,
    *,
    external_data: bool | None = None,
    tokenizer: Any = None,
    push_to_hub: str | None = None,
    private: bool = False,
    revision: str | None = None,
    model_name: str | None = None,
    shown_as: str | os.PathLike | None = None,
) -> Path:
    """Exports a model to ONNX; returns the path of the .onnx file (in ``output_dir``, with everything it needs).

    Args:
        model_or_path: a model instance, or a saved folder / Hub repository id (loaded with the task's class).
        output_dir: a new or empty folder.
        task: ``feature-extraction``, ``text-classification``, ``token-classification`` or ``bidirectional-lm`` for
            ELMo; ``feature-extraction``, ``text-generation`` or ``text-classification`` for AWD-LSTM (optimum's
            synonyms accepted); default: the task of the model's class (of ``config.architectures`` for a folder).
        fp16: a float16 model (int64 inputs, float32 outputs).
        optimize: save the model with ONNX Runtime's "extended" graph optimisations applied (for the CPU provider).
        quantize: ``"int8"``: dynamic int8 quantisation of the matrix products' weights.
        opset: the ONNX opset (default: the exporter config's, 20; 18 to 23).
        external_data: weights in ``model.onnx.data`` beside the graph; default: when the weights exceed ~2 GB.
        tokenizer: the tokenizer to save beside the model (default: the folder's, or the model family's default;
            AWD-LSTM has none without its vocabulary: pass it when exporting a model instance).
        push_to_hub: also upload the folder to this Hub repository (one commit); the card's snippet loads it.
        private, revision: for the push (a new private repository; the branch to push to).
        model_name: the card's title.
        shown_as: where ``output_dir`` will be once the caller's run completes (a folder written inside a staged
            output that is renamed at the end): the card's snippet loads from there. Default: ``output_dir``.

    Raises:
        UnsupportedExportError: no exporter for the model's type or class, or for the task.
        ValueError: bad arguments or a non-empty ``output_dir``.
        OnnxExportError: the exported model does not reproduce the PyTorch model at another shape.
    """
    output_dir = Path(output_dir)
    if quantize is not None and quantize not in QUANTIZE_CHOICES:
        raise ValueError(f"quantize must be one of {QUANTIZE_CHOICES} or None, got {quantize!r}")
    if fp16 and quantize:
        raise ValueError("fp16 and quantize are exclusive: an int8 model keeps float32 activations")
    if revision and not push_to_hub:
        raise ValueError("a revision (branch) only applies when pushing: give push_to_hub too")
    check_output_dir(output_dir, what="the export")

    model, task, source = _resolve_model(model_or_path, task)
    # NaN or infinite weights make every output NaN, which no tolerance check can judge: refused by name
    check_finite(dict(model.state_dict()), source or type(model).__name__, "weights")
    _warn_if_untrained_head(model, task, source)
    exporter_config = get_onnx_config(model.config, task)
    opset = exporter_config.DEFAULT_ONNX_OPSET if opset is None else opset
    if isinstance(opset, bool) or not isinstance(opset, int):
        raise ValueError(f"opset must be an integer, got {opset!r}")
    if opset < exporter_config.MIN_ONNX_OPSET:
        raise ValueError(f"opset {opset} is too old: torch's dynamo exporter writes opset "
                         f"{exporter_config.MIN_ONNX_OPSET} or later")
    if opset > exporter_config.MAX_ONNX_OPSET:  # the exporter would write its own opset and config.json this one
        raise ValueError(f"opset {opset} is above {exporter_config.MAX_ONNX_OPSET}, the newest torch's ONNX "
                         "exporter writes")
    n_bytes = sum(p.numel() * 4 for p in model.parameters())
    if external_data is None:
        external_data = n_bytes >= EXTERNAL_DATA_THRESHOLD
    if tokenizer is None:
        tokenizer = _load_tokenizer(source, exporter_config)

    # everything is written into a hidden sibling, renamed to output_dir once complete: a failure or an
    # interruption leaves nothing at output_dir
    with staged_output(output_dir, what="the export") as staged:
        with tempfile.TemporaryDirectory(prefix=".onnx-export-", dir=staged) as work:
            work_dir = Path(work)
            step = _Steps(work_dir)
            path = step.new()
            _torch_export(model, exporter_config, path, opset, external_data)
            written = _file_opset(path)
            if written != opset:  # what config.json records must be what the graph is
                raise OnnxExportError(f"the exporter wrote opset {written}, not the {opset} asked for")
            fp32_check = validate(model, exporter_config, path)
            logger.info("Exported %s (%s) to ONNX: max abs diff to PyTorch %.2g at %s", type(model).__name__, task,
                        fp32_check["max_abs_diff"], fp32_check["inputs"])
            if not fp32_check["max_abs_diff"] <= exporter_config.ATOL_FOR_VALIDATION:  # NaN fails too
                raise OnnxExportError(
                    f"the exported model differs from PyTorch by {fp32_check['max_abs_diff']:.3g} (tolerance "
                    f"{exporter_config.ATOL_FOR_VALIDATION:g}) at {fp32_check['inputs']}"
                )
            dtype = "float32"
            if fp16:
                path = convert_fp16(path, step.new())
                dtype = "float16"
            if quantize:
                path = quantize_int8(path, step.new(), exporter_config.INT8_OP_TYPES)
                dtype = "int8"
            if optimize:
                path = optimize_for_cpu(path, step.new(), dtype=dtype)
            check = fp32_check if path == step.first else validate(model, exporter_config, path, dtype=dtype)
            if check is not fp32_check:
                logger.info("%s model: max abs diff to PyTorch %.2g, min cosine similarity %.6f", dtype,
                            check["max_abs_diff"], check["min_cosine_similarity"])
            final = staged / ONNX_FILE_NAME
            for file in path.parent.iterdir():
                shutil.move(str(file), str(staged / file.name))

        onnx_info = _onnx_section(exporter_config, final, opset, dtype, external_data, fp16, quantize, optimize,
                                  fp32_check, check)
        _save_config(model.config, exporter_config, staged, onnx_info)
        tokenizer.save_pretrained(staged)
        _save_card(model, exporter_config, staged, onnx_info, source, push_to_hub, revision, model_name,
                   shown_as=Path(shown_as) if shown_as is not None else output_dir)
    final = output_dir / ONNX_FILE_NAME
    if push_to_hub:
        from ..hub import push_folder

        url = push_folder(output_dir, push_to_hub, private=private, revision=revision,
                          commit_message=f"Add the ONNX export of {type(model).__name__} ({task}, {dtype}) with "
                                         "hf-elmo")
        logger.info("Pushed to %s", url)
    return final


# --------------------------------------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------------------------------------
def _resolve_model(model_or_path: Any, task: str | None) -> tuple[PreTrainedModel, str, str | None]:
    """(model in eval mode, float32, on the CPU; its task; the folder / repo id it came from)."""
    from optimum.exporters.tasks import TasksManager

    task = TasksManager.map_from_synonym(task) if task else None
    if isinstance(model_or_path, PreTrainedModel):
        model = model_or_path
        model_task = task_for_model(model, getattr(model.config, "model_type", None))
        if task is not None and task != model_task:
            wanted = get_onnx_config(model.config, task).model_class.__name__
            raise UnsupportedExportError(
                f"{type(model).__name__} is exported for {model_task!r}, not {task!r}: export a {wanted} for "
                f"{task!r} (or leave task out)"
            )
        param = next(model.parameters(), None)
        if param is not None and (param.dtype != torch.float32 or param.device.type != "cpu"):
            logger.info("Exporting a float32 CPU copy of the %s model on %s", param.dtype, param.device)
            model = copy.deepcopy(model).to(device="cpu", dtype=torch.float32)
        return model, model_task, None
    if isinstance(model_or_path, torch.nn.Module):
        raise UnsupportedExportError(f"no ONNX exporter for {type(model_or_path).__name__}: export a transformers "
                                     "model of a registered type (hf_elmo.onnx.registered_model_types())")
    source = str(model_or_path)
    families = registered_model_types()
    # before anything is loaded: a folder of another model type (or of the family that lacks the task) stops here
    check_model_folder(source, [t for t, tasks in families.items() if task is None or task in tasks] or families,
                       role="ONNX export" + (f" for {task!r}" if task else ""))
    config = AutoConfig.from_pretrained(source)
    task = _task_of_folder(config, source, task)
    model_class = get_onnx_config(config, task).model_class
    model = from_pretrained_checked(model_class, source, dtype=torch.float32)
    return model, task, source


def _task_of_folder(config: Any, source: str, task: str | None) -> str:
    """The task to export a folder for: ``task`` when given, else its model class's (config.architectures), except
    for a language model whose head was never trained (ELMo converted with a vocabulary: a random softmax), whose
    default is its embeddings (an export of such a head warns: ``_warn_if_untrained_head``)."""
    if task is not None:
        return task
    task = task_for_architecture(config) or "feature-extraction"
    if task in UNTRAINED_HEAD_TASKS and lm_head_untrained(config, source):
        logger.info("%s: its language-model head was never trained (config.json: %s false): exporting its "
                    "embeddings (feature-extraction); give task=%r to export the head anyway", source,
                    LM_HEAD_TRAINED, task)
        return "feature-extraction"
    return task


def _warn_if_untrained_head(model: PreTrainedModel, task: str, source: str | None) -> None:
    if task in UNTRAINED_HEAD_TASKS and lm_head_untrained(model.config, source):
        logger.warning("WARNING: the language-model head of %s exported for %r was NEVER TRAINED (config.json: %s "
                       "false; ELMo's published weights hold no softmax): its logits are random and mean nothing "
                       "until the head is trained", source or type(model).__name__, task, LM_HEAD_TRAINED)


def _load_tokenizer(source: str | None, exporter_config: HfElmoOnnxConfig) -> Any:
    if source is not None:
        try:
            return AutoTokenizer.from_pretrained(source)
        except (OSError, ValueError) as e:
            logger.warning("No tokenizer could be loaded from %s (%s): saving the default one", source, e)
    return exporter_config.default_tokenizer()


def _file_opset(path: Path) -> int | None:
    """The default (ai.onnx) opset an .onnx file imports, read without its external data."""
    model = onnx.load(str(path), load_external_data=False)
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)


def _torch_export(model: PreTrainedModel, exporter_config: HfElmoOnnxConfig, path: Path, opset: int,
                  external_data: bool) -> None:
    exporter_config.export_model(model, path, opset, external_data)
    if not path.is_file():
        raise OnnxExportError(f"the exporter wrote no {path}")


# --------------------------------------------------------------------------------------------------------------------
# Checks against PyTorch
# --------------------------------------------------------------------------------------------------------------------
def validate(model: PreTrainedModel, exporter_config: HfElmoOnnxConfig, path: Path, dtype: str = "float32",
             inputs: dict[str, torch.Tensor] | None = None) -> dict[str, Any]:
    """Runs the ONNX file and the PyTorch model on ``inputs`` (default: the config's validation inputs, another
    shape than the export's); returns the largest absolute difference over all outputs and the smallest cosine
    similarity between output vectors at real positions."""
    inputs = inputs if inputs is not None else exporter_config.validation_inputs()
    wrapper = exporter_config.wrap_model(model).eval()
    with torch.no_grad():
        expected = [t.float().numpy() for t in wrapper(*(inputs[n] for n in exporter_config.input_names))]
    session = make_session(path, dtype=dtype)
    got = session.run(exporter_config.output_names, {n: inputs[n].numpy() for n in exporter_config.input_names})
    mask = inputs.get("attention_mask")
    mask = mask.numpy().astype(bool) if mask is not None else None
    # NaN-aware: Python's max(0.0, nan) is 0.0, which let an export of NaN weights report a tiny difference
    max_diff = nan_max(max_abs_difference(a, b) for a, b in zip(got, expected))
    min_cos = nan_min(cosine_similarity(a, b, mask if _has_words_axis(exporter_config, name) else None)
                      for name, a, b in zip(exporter_config.output_names, got, expected))
    shape = tuple(inputs["input_ids"].shape[:2]) if "input_ids" in inputs else None
    return {"max_abs_diff": max_diff, "min_cosine_similarity": min_cos,
            "inputs": f"batch {shape[0]} × {shape[1]} {exporter_config.SEQUENCE_AXIS}, random inputs, rows padded"
            if shape else ""}


def _has_words_axis(exporter_config: HfElmoOnnxConfig, name: str) -> bool:
    return exporter_config.outputs.get(name, {}).get(1) == exporter_config.SEQUENCE_AXIS


def cosine_similarity(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    """The smallest cosine similarity between the vectors (last axis) of ``a`` and ``b``, at ``mask``'s positions
    (leading axes) when given; 1.0 when there are none."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    if mask is not None:
        a, b = a[mask], b[mask]
    a, b = a.reshape(-1, a.shape[-1]), b.reshape(-1, b.shape[-1])
    if not a.size:
        return 1.0
    norms = np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)
    keep = norms != 0  # a NaN norm is kept: its NaN similarity must show
    if not keep.any():
        return 1.0
    return float(((a * b).sum(-1)[keep] / norms[keep]).min())


# --------------------------------------------------------------------------------------------------------------------
# Steps after the export: each reads one .onnx file and writes another, of the same name, in a new folder
# --------------------------------------------------------------------------------------------------------------------
class _Steps:
    def __init__(self, work_dir: Path) -> None:
        self.work_dir, self.count = work_dir, 0
        self.first: Path | None = None

    def new(self) -> Path:
        folder = self.work_dir / f"step{self.count}"
        folder.mkdir()
        self.count += 1
        path = folder / ONNX_FILE_NAME
        self.first = self.first or path
        return path


def _uses_external_data(path: Path) -> bool:
    model = onnx.load(str(path), load_external_data=False)
    return any(t.data_location == onnx.TensorProto.EXTERNAL for t in _all_initializers(model.graph))


def _all_initializers(graph: onnx.GraphProto) -> Iterator[onnx.TensorProto]:
    yield from graph.initializer
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                yield from _all_initializers(attr.g)
            for sub in attr.graphs:
                yield from _all_initializers(sub)


def _save(model: onnx.ModelProto, path: Path, external: bool) -> None:
    if external:
        onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                        location=path.name + EXTERNAL_DATA_SUFFIX, size_threshold=1024)
    else:
        onnx.save_model(model, str(path))


def convert_fp16(src: Path, dst: Path) -> Path:
    """float32 → float16 with onnxruntime.transformers' converter (Scan bodies included), int64 inputs and float32
    outputs kept (``keep_io_types``)."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    external = _uses_external_data(src)
    # from a path, the converter infers shapes file to file, which also works above protobuf's 2 GiB
    model = convert_float_to_float16(str(src) if external else onnx.load(str(src)), keep_io_types=True)
    _save(model, dst, external)
    return dst


class _DropQuantizerAdvice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing before quantization" not in record.getMessage()


def quantize_int8(src: Path, dst: Path, op_types: tuple[str, ...] = ("MatMul", "Gemm")) -> Path:
    """Dynamic int8 quantisation of the weights of every operator of ``op_types``, Scan bodies included
    (INT8_SETTINGS)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    external = _uses_external_data(src)
    # Constant folding first (ONNX Runtime's "basic" level, which does not depend on the hardware): weights that the
    # graph slices or transposes at run time (ELMo's stacked per-direction input weights, Gather + Transpose) become
    # initializers, which the quantizer needs to see a MatMul's weight as constant.
    folded = dst.parent / ("prepared-folded-" + dst.name)
    _ort_optimize(src, folded, "basic")
    model = onnx.load(str(folded))
    # The exporter records shapes for the initializers too; the quantizer transposes Gemm weights in place when it
    # turns Gemm into MatMul, and the stale records then contradict ONNX shape inference: drop them.
    names = {t.name for t in model.graph.initializer}
    kept = [vi for vi in model.graph.value_info if vi.name not in names]
    del model.graph.value_info[:]
    model.graph.value_info.extend(kept)
    _move_loop_lstm_weights_inside(model.graph)
    prepared = dst.parent / ("prepared-" + dst.name)
    _save(model, prepared, external)
    del model
    # ORT's quantizer advises shape pre-processing (which fails on these graphs) through logging.warning(), which
    # would also set up the root logger (and so print every hf_elmo record twice) when nothing has set it up yet
    root = logging.getLogger()
    advice, placeholder = _DropQuantizerAdvice(), logging.NullHandler()
    root.addFilter(advice)
    if not root.handlers:
        root.addHandler(placeholder)
    try:
        quantize_dynamic(
            str(prepared),
            str(dst),
            op_types_to_quantize=list(op_types),
            per_channel=INT8_SETTINGS["per_channel"],
            reduce_range=INT8_SETTINGS["reduce_range"],
            weight_type=QuantType.QInt8,
            use_external_data_format=external,
            extra_options={"EnableSubgraph": INT8_SETTINGS["subgraphs"], "MatMulConstBOnly": True},
        )
    finally:
        root.removeFilter(advice)
        root.removeHandler(placeholder)
    for file in dst.parent.glob("prepared-*"):
        file.unlink()
    return dst


def _move_loop_lstm_weights_inside(graph: onnx.GraphProto) -> None:
    """Moves the weights (``W``, ``R``) of ``LSTM`` ops inside a loop body (``Scan``/``Loop``, e.g. the AWD-LSTM
    classifier's chunks) from the main graph's initializers into that body's: ONNX Runtime's LSTM quantizer looks a
    weight up in the graph of its node only. A weight that anything else reads stays where it is."""
    readers: dict[str, int] = {}

    def count(g: onnx.GraphProto) -> None:
        for node in g.node:
            for name in node.input:
                readers[name] = readers.get(name, 0) + 1
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.GRAPH:
                    count(attr.g)

    count(graph)
    initializers = {t.name: t for t in graph.initializer}
    moved: set[str] = set()

    def move(g: onnx.GraphProto) -> None:
        for node in g.node:
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.GRAPH:
                    move(attr.g)
            if node.op_type != "LSTM" or g is graph:
                continue
            for name in node.input[1:3]:
                if name in initializers and readers.get(name) == 1 and name not in moved:
                    g.initializer.append(initializers[name])
                    moved.add(name)

    move(graph)
    kept = [t for t in graph.initializer if t.name not in moved]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    # the graph's inputs may list initializers too (older IR versions)
    inputs = [i for i in graph.input if i.name not in moved]
    del graph.input[:]
    graph.input.extend(inputs)


def optimize_for_cpu(src: Path, dst: Path, dtype: str = "float32") -> Path:
    """ONNX Runtime's "extended" graph optimisations for the CPU provider, applied once and saved."""
    return _ort_optimize(src, dst, OPTIMIZATION_LEVEL, dtype=dtype)


def _ort_optimize(src: Path, dst: Path, level: str, dtype: str = "float32") -> Path:
    """``src`` with ONNX Runtime's graph optimisations of ``level`` ("basic", "extended") applied, saved to ``dst``."""
    ort = import_onnxruntime()
    options = ort.SessionOptions()
    options.graph_optimization_level = {
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    }[level]
    options.optimized_model_filepath = str(dst)
    if _uses_external_data(src):
        options.add_session_config_entry("session.optimized_model_external_initializers_file_name",
                                         dst.name + EXTERNAL_DATA_SUFFIX)
        options.add_session_config_entry("session.optimized_model_external_initializers_min_size_in_bytes", "1024")
    make_session(src, ["CPUExecutionProvider"], dtype=dtype, session_options=options)
    if not dst.is_file():
        raise OnnxExportError(f"ONNX Runtime wrote no optimised model to {dst}")
    return dst


# --------------------------------------------------------------------------------------------------------------------
# The folder
# --------------------------------------------------------------------------------------------------------------------
def _value_shape(value: onnx.ValueInfoProto) -> list[int | str]:
    return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]


def _value_dtype(value: onnx.ValueInfoProto) -> str:
    return onnx.helper.tensor_dtype_to_np_dtype(value.type.tensor_type.elem_type).name


def _onnx_section(exporter_config: HfElmoOnnxConfig, path: Path, opset: int, dtype: str, external_data: bool,
                  fp16: bool, quantize: str | None, optimize: bool, fp32_check: dict[str, Any],
                  check: dict[str, Any]) -> dict[str, Any]:
    ort = import_onnxruntime()
    graph = onnx.load(str(path), load_external_data=False).graph
    external = path.name + EXTERNAL_DATA_SUFFIX
    return {
        "task": exporter_config.task,
        "model_class": exporter_config.model_class.__name__,
        "file_name": path.name,
        "external_data_file": external if (path.parent / external).is_file() else None,
        "opset": opset,
        "dtype": dtype,
        "inputs": [{"name": v.name, "dtype": _value_dtype(v), "shape": _value_shape(v)} for v in graph.input],
        "outputs": [{"name": v.name, "dtype": _value_dtype(v), "shape": _value_shape(v)} for v in graph.output],
        "fp16": {"converter": "onnxruntime.transformers.float16", "keep_io_types": True} if fp16 else None,
        "quantization": {**INT8_SETTINGS, "op_types": list(exporter_config.INT8_OP_TYPES)} if quantize else None,
        "optimization": {"level": OPTIMIZATION_LEVEL, "provider": "CPUExecutionProvider"} if optimize else None,
        "validation": {
            "float32_max_abs_diff": fp32_check["max_abs_diff"],
            "max_abs_diff": check["max_abs_diff"],
            "min_cosine_similarity": check["min_cosine_similarity"],
            "inputs": check["inputs"],
        },
        "exporter": exporter_config.EXPORTER,
        "versions": {"hf_elmo": _hf_elmo_version, "torch": torch.__version__, "onnx": onnx.__version__,
                     "onnxruntime": ort.__version__},
    }


def _save_config(config: Any, exporter_config: HfElmoOnnxConfig, output_dir: Path, onnx_info: dict) -> None:
    """config.json: the model's configuration, its architecture, the ``onnx`` section; ``auto_map`` only names code
    that the folder holds (the configuration's and tokenizer's, not the PyTorch model's)."""
    config = copy.deepcopy(config)
    config.architectures = [exporter_config.model_class.__name__]
    config.save_pretrained(output_dir)
    path = output_dir / "config.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    auto_map = {name: ref for name, ref in (data.get("auto_map") or {}).items()
                if (output_dir / (str(ref).split(".")[0] + ".py")).is_file()}
    if auto_map:
        data["auto_map"] = auto_map
    else:
        data.pop("auto_map", None)
    data["onnx"] = onnx_info
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _save_card(model: PreTrainedModel, exporter_config: HfElmoOnnxConfig, output_dir: Path, onnx_info: dict,
               source: str | None, push_to_hub: str | None, revision: str | None, model_name: str | None,
               shown_as: Path | None = None) -> None:
    """Writes the card into ``output_dir``; its snippet loads ``push_to_hub`` or ``shown_as`` (the folder's final
    name, when it is written elsewhere first), else ``output_dir``."""
    from ..cards import render_onnx_card

    base_model = source if source is not None and not Path(source).exists() else None
    card = render_onnx_card(
        model.config,
        onnx_info,
        push_to_hub or str(shown_as or output_dir),
        model_name=model_name,
        revision=revision,
        base_model=base_model,
        num_parameters=sum(p.numel() for p in model.parameters()),
        pipeline_tag=exporter_config.pipeline_tag,
    )
    card.save(output_dir / "README.md")
