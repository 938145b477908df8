"""hf-elmo: ELMo and ULMFiT/AWD-LSTM as native Hugging Face transformers models."""

from .auto import register as _register
from .models.elmo import (
    ElmoConfig,
    ElmoForLanguageModeling,
    ElmoForSequenceClassification,
    ElmoForTokenClassification,
    ElmoModel,
    ElmoPreTrainedModel,
    ElmoTokenizer,
)

__version__ = "0.1.0"

_register()

__all__ = [
    "ElmoConfig",
    "ElmoForLanguageModeling",
    "ElmoForSequenceClassification",
    "ElmoForTokenClassification",
    "ElmoModel",
    "ElmoPreTrainedModel",
    "ElmoTokenizer",
    "__version__",
]
