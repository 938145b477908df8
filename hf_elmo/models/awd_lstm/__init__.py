"""AWD-LSTM / ULMFiT (self-contained: torch, transformers and siblings only)."""

from .tokenization_awd_lstm import AWDLSTMTokenizer
from .configuration_awd_lstm import AWDLSTMConfig, AWDLSTMEnsembleConfig
from .modeling_awd_lstm import (
    AWDLSTMEnsembleForSequenceClassification,
    AWDLSTMForLanguageModeling,
    AWDLSTMForSequenceClassification,
    AWDLSTMModel,
    AWDLSTMPreTrainedModel,
)
