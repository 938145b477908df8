"""Registers the package's models with the transformers Auto classes, in this process and for saved folders.

``register()`` makes ``AutoConfig``/``AutoModel``/... resolve ``model_type="elmo"`` and ``model_type="awd_lstm"``
when hf_elmo is importable; the ``register_for_auto_class`` calls make ``save_pretrained`` write ``auto_map`` and copy
the model's files, so a saved folder loads with ``trust_remote_code=True`` in a process that cannot import hf_elmo.
"""

from __future__ import annotations

import transformers
from transformers import AutoConfig, AutoTokenizer

from .models.awd_lstm import (
    AWDLSTMConfig,
    AWDLSTMEnsembleConfig,
    AWDLSTMEnsembleForSequenceClassification,
    AWDLSTMForLanguageModeling,
    AWDLSTMForSequenceClassification,
    AWDLSTMModel,
    AWDLSTMTokenizer,
)
from .models.elmo import (
    ElmoConfig,
    ElmoForLanguageModeling,
    ElmoForSequenceClassification,
    ElmoForTokenClassification,
    ElmoModel,
    ElmoTokenizer,
)

ELMO_AUTO_CLASSES = {
    "AutoModel": ElmoModel,
    "AutoModelForPreTraining": ElmoForLanguageModeling,
    "AutoModelForSequenceClassification": ElmoForSequenceClassification,
    "AutoModelForTokenClassification": ElmoForTokenClassification,
}

AWD_LSTM_AUTO_CLASSES = {
    "AutoModel": AWDLSTMModel,
    "AutoModelForCausalLM": AWDLSTMForLanguageModeling,
    "AutoModelForSequenceClassification": AWDLSTMForSequenceClassification,
}

# ULMFiT's forward + backward ensemble: a model type of its own, so that no Auto class loads its folder as one
# classifier
AWD_LSTM_ENSEMBLE_AUTO_CLASSES = {
    "AutoModelForSequenceClassification": AWDLSTMEnsembleForSequenceClassification,
}

_done = False


def _register_family(config_cls: type, tokenizer_cls: type, auto_classes: dict[str, type]) -> None:
    """One model family: its config and tokenizer, and each model class under its transformers Auto class (by name),
    in this process and for saved folders."""
    AutoConfig.register(config_cls.model_type, config_cls, exist_ok=True)
    AutoTokenizer.register(config_cls, slow_tokenizer_class=tokenizer_cls, exist_ok=True)
    config_cls.register_for_auto_class("AutoConfig")
    tokenizer_cls.register_for_auto_class("AutoTokenizer")
    for auto_name, cls in auto_classes.items():
        getattr(transformers, auto_name).register(config_cls, cls, exist_ok=True)
        cls.register_for_auto_class(auto_name)


def register() -> None:
    """Idempotent: registers ELMo and AWD-LSTM with the Auto classes of this process and for remote code."""
    global _done
    if _done:
        return
    _register_family(ElmoConfig, ElmoTokenizer, ELMO_AUTO_CLASSES)
    _register_family(AWDLSTMConfig, AWDLSTMTokenizer, AWD_LSTM_AUTO_CLASSES)
    _register_family(AWDLSTMEnsembleConfig, AWDLSTMTokenizer, AWD_LSTM_ENSEMBLE_AUTO_CLASSES)
    _done = True
