"""hf-elmo: ELMo and ULMFiT/AWD-LSTM as native Hugging Face transformers models."""

from .auto import register as _register
from .models.awd_lstm import (
    AWDLSTMConfig,
    AWDLSTMEnsembleConfig,
    AWDLSTMEnsembleForSequenceClassification,
    AWDLSTMForLanguageModeling,
    AWDLSTMForSequenceClassification,
    AWDLSTMModel,
    AWDLSTMPreTrainedModel,
    AWDLSTMTokenizer,
)
from .models.elmo import (
    ElmoConfig,
    ElmoForLanguageModeling,
    ElmoForManyLangsTokenizer,
    ElmoForSequenceClassification,
    ElmoForTokenClassification,
    ElmoModel,
    ElmoPreTrainedModel,
    ElmoTokenizer,
)
from .version import __version__

_register()

__all__ = [
    "AWDLSTMConfig",
    "AWDLSTMEnsembleConfig",
    "AWDLSTMEnsembleForSequenceClassification",
    "AWDLSTMForLanguageModeling",
    "AWDLSTMForSequenceClassification",
    "AWDLSTMModel",
    "AWDLSTMPreTrainedModel",
    "AWDLSTMTokenizer",
    "ElmoConfig",
    "ElmoForLanguageModeling",
    "ElmoForManyLangsTokenizer",
    "ElmoForSequenceClassification",
    "ElmoForTokenClassification",
    "ElmoModel",
    "ElmoPreTrainedModel",
    "ElmoTokenizer",
    "__version__",
]


def __getattr__(name: str):
    """``hf_elmo.OnnxModel`` / ``hf_elmo.export_onnx``, imported on first use so that ``import hf_elmo`` does not
    need the ``[onnx]`` extra."""
    if name in ("OnnxModel", "export_onnx"):
        from . import onnx as _onnx

        return getattr(_onnx, name)
    raise AttributeError(f"module 'hf_elmo' has no attribute {name!r}")
