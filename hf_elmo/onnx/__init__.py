"""ONNX export and ONNX Runtime inference of the package's models (``pip install "hf-elmo[onnx]"``).

* ``export_onnx(model_or_path, output_dir, task=None, fp16=False, optimize=False, quantize=None, opset=None)``
  writes a folder with ``model.onnx``, ``config.json`` (with an ``onnx`` section), the tokenizer and a model card
  (``hf-elmo export`` on the command line);
* ``OnnxModel.from_pretrained(folder_or_repo)`` runs it with ONNX Runtime and returns the PyTorch model's outputs;
* the exporter configurations are optimum ``ExporterConfig`` subclasses registered with optimum's ``TasksManager``
  ("onnx" backend): ``ElmoOnnxConfig`` for ``model_type="elmo"``, ``AWDLSTMOnnxConfig`` for ``"awd_lstm"``; another model family is added by registering its
  own ``HfElmoOnnxConfig`` subclass with ``@register_onnx_config(model_type, *tasks)``.
"""

try:
    import optimum.exporters.tasks  # noqa: F401
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError('hf_elmo.onnx needs optimum and ONNX Runtime: pip install "hf-elmo[onnx]"') from e

from .config import (
    HfElmoOnnxConfig,
    UnsupportedExportError,
    get_onnx_config,
    register_onnx_config,
    registered_model_types,
)
from .awd_lstm import AWD_LSTM_TASKS, AWDLSTMDummyInputGenerator, AWDLSTMNormalizedConfig, AWDLSTMOnnxConfig
from .elmo import ELMO_TASKS, ElmoDummyInputGenerator, ElmoNormalizedConfig, ElmoOnnxConfig
from .export import OnnxExportError, export_onnx
from .runtime import OnnxModel

__all__ = [
    "AWD_LSTM_TASKS",
    "AWDLSTMDummyInputGenerator",
    "AWDLSTMNormalizedConfig",
    "AWDLSTMOnnxConfig",
    "ELMO_TASKS",
    "ElmoDummyInputGenerator",
    "ElmoNormalizedConfig",
    "ElmoOnnxConfig",
    "HfElmoOnnxConfig",
    "OnnxExportError",
    "OnnxModel",
    "UnsupportedExportError",
    "export_onnx",
    "get_onnx_config",
    "register_onnx_config",
    "registered_model_types",
]
