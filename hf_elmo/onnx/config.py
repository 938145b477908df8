"""Exporter configurations: what a model family's ONNX export looks like, registered with optimum's TasksManager.

One ``HfElmoOnnxConfig`` subclass per model family (``model_type``) describes, for each task it supports, the model
class that is exported, the ONNX inputs and outputs (names and dynamic axes), the dummy inputs the export is traced
with, how the model's output is flattened into the ONNX outputs and how the runtime rebuilds the model's output from
them. ``@register_onnx_config(model_type, *tasks)`` registers the class with optimum (``TasksManager.create_register``
for the "onnx" backend) and in this package's table, so that

    TasksManager.get_exporter_config_constructor(exporter="onnx", model_type="elmo", task="text-classification",
                                                  library_name="transformers")

returns a constructor of the class, and ``export_onnx`` / ``OnnxModel`` find it. Adding a model family (e.g. AWD-LSTM)
is adding one such subclass and registering it.

Task names are optimum's where one fits (``feature-extraction``, ``text-classification``, ``token-classification``,
``text-generation``). A task optimum does not know (ELMo's bidirectional LM is neither a causal nor a masked LM) is
declared in ``CUSTOM_TASKS`` of the subclass and added to optimum's ``TasksManager._CUSTOM_CLASSES`` table (model type,
task → class), the only place from which optimum's ``TasksManager.get_all_tasks()`` accepts a task it does not ship;
``get_model_class_for_task`` then returns the model class for it.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import warnings
from typing import Any, Callable, Iterator

import numpy as np
import torch
from optimum.exporters.base import ExporterConfig
from optimum.exporters.tasks import TasksManager
from optimum.utils.input_generators import DEFAULT_DUMMY_SHAPES, DTYPE_MAPPER, DummyInputGenerator
from optimum.utils.normalized_config import NormalizedConfig
from transformers import PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import ModelOutput

ONNX_BACKEND = "onnx"
LIBRARY_NAME = "transformers"

# model_type -> exporter config class (this package's view of what optimum's TasksManager holds for "onnx")
_REGISTRY: dict[str, type["HfElmoOnnxConfig"]] = {}


class UnsupportedExportError(ValueError):
    """A model, model type or task that has no registered ONNX exporter configuration."""


class HfElmoOnnxConfig(ExporterConfig):
    """Base of this package's ONNX exporter configurations (an optimum ``ExporterConfig``).

    Subclasses set:

    * ``MODEL_TYPE``: the transformers ``model_type`` they export;
    * ``TASK_TO_MODEL_CLASS``: task → ``"module:ClassName"`` of the model class exported for it;
    * ``CUSTOM_TASKS``: the tasks of ``TASK_TO_MODEL_CLASS`` that optimum does not know (registered as custom tasks);
    * ``PIPELINE_TAGS``: task → the Hub ``pipeline_tag`` of an exported folder (None: no tag);
    * ``NORMALIZED_CONFIG_CLASS`` and ``DUMMY_INPUT_GENERATOR_CLASSES`` (optimum's);
    * ``inputs`` and ``outputs`` (name → {axis: symbolic name}), ``output_class``, ``default_tokenizer``,
      ``prepare_inputs`` (the run-time checks of ``OnnxModel``);
    * optionally ``graph_module`` (the module that is traced, default: the model behind ``wrap_model``) with
      ``custom_translation_table`` (ONNX translations of the custom ops it calls), ``export_model`` (default: torch's
      dynamo exporter), ``INT8_OP_TYPES``, ``SEQUENCE_AXIS``, ``EXPORT_SHAPES``, ``ATOL_FOR_VALIDATION``.

    Output names ``"name.i"`` stand for element ``i`` of the tuple field ``name`` of the model's output (e.g.
    ``hidden_states.0``); ``flatten_output`` and ``build_output`` go from one to the other.
    """

    MODEL_TYPE: str = ""
    TASK_TO_MODEL_CLASS: dict[str, str] = {}
    CUSTOM_TASKS: tuple[str, ...] = ()
    PIPELINE_TAGS: dict[str, str | None] = {}
    ATOL_FOR_VALIDATION: float = 1e-4
    DEFAULT_ONNX_OPSET = 20
    MIN_ONNX_OPSET = 18  # torch's dynamo exporter writes opset 18 or later
    MAX_ONNX_OPSET = 23  # ... and 23 at the latest (torch.onnx's ONNX_MAX_OPSET in torch 2.13)
    # the shape the export is traced at: the dynamic axes must not be 0 or 1 there (torch.export specialises those)
    EXPORT_SHAPES = {"batch_size": 2, "sequence_length": 8}
    # a different shape, to check after export that the axes are really dynamic
    VALIDATION_SHAPES = {"batch_size": 3, "sequence_length": 11}
    # names of the dynamic axes, as the runtime reads them back from the ONNX outputs' shapes
    BATCH_AXIS = "batch"
    SEQUENCE_AXIS = "words"
    # the operators whose weights int8 dynamic quantisation stores as int8
    INT8_OP_TYPES: tuple[str, ...] = ("MatMul", "Gemm")

    def __init__(self, config: PretrainedConfig, task: str = "feature-extraction", int_dtype: str = "int64",
                 float_dtype: str = "fp32") -> None:
        task = TasksManager.map_from_synonym(task)
        if task not in self.TASK_TO_MODEL_CLASS:
            raise UnsupportedExportError(
                f"no ONNX export of {self.MODEL_TYPE!r} models for task {task!r}; supported tasks: "
                f"{sorted(self.TASK_TO_MODEL_CLASS)}"
            )
        super().__init__(config, task=task, int_dtype=int_dtype, float_dtype=float_dtype)

    # ---- what the export looks like -----------------------------------------------------------------------------
    @property
    def config(self) -> PretrainedConfig:
        return self._config

    @property
    def model_class(self) -> type[PreTrainedModel]:
        return _import(self.TASK_TO_MODEL_CLASS[self.task])

    @property
    def pipeline_tag(self) -> str | None:
        return self.PIPELINE_TAGS.get(self.task, self.task)

    @property
    def inputs(self) -> dict[str, dict[int, str]]:
        """``input_ids`` and ``attention_mask``, both dynamic in their first two axes (batch, sequence)."""
        axes = {0: self.BATCH_AXIS, 1: self.SEQUENCE_AXIS}
        return {"input_ids": dict(axes), "attention_mask": dict(axes)}

    @property
    def input_names(self) -> list[str]:
        return list(self.inputs)

    @property
    def output_names(self) -> list[str]:
        return list(self.outputs)

    def dynamic_shapes(self) -> tuple[dict[int, Any], ...]:
        """``torch.export`` dynamic shapes of the inputs, in ``inputs`` order (one ``Dim`` per axis name)."""
        dims: dict[str, Any] = {}
        shapes = []
        for axes in self.inputs.values():
            shapes.append({axis: dims.setdefault(name, torch.export.Dim(name)) for axis, name in axes.items()})
        return tuple(shapes)

    def export_inputs(self, framework: str = "pt") -> dict[str, Any]:
        """The dummy inputs the export is traced with."""
        return self.generate_dummy_inputs(framework=framework, **self.EXPORT_SHAPES)

    def validation_inputs(self, framework: str = "pt") -> dict[str, Any]:
        """Dummy inputs at another shape than the export's (and another padding), to validate the exported model."""
        return self.generate_dummy_inputs(framework=framework, seed=1, **self.VALIDATION_SHAPES)

    # ---- model output <-> ONNX outputs --------------------------------------------------------------------------
    def model_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of the model's forward at export (besides the inputs)."""
        return {"return_dict": True}

    def flatten_output(self, output: ModelOutput) -> tuple[torch.Tensor, ...]:
        """The model's output as the tuple of ONNX outputs (in ``outputs`` order)."""
        values = []
        for name in self.output_names:
            field, _, index = name.partition(".")
            value = output[field]
            values.append(value[int(index)] if index else value)
        return tuple(values)

    def wrap_model(self, model: PreTrainedModel) -> torch.nn.Module:
        """The module that is exported: the model's inputs in ``inputs`` order → the flat tuple of outputs."""
        return _ExportWrapper(model, self)

    def graph_module(self, model: PreTrainedModel) -> torch.nn.Module:
        """The module that is traced into the ONNX graph (the inputs in ``inputs`` order as positional arguments → the
        flat tuple of outputs, as ``wrap_model(model)``, which
        stays the PyTorch reference the export is checked against). Default: ``wrap_model(model)`` itself."""
        return self.wrap_model(model)

    def custom_translation_table(self) -> dict[Any, Any] | None:
        """ONNX translations (onnxscript functions) of custom ops that ``graph_module`` calls, for torch's exporter."""
        return None

    def output_class(self) -> type[ModelOutput]:
        raise NotImplementedError

    def build_output(self, named: dict[str, Any]) -> ModelOutput:
        """The model's output class filled from ONNX outputs by name (``name.i`` → element i of tuple ``name``)."""
        fields: dict[str, Any] = {}
        tuples: dict[str, dict[int, Any]] = {}
        for name, value in named.items():
            field, _, index = name.partition(".")
            if index:
                tuples.setdefault(field, {})[int(index)] = value
            else:
                fields[field] = value
        for field, items in tuples.items():
            fields[field] = tuple(items[i] for i in sorted(items))
        return self.output_class()(**fields)

    def default_tokenizer(self) -> Any:
        """The tokenizer written beside an exported model when none is given."""
        raise NotImplementedError

    # ---- export and run time ---------------------------------------------------------------------------------------
    EXPORTER = "torch.onnx.export(dynamo=True)"

    def export_model(self, model: PreTrainedModel, path: str | os.PathLike, opset: int, external_data: bool) -> None:
        """Writes the ONNX file: ``model`` traced by torch's dynamo exporter at ``EXPORT_SHAPES``, dynamic axes named
        as in ``inputs``, outputs named as in ``outputs``. A family whose graph needs another exporter (e.g. the
        TorchScript one, for the ONNX ``LSTM`` op) overrides this (and ``EXPORTER``)."""
        was_training = model.training
        model.eval()
        wrapper = self.graph_module(model).eval()
        inputs = self.export_inputs()
        args = tuple(inputs[name] for name in self.input_names)
        try:
            # no_grad: loops (torch's scan) are then traced without their backward graphs (about half the time)
            with torch.no_grad(), _quiet_export():
                torch.onnx.export(
                    wrapper,
                    args,
                    str(path),
                    dynamo=True,
                    dynamic_shapes=(self.dynamic_shapes(),),  # the wrapper takes *args
                    input_names=self.input_names,
                    output_names=self.output_names,
                    opset_version=opset,
                    external_data=external_data,
                    optimize=True,
                    verbose=False,
                    custom_translation_table=self.custom_translation_table(),
                )
        finally:
            model.train(was_training)

    def prepare_inputs(self, input_ids: np.ndarray, attention_mask: np.ndarray | None) -> dict[str, np.ndarray]:
        """Checks the inputs given to ``OnnxModel`` (as numpy arrays) and returns the graph's inputs; raises
        TypeError/ValueError with a clear message for a wrong dtype, rank, shape or value."""
        raise NotImplementedError


class PaddedDummyInputGenerator(DummyInputGenerator):
    """Base of the families' dummy-input generators: ``input_ids`` and the matching ``attention_mask`` (batch,
    sequence_length), the first row ``sequence_length`` long, the others of random lengths (at least one position),
    padded on ``padding_side``. Both are drawn once, from ``seed``, so that the two ``generate`` calls agree; a
    subclass fills the ids of the real positions (``make_ids``)."""

    SUPPORTED_INPUT_NAMES = ("input_ids", "attention_mask")

    def __init__(
        self,
        task: str,
        normalized_config: NormalizedConfig,
        batch_size: int = DEFAULT_DUMMY_SHAPES["batch_size"],
        sequence_length: int = DEFAULT_DUMMY_SHAPES["sequence_length"],
        padding_side: str = "right",
        seed: int = 0,
        **kwargs: Any,
    ) -> None:
        if batch_size < 0 or sequence_length < 0:
            raise ValueError(f"batch_size and sequence_length must be >= 0, got {batch_size}, {sequence_length}")
        if padding_side not in ("right", "left"):
            raise ValueError(f"padding_side must be 'right' or 'left', got {padding_side!r}")
        self.task = task
        self.normalized_config = normalized_config
        self.batch_size = batch_size
        self.sequence_length = sequence_length
        self.padding_side = padding_side
        rng = np.random.default_rng(seed)
        lengths = rng.integers(1, max(sequence_length, 1) + 1, size=batch_size)
        if batch_size:
            lengths[0] = sequence_length
        lengths = np.minimum(lengths, sequence_length)
        mask = np.zeros((batch_size, sequence_length), dtype=np.int64)
        for row, n in enumerate(lengths):
            if padding_side == "right":
                mask[row, :n] = 1
            else:
                mask[row, sequence_length - n :] = 1
        self._arrays = {"input_ids": self.make_ids(rng, mask), "attention_mask": mask}

    def make_ids(self, rng: np.random.Generator, mask: np.ndarray) -> np.ndarray:
        """The int64 ``input_ids`` for ``mask`` (real positions: valid ids; padded positions: the padding)."""
        raise NotImplementedError

    def generate(self, input_name: str, framework: str = "pt", int_dtype: str = "int64", float_dtype: str = "fp32"):
        if input_name not in self._arrays:
            raise ValueError(f"{type(self).__name__} does not generate {input_name!r}")
        array = self._arrays[input_name]
        if framework == "pt":
            return torch.from_numpy(array.copy()).to(DTYPE_MAPPER.pt(int_dtype))
        if framework == "np":
            return array.astype(DTYPE_MAPPER.np(int_dtype))
        raise ValueError(f"unsupported framework {framework!r}: 'pt' or 'np'")


def checked_mask(attention_mask: np.ndarray, shape: tuple[int, int], axes: str) -> np.ndarray:
    """``attention_mask`` as booleans, after checking its shape (``shape``, named ``axes`` in the error) and dtype."""
    if tuple(attention_mask.shape) != tuple(shape):
        raise ValueError(f"attention_mask shape {tuple(attention_mask.shape)} does not match input_ids' {axes} = "
                         f"{tuple(shape)}")
    if not (attention_mask.dtype == np.bool_ or np.issubdtype(attention_mask.dtype, np.number)):
        raise TypeError(f"attention_mask must be numeric or boolean, got dtype {attention_mask.dtype}")
    return attention_mask != 0


def check_id_range(input_ids: np.ndarray, size: int, what: str) -> None:
    """Raises ValueError naming ``what`` when an id lies outside [0, size)."""
    if input_ids.size:
        lo, hi = int(input_ids.min()), int(input_ids.max())
        if lo < 0 or hi >= size:
            raise ValueError(f"{what} must lie in [0, {size}), got values in [{lo}, {hi}]")


class _ExportWrapper(torch.nn.Module):
    def __init__(self, model: PreTrainedModel, exporter_config: HfElmoOnnxConfig) -> None:
        super().__init__()
        self.model = model
        self._exporter_config = exporter_config
        self._names = exporter_config.input_names

    def forward(self, *args: torch.Tensor) -> tuple[torch.Tensor, ...]:
        inputs = dict(zip(self._names, args))
        output = self.model(**inputs, **self._exporter_config.model_kwargs())
        return self._exporter_config.flatten_output(output)


@contextlib.contextmanager
def _quiet_export() -> Iterator[None]:
    """Keeps the exporter's harmless chatter (optional torchvision ops, deprecations) off the user's console."""
    registration = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = registration.level
    registration.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=FutureWarning)
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            # the inputs share their axis names on purpose ("batch", "words")
            warnings.filterwarnings("ignore", message=".*The axis name: .* will not be used.*")
            yield
    finally:
        registration.setLevel(level)


def _import(reference: str) -> Any:
    module, _, name = reference.partition(":")
    return getattr(importlib.import_module(module), name)


# --------------------------------------------------------------------------------------------------------------------
# Registration
# --------------------------------------------------------------------------------------------------------------------
def register_onnx_config(model_type: str, *tasks: str) -> Callable[[type[HfElmoOnnxConfig]], type[HfElmoOnnxConfig]]:
    """Class decorator: registers an exporter config for ``model_type`` and ``tasks`` with optimum's TasksManager
    ("onnx" backend, transformers library) and with ``export_onnx``/``OnnxModel``. Idempotent."""

    def decorator(config_cls: type[HfElmoOnnxConfig]) -> type[HfElmoOnnxConfig]:
        missing = [task for task in tasks if task not in config_cls.TASK_TO_MODEL_CLASS]
        if missing:
            raise ValueError(f"{config_cls.__name__}.TASK_TO_MODEL_CLASS has no model class for {missing}")
        for task in config_cls.CUSTOM_TASKS:
            module, _, name = config_cls.TASK_TO_MODEL_CLASS[task].partition(":")
            # (framework, model_type, task) -> (module, class): makes the task known to TasksManager.get_all_tasks()
            # and lets get_model_class_for_task return the class
            TasksManager._CUSTOM_CLASSES[("pt", model_type, task)] = (module, name)
        TasksManager.create_register(ONNX_BACKEND, overwrite_existing=True)(
            model_type, *tasks, library_name=LIBRARY_NAME
        )(config_cls)
        _REGISTRY[model_type] = config_cls
        return config_cls

    return decorator


def registered_model_types() -> dict[str, list[str]]:
    """model_type → the tasks it can be exported for."""
    return {model_type: sorted(cls.TASK_TO_MODEL_CLASS) for model_type, cls in sorted(_REGISTRY.items())}


def _supported_text() -> str:
    return "; ".join(f"{mt}: {', '.join(tasks)}" for mt, tasks in registered_model_types().items()) or "none"


def get_onnx_config(config: PretrainedConfig, task: str) -> HfElmoOnnxConfig:
    """The exporter config for ``config``'s model type and ``task`` (optimum's synonyms accepted), through optimum's
    TasksManager.

    Raises UnsupportedExportError naming the model type / task when there is none.
    """
    model_type = getattr(config, "model_type", None)
    if model_type not in _REGISTRY:
        raise UnsupportedExportError(
            f"no ONNX exporter registered for model type {model_type!r}; registered: {_supported_text()}"
        )
    task = TasksManager.map_from_synonym(task)  # e.g. sequence-classification -> text-classification
    try:
        constructor = TasksManager.get_exporter_config_constructor(
            exporter=ONNX_BACKEND, model_type=model_type, task=task, library_name=LIBRARY_NAME
        )
    except (KeyError, ValueError) as e:
        raise UnsupportedExportError(
            f"no ONNX export of {model_type!r} models for task {task!r}; registered: {_supported_text()}"
        ) from e
    return constructor(config)


def task_for_model(model: PreTrainedModel | type[PreTrainedModel], model_type: str | None = None) -> str:
    """The task a model class is exported for (the registered config's TASK_TO_MODEL_CLASS, read backwards)."""
    cls = model if isinstance(model, type) else type(model)
    model_type = model_type or getattr(getattr(cls, "config_class", None), "model_type", None)
    config_cls = _REGISTRY.get(model_type)
    if config_cls is None:
        raise UnsupportedExportError(
            f"no ONNX exporter registered for {cls.__name__} (model type {model_type!r}); registered: "
            f"{_supported_text()}"
        )
    for task, reference in config_cls.TASK_TO_MODEL_CLASS.items():
        if reference.partition(":")[2] == cls.__name__:
            return task
    raise UnsupportedExportError(
        f"no ONNX export of {cls.__name__}: the {model_type!r} exporter exports "
        + ", ".join(f"{ref.partition(':')[2]} ({task})" for task, ref in config_cls.TASK_TO_MODEL_CLASS.items())
    )


def task_for_architecture(config: PretrainedConfig) -> str | None:
    """The task of the model class named in ``config.architectures`` (None when it names none we export)."""
    config_cls = _REGISTRY.get(getattr(config, "model_type", None))
    if config_cls is None:
        return None
    for name in getattr(config, "architectures", None) or []:
        for task, reference in config_cls.TASK_TO_MODEL_CLASS.items():
            if reference.partition(":")[2] == name:
                return task
    return None
