"""Registers the package's models with the transformers Auto classes, in this process and for saved folders.

``register()`` makes ``AutoConfig``/``AutoModel``/... resolve ``model_type="elmo"`` and ``model_type="awd_lstm"``
when hf_elmo is importable; the ``register_for_auto_class`` calls make ``save_pretrained`` write ``auto_map`` and copy
the model's files, so a saved folder loads with ``trust_remote_code=True`` in a process that cannot import hf_elmo.
"""

from __future__ import annotations

from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForPreTraining,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
    AutoTokenizer,
)

from .models.awd_lstm import (
    AWDLSTMConfig,
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

_done = False


def register() -> None:
    """Idempotent: registers ELMo and AWD-LSTM with the Auto classes of this process and for remote code."""
    global _done
    if _done:
        return
    AutoConfig.register(ElmoConfig.model_type, ElmoConfig, exist_ok=True)
    AutoTokenizer.register(ElmoConfig, slow_tokenizer_class=ElmoTokenizer, exist_ok=True)
    for auto, cls in (
        (AutoModel, ElmoModel),
        (AutoModelForPreTraining, ElmoForLanguageModeling),
        (AutoModelForSequenceClassification, ElmoForSequenceClassification),
        (AutoModelForTokenClassification, ElmoForTokenClassification),
    ):
        auto.register(ElmoConfig, cls, exist_ok=True)
    ElmoConfig.register_for_auto_class("AutoConfig")
    ElmoTokenizer.register_for_auto_class("AutoTokenizer")
    for auto_name, cls in ELMO_AUTO_CLASSES.items():
        cls.register_for_auto_class(auto_name)

    AutoConfig.register(AWDLSTMConfig.model_type, AWDLSTMConfig, exist_ok=True)
    AutoTokenizer.register(AWDLSTMConfig, slow_tokenizer_class=AWDLSTMTokenizer, exist_ok=True)
    for auto, cls in (
        (AutoModel, AWDLSTMModel),
        (AutoModelForCausalLM, AWDLSTMForLanguageModeling),
        (AutoModelForSequenceClassification, AWDLSTMForSequenceClassification),
    ):
        auto.register(AWDLSTMConfig, cls, exist_ok=True)
    AWDLSTMConfig.register_for_auto_class("AutoConfig")
    AWDLSTMTokenizer.register_for_auto_class("AutoTokenizer")
    for auto_name, cls in AWD_LSTM_AUTO_CLASSES.items():
        cls.register_for_auto_class(auto_name)
    _done = True
